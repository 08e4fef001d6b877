//! `GET /api/conversations/{id}/timing`: when each transcript entry was said, to the
//! millisecond, and when each tool call started and how long it took, to the microsecond.
//! Colloquy's own route (the reference has none): the transcript's `time_in_call_secs` has
//! whole seconds, and an agent entry's is when its turn began, so a timeline drawn from it
//! cannot show how long a reply took; `/api/tool-calls` rounds durations to milliseconds.
//! The dashboard's conversation timeline is drawn from this.

use axum::extract::Path;
use colloquy_core::ids::ConversationId;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(timing))
}

#[utoipa::path(
    get,
    path = "/api/conversations/{conversation_id}/timing",
    params(("conversation_id" = String, Path)),
    responses((status = 200, description = "`{conversation_id, started_at_unix_ms, entries: [{index, role, at_ms}], tool_calls: [{id, tool_name, started_at_unix_ms, latency_secs, is_error}]}`: `at_ms` from the start, null for conversations recorded before times were kept")),
    security(("api_key" = ["conversations:read"]))
)]
async fn timing(cx: Ctx, Path(id): Path<ConversationId>) -> ApiResult<Json<Value>> {
    let row = cx.conversation(&id).await?;
    let document: Value = serde_json::from_str(&row.document).unwrap_or_default();
    let times = document["timing"]["entries_ms"].as_array();
    let entries: Vec<Value> = document["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, entry)| {
            let at = times.and_then(|t| t.get(i)).and_then(Value::as_i64);
            json!({"index": i, "role": entry["role"], "at_ms": at})
        })
        .collect();
    let started = document["timing"]["started_at_unix_ms"]
        .as_i64()
        .unwrap_or(row.started_at.saturating_mul(1000));
    let calls: Vec<Value> = cx
        .app
        .store
        .conversation_executions(&cx.workspace_id, &id)
        .await?
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "tool_name": e.tool_name,
                "started_at_unix_ms": e.timestamp_ms,
                "latency_secs": e.latency_us as f64 / 1e6,
                "is_error": e.is_error,
            })
        })
        .collect();
    Ok(Json(json!({
        "conversation_id": row.id,
        "started_at_unix_ms": started,
        "entries": entries,
        "tool_calls": calls,
    })))
}
