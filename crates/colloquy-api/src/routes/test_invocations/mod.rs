//! Running tests: `POST /v1/convai/agents/{agent_id}/run-tests` queues one durable run per test
//! (times `repeat_count`) and answers at once with the runs pending ([`run`]); workers (see
//! `colloquy_engine::testing`) execute them. `GET /v1/convai/test-invocations[/{id}]` report
//! progress and results ([`list`], [`view`]); here are the invocation's own operations. On the
//! wire a run is `pending` until it is `passed` or `failed`.

mod list;
mod run;
mod view;

use axum::extract::Path;
use colloquy_core::ids::InvocationId;
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, check_body};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run::run_tests))
        .routes(routes!(get_invocation, rename_invocation))
        .routes(routes!(cancel_invocation))
        .routes(routes!(resubmit_invocation))
        .routes(routes!(list::list_invocations))
        .routes(routes!(run_conversations))
}

/// Which conversation each run of an invocation produced. The reference's run model has no
/// such link, so it is Colloquy's own route: the conversation, with its transcript and every
/// tool call (`/api/tool-calls?executionId=`), is how a failed run is investigated.
#[utoipa::path(
    get,
    path = "/api/test-invocations/{test_invocation_id}/conversations",
    params(("test_invocation_id" = String, Path)),
    responses((status = 200, description = "`{conversations: [{test_run_id, conversation_id}]}`, in run order; `conversation_id` is null until the run has one")),
    security(("api_key" = ["tests:read"]))
)]
async fn run_conversations(cx: Ctx, Path(id): Path<InvocationId>) -> ApiResult<Json<Value>> {
    cx.invocation(&id).await?;
    let runs = cx.app.store.invocation_runs(&id).await?;
    let conversations: Vec<Value> = runs
        .iter()
        .map(|r| {
            let result: Value = serde_json::from_str(&r.result).unwrap_or(Value::Null);
            json!({"test_run_id": r.id, "conversation_id": result["conversation_id"]})
        })
        .collect();
    Ok(Json(json!({ "conversations": conversations })))
}

#[utoipa::path(get, path = "/v1/convai/test-invocations/{test_invocation_id}", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:read"])))]
async fn get_invocation(cx: Ctx, Path(id): Path<InvocationId>) -> ApiResult<Json<Value>> {
    let inv = cx.invocation(&id).await?;
    Ok(Json(view::full(&cx, &inv).await?))
}

#[derive(Debug, Deserialize)]
struct RenameBody {
    name: Option<String>,
}

#[utoipa::path(patch, path = "/v1/convai/test-invocations/{test_invocation_id}", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn rename_invocation(
    cx: Ctx, Path(id): Path<InvocationId>, Json(body): Json<RenameBody>,
) -> ApiResult<Json<Value>> {
    let name = body.name.filter(|n| !n.is_empty());
    cx.app
        .store
        .rename_invocation(&cx.workspace_id, &id, name.as_deref())
        .await
        .or_not_found("test invocation")?;
    let inv = cx.invocation(&id).await?;
    Ok(Json(view::full(&cx, &inv).await?))
}

#[utoipa::path(post, path = "/v1/convai/test-invocations/{test_invocation_id}/cancel", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn cancel_invocation(cx: Ctx, Path(id): Path<InvocationId>) -> ApiResult<Json<Value>> {
    cx.invocation(&id).await?;
    let cancelled = json!({"condition_result": {"result": "failure", "rationale": {"messages": [], "summary": "Cancelled before it finished"}}});
    cx.app.store.cancel_runs(&id, &cancelled.to_string(), time::now_secs()).await?;
    Ok(Json(json!({})))
}

#[utoipa::path(post, path = "/v1/convai/test-invocations/{test_invocation_id}/resubmit", params(("test_invocation_id" = String, Path)), security(("api_key" = ["tests:write"])))]
async fn resubmit_invocation(
    cx: Ctx, Path(id): Path<InvocationId>, Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let inv = cx.invocation(&id).await?;
    check_body("ResubmitTestsRequestModel", &mut body)?;
    if body.get("agent_id").and_then(Value::as_str) != Some(inv.agent_id.as_str()) {
        return Err(ApiError::invalid(Violation::new(
            ["body", "agent_id"],
            "value_error",
            "agent_id is not the agent of this invocation",
        )));
    }
    let runs = cx.app.store.invocation_runs(&id).await?;
    let wanted: Vec<String> = body["test_run_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let unknown: Vec<Violation> = wanted
        .iter()
        .enumerate()
        .filter(|(_, r)| !runs.iter().any(|x| &x.id == *r))
        .map(|(i, r)| {
            Violation::new(
                vec!["body".into(), "test_run_ids".into(), LocItem::Index(i)],
                "value_error",
                format!("Run {r} is not part of this invocation"),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(unknown));
    }
    let document = body
        .get("agent_config_override")
        .filter(|o| o.is_object())
        .map(|o| json!({"agent_config_override": o}).to_string());
    cx.app.store.resubmit_runs(&id, &wanted, document.as_deref(), time::now_secs()).await?;
    cx.app.engine.runs_queued.notify_one();
    Ok(Json(json!({})))
}
