//! `POST /api/tools/{tool_id}/test`: calls a webhook tool by hand with the arguments given, as
//! a conversation would (egress guard, secrets, timeout), and answers what came back. Colloquy's
//! own route (the reference has none), behind the dashboard's "test this tool". The call is in
//! the tool's execution log like any other, under a conversation id of its own and no agent.

use axum::extract::Path;
use colloquy_core::ids::ToolId;
use colloquy_core::validation::Violation;
use colloquy_engine::tools::{ByHandError, call_by_hand};
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::environments;

#[utoipa::path(
    post,
    path = "/api/tools/{tool_id}/test",
    params(("tool_id" = String, Path)),
    request_body(content = Object, description = "`{arguments: {...}, environment?: string}`"),
    responses((status = 200, description = "`{conversation_id, status, is_error, error_type, latency_secs, response, request}`: `response` is what the LLM would read (the error, when it failed)")),
    security(("api_key" = ["tools:write"]))
)]
pub(super) async fn test_tool(
    cx: Ctx, Path(tool_id): Path<ToolId>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let row = cx.tool(&tool_id).await?;
    let arguments = match body.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(args @ Value::Object(_)) => args.clone(),
        Some(_) => {
            let why = "The arguments must be a JSON object";
            return Err(ApiError::invalid(Violation::new(["body", "arguments"], "dict_type", why)));
        }
    };
    let environment = body.get("environment").and_then(Value::as_str);
    let environment = environments::named(&cx, environment, ["body", "environment"]).await?;
    let engine = &cx.app.engine;
    let (outcome, conversation_id) =
        match call_by_hand(engine, &cx.workspace_id, &row, &arguments, &environment).await {
            Ok(done) => done,
            Err(ByHandError::NotCallable(kind)) => {
                return Err(ApiError::BadRequest {
                    status: "tool_not_callable",
                    message: ByHandError::NotCallable(kind).to_string(),
                });
            }
            Err(ByHandError::Store(e)) => return Err(e.into()),
        };
    Ok(Json(json!({
        "conversation_id": conversation_id,
        "status": outcome.status.as_str(),
        "is_error": outcome.is_error(),
        "error_type": outcome.error_type,
        "latency_secs": outcome.latency_us as f64 / 1e6,
        "response": outcome.payload.as_deref().unwrap_or(&outcome.result),
        "request": outcome.details,
    })))
}
