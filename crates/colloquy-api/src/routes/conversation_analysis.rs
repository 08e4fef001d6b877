//! A conversation's analysis: `POST .../analysis/run` analyses it again with its agent's current
//! criteria and data-collection items, `POST .../analysis/evaluations/run` re-runs one
//! criterion, `GET .../summary` serves the gist, and Colloquy's own
//! `GET /api/conversations/{id}/analysis` says where the analysis job stands (`queued`,
//! `running`, `waiting_retry`, `succeeded` or `failed`) and why it failed (the reference's
//! analysis model has no room for that).

use axum::extract::Path;
use colloquy_core::ids::ConversationId;
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_engine::analysis::{self, AnalysisError};
use colloquy_engine::conversation::view;
use colloquy_store::{AnalysisOutcome, ConversationRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, check_body};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_analysis))
        .routes(routes!(run_evaluation))
        .routes(routes!(get_summary))
        .routes(routes!(analysis_status))
}

#[utoipa::path(post, path = "/v1/convai/conversations/{conversation_id}/analysis/run", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn run_analysis(cx: Ctx, Path(id): Path<ConversationId>) -> ApiResult<Json<Value>> {
    cx.conversation(&id).await?;
    run(&cx, &id, None).await
}

#[utoipa::path(post, path = "/v1/convai/conversations/{conversation_id}/analysis/evaluations/run", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn run_evaluation(
    cx: Ctx, Path(id): Path<ConversationId>, Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    cx.conversation(&id).await?;
    check_body("RunConversationEvaluationsRequest", &mut body)?;
    let criterion = body["evaluation_id"].as_str().unwrap_or_default().to_owned();
    run(&cx, &id, Some(&criterion)).await
}

/// Analyses the conversation now and keeps the result; a failure is kept too (the last good
/// analysis stays on the conversation) and answered with its cause.
async fn run(cx: &Ctx, id: &ConversationId, only: Option<&str>) -> ApiResult<Json<Value>> {
    let engine = &cx.app.engine;
    let outcome = match analysis::analyse(engine, &cx.workspace_id, id, only).await {
        Ok(done) => AnalysisOutcome::Succeeded {
            analysis: done.wire.to_string(),
            call_successful: done.call_successful,
        },
        Err(e @ AnalysisError::UnknownCriterion(_)) => {
            return Err(ApiError::invalid(Violation::new(
                ["body", "evaluation_id"],
                "value_error",
                e.to_string(),
            )));
        }
        Err(AnalysisError::Gone(why)) => {
            return Err(ApiError::Conflict { status: "analysis_unavailable", message: why });
        }
        Err(e) => AnalysisOutcome::Failed { error: e.to_string(), retry_at: None },
    };
    cx.app.store.record_analysis(&cx.workspace_id, id, &outcome, time::now_secs()).await?;
    if let AnalysisOutcome::Failed { error, .. } = outcome {
        return Err(ApiError::BadGateway { status: "analysis_failed", message: error });
    }
    let row = cx.conversation(id).await?;
    let audio = cx.app.store.conversation_audio(&cx.workspace_id, id, false).await?;
    Ok(Json(view::wire(&row, audio.as_ref())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SummaryParams {
    /// The most chat messages to include (1..=200, default 40).
    max_messages: Option<i64>,
}

#[utoipa::path(get, path = "/v1/convai/conversations/{conversation_id}/summary", params(("conversation_id" = String, Path), SummaryParams), security(("api_key" = ["conversations:read"])))]
async fn get_summary(
    cx: Ctx, Path(id): Path<ConversationId>, Query(params): Query<SummaryParams>,
) -> ApiResult<Json<Value>> {
    let max = params.max_messages.unwrap_or(40);
    if !(1..=200).contains(&max) {
        let (kind, msg) = if max < 1 {
            ("greater_than_equal", "Input should be greater than or equal to 1")
        } else {
            ("less_than_equal", "Input should be less than or equal to 200")
        };
        return Err(ApiError::invalid(Violation::new(["query", "max_messages"], kind, msg)));
    }
    let row = cx.conversation(&id).await?;
    Ok(Json(summary(&row, usize::try_from(max).unwrap_or(40))))
}

/// `GetConversationSummaryResponseModel`: the analysis' title, summary and outcome, and the
/// plain chat messages (no tool calls or results) when there are at most `max` of them.
fn summary(row: &ConversationRow, max: usize) -> Value {
    let document: Value = serde_json::from_str(&row.document).unwrap_or_default();
    let messages: Vec<Value> = document["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let message = entry["message"].as_str().filter(|m| !m.trim().is_empty())?;
            let role = if entry["role"] == "user" { "user" } else { "agent" };
            Some(json!({"role": role, "message": message}))
        })
        .collect();
    let analysis = view::analysis(row);
    let omitted = messages.len() > max;
    json!({
        "conversation_id": row.id,
        "agent_id": row.agent_id,
        "status": row.status,
        "call_summary_title": analysis.get("call_summary_title").cloned().unwrap_or(Value::Null),
        "transcript_summary": analysis["transcript_summary"].as_str().filter(|s| !s.is_empty()),
        "call_successful": row.call_successful,
        "message_count": messages.len(),
        "messages_omitted": omitted,
        "messages": if omitted { Value::Null } else { Value::from(messages) },
        "note": format!(
            "Tool calls, tool results and contextual updates are left out. GET \
             /v1/convai/conversations/{} returns the full transcript.",
            row.id
        ),
    })
}

#[utoipa::path(get, path = "/api/conversations/{conversation_id}/analysis", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:read"])))]
async fn analysis_status(cx: Ctx, Path(id): Path<ConversationId>) -> ApiResult<Json<Value>> {
    let row = cx.conversation(&id).await?;
    let status =
        cx.app.store.analysis_status(&cx.workspace_id, &id).await.or_not_found("analysis")?;
    // A held job with no holder is a failed try waiting for its next.
    let waiting = status.status == "running" && status.worker.is_none();
    Ok(Json(json!({
        "conversation_id": row.id,
        "status": if waiting { "waiting_retry" } else { status.status.as_str() },
        "next_try_at_unix_secs": if waiting { status.lease_until } else { None },
        "error": status.error,
        "attempts": status.attempt,
        "created_at_unix_secs": status.created_at,
        "updated_at_unix_secs": status.updated_at,
        "analysis": row.analysis.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
    })))
}
