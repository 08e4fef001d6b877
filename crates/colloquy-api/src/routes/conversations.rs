//! Conversations (`/v1/convai/conversations/...`): what the engine recorded, as the reference
//! shapes it. Conversations of simulations and test runs are listed only when asked for
//! (`source=simulation|test|all`, an extension of the reference), and readable by id.

use axum::extract::Path;
use colloquy_core::cursor::Direction;
use colloquy_core::ids::{AgentId, ConversationId};
use colloquy_core::validation::Violation;
use colloquy_store::{ConversationFilter, ConversationRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, MaybeJson, Query, empty_as_none};
use crate::paging::{PageSizeRule, Pager};
use crate::state::AppState;
use axum::response::{IntoResponse, Response};

/// The conversations routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation, delete_conversation))
        .routes(routes!(post_conversation_feedback))
        .routes(routes!(get_conversation_audio))
        .routes(routes!(resolve_conversation))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// From the previous page.
    cursor: Option<String>,
    /// Only this agent's conversations.
    agent_id: Option<String>,
    /// `success`, `failure` or `unknown`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    call_successful: Option<CallSuccessful>,
    /// Started before this unix second.
    call_start_before_unix: Option<i64>,
    /// Started after this unix second.
    call_start_after_unix: Option<i64>,
    /// Only this end user's conversations.
    user_id: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// `ws` (live, the default), `simulation`, `test` or `all`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    source: Option<SourceParam>,
    /// Only conversations carrying any of these tags (repeat the parameter).
    #[serde(default)]
    tag_ids: Vec<String>,
}

/// `call_successful` of a conversation.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CallSuccessful {
    Success,
    Failure,
    Unknown,
}

impl CallSuccessful {
    fn as_str(self) -> &'static str {
        match self {
            CallSuccessful::Success => "success",
            CallSuccessful::Failure => "failure",
            CallSuccessful::Unknown => "unknown",
        }
    }
}

/// Which conversations the list holds (DESIGN.md §4.1): live ones unless asked.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SourceParam {
    #[default]
    Ws,
    Simulation,
    Test,
    All,
}

impl SourceParam {
    /// The stored sources it takes in (none: every source).
    fn sources(self) -> Vec<String> {
        match self {
            SourceParam::Ws => vec!["ws".into()],
            SourceParam::Simulation => vec!["simulation".into()],
            SourceParam::Test => vec!["test".into()],
            SourceParam::All => Vec::new(),
        }
    }
}

fn summary(row: &ConversationRow) -> Value {
    let analysis: Option<Value> =
        row.analysis.as_deref().and_then(|a| serde_json::from_str(a).ok());
    let analysed = |key: &str| analysis.as_ref().and_then(|a| a.get(key)).filter(|v| !v.is_null());
    // The list's short forms: each criterion's result (and score), each item's value.
    let criteria = analysed("evaluation_criteria_results").and_then(Value::as_object).map(|c| {
        c.iter()
            .map(|(id, r)| {
                let short = json!({"result": r["result"], "score": r.get("score"), "max_score": r.get("max_score")});
                (id.clone(), short)
            })
            .collect::<serde_json::Map<_, _>>()
    });
    let data = analysed("data_collection_results").and_then(Value::as_object).map(|d| {
        d.iter().map(|(id, r)| (id.clone(), r["value"].clone())).collect::<serde_json::Map<_, _>>()
    });
    json!({
        "agent_id": row.agent_id,
        "branch_id": row.branch_id,
        "version_id": row.version_id,
        "agent_name": row.agent_name,
        "conversation_id": row.id,
        "start_time_unix_secs": row.started_at,
        "call_duration_secs": row.duration_secs,
        "message_count": row.message_count,
        "status": row.status,
        "termination_reason": row.termination_reason,
        "call_successful": row.call_successful,
        "call_success_score": null,
        "transcript_summary": analysed("transcript_summary").filter(|s| s != &""),
        "call_summary_title": analysed("call_summary_title"),
        "main_language": null,
        "conversation_initiation_source": null,
        "tool_names": null,
        "direction": null,
        "rating": null,
        "sentiment_analysis": null,
        "data_collection_results": data,
        "evaluation_criteria_results": criteria,
        "tag_ids": [],
    })
}

#[utoipa::path(get, path = "/v1/convai/conversations", params(ListParams), security(("api_key" = ["conversations:read"])))]
async fn list_conversations(cx: Ctx, Query(params): Query<ListParams>) -> ApiResult<Response> {
    let filter = ConversationFilter {
        agent_id: params.agent_id.filter(|s| !s.is_empty()).map(AgentId::from),
        call_successful: params.call_successful.map(|c| c.as_str().to_owned()),
        before: params.call_start_before_unix,
        after: params.call_start_after_unix,
        sources: params.source.unwrap_or_default().sources(),
        user_id: params.user_id.filter(|s| !s.is_empty()),
        tag_ids: {
            let mut tags: Vec<String> =
                params.tag_ids.into_iter().filter(|t| !t.is_empty()).collect();
            tags.sort();
            tags.dedup();
            tags
        },
    };
    let fingerprint = format!(
        "{:?}",
        (
            &filter.agent_id,
            &filter.call_successful,
            filter.before,
            filter.after,
            &filter.sources,
            &filter.user_id,
            &filter.tag_ids
        )
    );
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "start_time",
        Direction::Desc,
        &[&fingerprint],
    )?;
    let rows = cx
        .app
        .store
        .list_conversations(&cx.workspace_id, &filter, pager.after()?, pager.fetch())
        .await?;
    let page = pager.page(rows, |r| (r.started_at, r.id.as_str()));
    page.view(summary).respond("conversations")
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetParams {
    /// `json` (the default) or `opentelemetry`: the conversation's traces too, in `otlp_traces`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    format: Option<Format>,
}

/// How a conversation is answered.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    Json,
    Opentelemetry,
}

#[utoipa::path(get, path = "/v1/convai/conversations/{conversation_id}", params(("conversation_id" = String, Path), GetParams), security(("api_key" = ["conversations:read"])))]
async fn get_conversation(
    cx: Ctx, Path(id): Path<ConversationId>, Query(params): Query<GetParams>,
) -> ApiResult<Json<Value>> {
    conversation_view(&cx, &id, params.format).await.map(Json)
}

/// A conversation as `GET /conversations/{id}` answers it.
async fn conversation_view(
    cx: &Ctx, id: &ConversationId, format: Option<Format>,
) -> ApiResult<Value> {
    let row = cx.conversation(id).await?;
    let audio = cx.app.store.conversation_audio(&cx.workspace_id, id, false).await?;
    let mut conversation = colloquy_engine::conversation::view::wire(&row, audio.as_ref());
    conversation["tag_ids"] = json!(cx.app.store.conversation_tag_ids(id).await?);
    if let Some(Format::Opentelemetry) = format {
        let calls = cx.app.store.conversation_executions(&cx.workspace_id, id).await?;
        conversation["otlp_traces"] = colloquy_engine::conversation::otlp::traces(&row, &calls);
    }
    Ok(conversation)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ResolveParams {
    /// The agent the conversation was with (required).
    agent_id: Option<String>,
    /// A Slack message URL or a Zendesk ticket URL (required).
    reference: Option<String>,
}

/// The agent's conversation about a Slack message or a Zendesk ticket: the one started with
/// that link in its `conversation_reference` dynamic variable (the newest, if several were).
#[utoipa::path(get, path = "/v1/convai/conversations/resolve", params(ResolveParams), security(("api_key" = ["conversations:read"])))]
async fn resolve_conversation(
    cx: Ctx, Query(params): Query<ResolveParams>,
) -> ApiResult<Json<Value>> {
    let required = |name: &str| {
        ApiError::invalid(Violation::new(["query", name], "missing", "Field required"))
    };
    let agent_id = params.agent_id.filter(|a| !a.is_empty()).ok_or_else(|| required("agent_id"))?;
    let reference = params.reference.ok_or_else(|| required("reference"))?;
    let key = colloquy_core::references::canonical(&reference).map_err(|message| {
        ApiError::invalid(Violation::new(["query", "reference"], "value_error", message))
    })?;
    cx.agent(&AgentId::from(agent_id.clone())).await?;
    let found = cx.app.store.conversation_by_reference(&cx.workspace_id, &agent_id, &key).await?;
    let id = found.ok_or(ApiError::NotFound("conversation"))?;
    conversation_view(&cx, &id, None).await.map(Json)
}

/// The conversation's recording (both sides, mixed) as the reference serves it: an MP3 file.
#[utoipa::path(get, path = "/v1/convai/conversations/{conversation_id}/audio", params(("conversation_id" = String, Path)),
    responses((status = 200, content_type = "audio/mpeg", body = Vec<u8>)), security(("api_key" = ["conversations:read"])))]
async fn get_conversation_audio(cx: Ctx, Path(id): Path<ConversationId>) -> ApiResult<Response> {
    cx.conversation(&id).await?;
    let audio = cx
        .app
        .store
        .conversation_audio(&cx.workspace_id, &id, true)
        .await?
        .ok_or(ApiError::NotFound("conversation audio"))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, audio.content_type),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}.mp3\"")),
        ],
        audio.audio,
    )
        .into_response())
}

#[utoipa::path(delete, path = "/v1/convai/conversations/{conversation_id}", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn delete_conversation(cx: Ctx, Path(id): Path<ConversationId>) -> ApiResult<Json<Value>> {
    cx.app.store.delete_conversation(&cx.workspace_id, &id).await.or_not_found("conversation")?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
struct FeedbackBody {
    feedback: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/conversations/{conversation_id}/feedback", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn post_conversation_feedback(
    cx: Ctx, Path(id): Path<ConversationId>, MaybeJson(body): MaybeJson<FeedbackBody>,
) -> ApiResult<Json<Value>> {
    let feedback = body.and_then(|b| b.feedback);
    if let Some(f) = feedback.as_deref()
        && f != "like"
        && f != "dislike"
    {
        return Err(ApiError::invalid(Violation::new(
            ["body", "feedback"],
            "enum",
            "Input should be 'like' or 'dislike'",
        )));
    }
    cx.app
        .store
        .set_conversation_feedback(&cx.workspace_id, &id, feedback.as_deref())
        .await
        .or_not_found("conversation")?;
    Ok(Json(json!({})))
}
