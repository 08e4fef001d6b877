//! LLM usage estimates (`POST /v1/convai/llm-usage/calculate`, and per agent), computed by
//! `colloquy_core::llm_usage` from the price table in the repository.

use axum::extract::{Path, State};
use colloquy_core::ids::AgentId;
use colloquy_core::llm_usage::{self, Usage};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Caller, Ctx};
use crate::error::ApiResult;
use crate::extract::{Json, check_body};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(calculate)).routes(routes!(calculate_for_agent))
}

/// The priced models' estimates, and the local model's (free: it runs on this server).
fn respond(app: &AppState, usage: Usage) -> Json<Value> {
    let mut prices: Vec<Value> = llm_usage::estimate(usage)
        .into_iter()
        .map(|(llm, per_minute, per_message)| json!({"llm": llm, "price_per_minute": per_minute, "price_per_message": per_message}))
        .collect();
    if let Some((name, _)) = app.engine.llm.local() {
        prices.push(json!({"llm": name, "price_per_minute": 0.0, "price_per_message": 0.0}));
    }
    Json(json!({ "llm_prices": prices }))
}

fn number(body: &Value, key: &str) -> Option<u64> {
    body.get(key).and_then(Value::as_i64).map(|n| n.max(0) as u64)
}

#[utoipa::path(post, path = "/v1/convai/llm-usage/calculate", security(("api_key" = ["agents:read"])))]
async fn calculate(
    _caller: Caller, State(app): State<AppState>, Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    check_body("LLMUsageCalculatorPublicRequestModel", &mut body)?;
    Ok(respond(
        &app,
        Usage {
            prompt_length: number(&body, "prompt_length").unwrap_or(0),
            number_of_pages: number(&body, "number_of_pages").unwrap_or(0),
            rag_enabled: body.get("rag_enabled").and_then(Value::as_bool).unwrap_or(false),
            tools: 0,
        },
    ))
}

#[utoipa::path(post, path = "/v1/convai/agent/{agent_id}/llm-usage/calculate", params(("agent_id" = String, Path)), security(("api_key" = ["agents:read"])))]
async fn calculate_for_agent(
    cx: Ctx, Path(agent_id): Path<AgentId>, Json(mut body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let row = cx.agent(&agent_id).await?;
    check_body("LLMUsageCalculatorRequestModel", &mut body)?;
    let doc: Value = serde_json::from_str(&row.document)?;
    let prompt = doc.pointer("/conversation_config/agent/prompt").cloned().unwrap_or(Value::Null);
    let prompt_length =
        prompt.get("prompt").and_then(Value::as_str).map_or(0, |p| p.chars().count() as u64);
    let tools = prompt.get("tool_ids").and_then(Value::as_array).map_or(0, |t| t.len() as u64)
        + prompt.get("tools").and_then(Value::as_array).map_or(0, |t| t.len() as u64);
    Ok(respond(
        &cx.app,
        Usage {
            prompt_length: number(&body, "prompt_length").unwrap_or(prompt_length),
            number_of_pages: number(&body, "number_of_pages").unwrap_or(0),
            rag_enabled: body.get("rag_enabled").and_then(Value::as_bool).unwrap_or_else(|| {
                prompt.pointer("/rag/enabled").and_then(Value::as_bool).unwrap_or(false)
            }),
            tools,
        },
    ))
}
