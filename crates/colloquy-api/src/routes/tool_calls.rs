//! `GET /api/tool-calls?executionId=...`: every tool call of one conversation, oldest first, in
//! the ohallo shape. This route has its own error shape (`{"error": "..."}`), as that API does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use colloquy_core::ids::ConversationId;
use colloquy_store::ToolExecution;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;
use serde_json::value::RawValue;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Query;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(list_tool_calls))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ToolCallParams {
    /// The conversation (agent execution) id, a UUID.
    #[serde(rename = "executionId")]
    execution_id: Option<String>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// A tool call as `/api/tool-calls` shows it (and a ticket's turn comment that points at it),
/// borrowed from its record: a conversation may have hundreds, and the payloads are written
/// as they are stored rather than parsed and written again.
#[derive(Serialize)]
pub(crate) struct ToolCallView<'a> {
    id: &'a str,
    #[serde(rename = "executionId")]
    execution_id: &'a str,
    #[serde(rename = "toolName")]
    tool_name: &'a str,
    #[serde(serialize_with = "json_or_text")]
    input: Option<&'a str>,
    #[serde(serialize_with = "json_or_text")]
    output: Option<&'a str>,
    status: &'a str,
    #[serde(rename = "durationMs")]
    duration_ms: i64,
    #[serde(rename = "createdAt")]
    created_at: String,
}

/// A payload stored as JSON text is written as that JSON; any other text as a string.
fn json_or_text<S: Serializer>(text: &Option<&str>, serializer: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(t) => match serde_json::from_str::<&RawValue>(t) {
            Ok(json) => json.serialize(serializer),
            Err(_) => serializer.serialize_str(t),
        },
        None => serializer.serialize_none(),
    }
}

/// The view of a record.
pub(crate) fn view(e: &ToolExecution) -> ToolCallView<'_> {
    ToolCallView {
        id: &e.id,
        execution_id: e.conversation_id.as_str(),
        tool_name: &e.tool_name,
        input: e.request_payload.as_deref(),
        output: e.response_payload.as_deref(),
        status: &e.status,
        duration_ms: (e.latency_us + 500) / 1000,
        created_at: colloquy_core::time::rfc3339_ms(e.timestamp_ms),
    }
}

#[utoipa::path(
    get,
    path = "/api/tool-calls",
    params(ToolCallParams),
    responses(
        (status = 200, description = "Tool calls of the execution, oldest first"),
        (status = 400, description = "executionId missing or not a UUID"),
        (status = 401, description = "No or invalid API key"),
        (status = 404, description = "Conversation not found"),
    ),
    security(("api_key" = ["conversations:read"]))
)]
async fn list_tool_calls(
    caller: Result<Caller, ApiError>, State(state): State<AppState>,
    query: Result<Query<ToolCallParams>, ApiError>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(ApiError::MissingScope(scope)) => {
            return error(
                StatusCode::FORBIDDEN,
                &format!("Forbidden: the API key lacks the {scope} scope"),
            );
        }
        Err(e @ (ApiError::Internal(_) | ApiError::RateLimited(_))) => return e.into_response(),
        Err(_) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: a valid API key is required (xi-api-key or Authorization: Bearer)",
            );
        }
    };
    let Ok(Query(params)) = query else {
        return error(StatusCode::BAD_REQUEST, "Invalid query string");
    };
    let Some(id) = params.execution_id.filter(|s| !s.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "The executionId query parameter is required");
    };
    if !colloquy_core::ids::is_uuid(&id) {
        return error(StatusCode::BAD_REQUEST, "executionId must be a UUID");
    }
    let id = ConversationId::from(id);
    match state.store.has_conversation(&caller.workspace_id, &id).await {
        Ok(true) => {}
        Ok(false) => return error(StatusCode::NOT_FOUND, "Conversation not found"),
        Err(e) => return ApiError::from(e).into_response(),
    }
    match state.store.conversation_executions(&caller.workspace_id, &id).await {
        Ok(rows) => axum::Json(rows.iter().map(view).collect::<Vec<_>>()).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
