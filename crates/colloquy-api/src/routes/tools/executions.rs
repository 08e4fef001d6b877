//! `GET /v1/convai/tools/{tool_id}/executions`: a tool's calls from the audit log, newest first.

use axum::extract::Path;
use axum::response::Response;
use colloquy_core::cursor::Direction;
use colloquy_core::ids::{AgentId, ToolId};
use colloquy_core::validation::Violation;
use colloquy_store::{ExecutionFilter, ToolExecution};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use utoipa::IntoParams;

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::paging::{PageSizeRule, Pager};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExecutionParams {
    /// From the previous page.
    cursor: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Only failed (true) or successful (false) calls.
    is_error: Option<bool>,
    /// Only this agent's calls.
    agent_id: Option<String>,
    /// Only this branch's calls.
    branch_id: Option<String>,
    /// Calls at or after this unix time (seconds, fractions allowed).
    start_time: Option<f64>,
    /// Calls at or before this unix time (seconds, fractions allowed).
    end_time: Option<f64>,
}

/// Unix seconds (inclusive bound) to milliseconds, rounding so the bound stays inclusive.
fn to_ms(field: &'static str, secs: Option<f64>, round_up: bool) -> ApiResult<Option<i64>> {
    let Some(secs) = secs else { return Ok(None) };
    if !secs.is_finite() {
        return Err(ApiError::invalid(Violation::new(
            ["query", field],
            "finite_number",
            "Input should be a finite number",
        )));
    }
    let ms = secs * 1000.0;
    let ms = if round_up { ms.ceil() } else { ms.floor() };
    Ok(Some(ms.clamp(i64::MIN as f64, i64::MAX as f64) as i64))
}

/// The `ToolExecutionResponseModel` of a record, borrowed from it (a page serializes thirty).
#[derive(Serialize)]
struct ExecutionView<'a> {
    id: &'a str,
    tool_id: &'a str,
    tool_request_id: &'a str,
    conversation_id: &'a str,
    agent_id: &'a str,
    branch_id: Option<&'a str>,
    timestamp: f64,
    latency_secs: f64,
    is_error: bool,
    request_payload: Option<&'a str>,
    response_payload: Option<&'a str>,
    error_message: Option<&'a str>,
    error_type: Option<&'a str>,
    /// Stored as JSON text; written as it is (`null` if it is not JSON).
    #[serde(serialize_with = "json_or_null")]
    tool_call_details: Option<&'a str>,
}

fn json_or_null<S: Serializer>(text: &Option<&str>, serializer: S) -> Result<S::Ok, S::Error> {
    text.and_then(|t| serde_json::from_str::<&RawValue>(t).ok()).serialize(serializer)
}

/// The view of a record.
fn execution_view(e: &ToolExecution) -> ExecutionView<'_> {
    ExecutionView {
        id: &e.id,
        tool_id: e.tool_id.as_str(),
        tool_request_id: &e.tool_request_id,
        conversation_id: e.conversation_id.as_str(),
        agent_id: e.agent_id.as_str(),
        branch_id: e.branch_id.as_deref(),
        timestamp: e.timestamp_ms as f64 / 1000.0,
        latency_secs: e.latency_us as f64 / 1_000_000.0,
        is_error: e.is_error,
        request_payload: e.request_payload.as_deref(),
        response_payload: e.response_payload.as_deref(),
        error_message: e.error_message.as_deref(),
        error_type: e.error_type.as_deref(),
        tool_call_details: e.tool_call_details.as_deref(),
    }
}

#[utoipa::path(get, path = "/v1/convai/tools/{tool_id}/executions", params(("tool_id" = String, Path), ExecutionParams), security(("api_key" = ["tools:read"])))]
pub(super) async fn get_tool_executions(
    cx: Ctx, Path(tool_id): Path<ToolId>, Query(params): Query<ExecutionParams>,
) -> ApiResult<Response> {
    let filter = ExecutionFilter {
        is_error: params.is_error,
        agent_id: params.agent_id.filter(|s| !s.is_empty()).map(AgentId::from),
        branch_id: params.branch_id.filter(|s| !s.is_empty()),
        start_ms: to_ms("start_time", params.start_time, true)?,
        end_ms: to_ms("end_time", params.end_time, false)?,
        // An MCP tool's derived id has no record (DESIGN.md §4.1); any other tool must exist.
        of_existing_tool: !tool_id.is_mcp_derived(),
    };
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "timestamp",
        Direction::Desc,
        &[
            tool_id.as_str(),
            &format!("{:?}", filter.is_error),
            filter.agent_id.as_ref().map_or("", AgentId::as_str),
            filter.branch_id.as_deref().unwrap_or_default(),
            &format!("{:?}", filter.start_ms),
            &format!("{:?}", filter.end_ms),
        ],
    )?;
    let rows = cx
        .app
        .store
        .list_tool_executions(&cx.workspace_id, &tool_id, &filter, pager.after()?, pager.fetch())
        .await?;
    // A page of a tool that exists is never empty for want of the tool; an empty one may be.
    if rows.is_empty() && filter.of_existing_tool {
        cx.tool(&tool_id).await?;
    }
    let page = pager.page(rows, |r| (r.timestamp_ms, r.id.as_str()));
    page.view(execution_view).respond("executions")
}
