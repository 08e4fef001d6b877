//! The models this server can use (`GET /v1/convai/llm/list`): the local model, the names
//! the operator's routes spell out, and the providers' own model lists.

use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_llms))
}

/// What a model can do, as far as its name tells (its family's figures); any other name is
/// taken for a text model with a common context size.
fn capabilities(name: &str) -> Value {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    let (context, output, images, documents) = if starts(&["gemini-"]) {
        (1_048_576, 8_192, true, true)
    } else if starts(&["claude-"]) {
        (200_000, 8_192, true, true)
    } else if starts(&["gpt-4.1", "gpt-5"]) {
        (1_047_576, 32_768, true, true)
    } else if starts(&["gpt-4o", "gpt-4-turbo"]) {
        (128_000, 16_384, true, true)
    } else {
        (128_000, 8_192, false, false)
    };
    json!({
        "llm": name,
        "is_checkpoint": is_checkpoint(name),
        "max_tokens_limit": output,
        "max_context_limit": context,
        "supports_image_input": images,
        "supports_document_input": documents,
        "supports_parallel_tool_calls": true,
    })
}

/// Whether a name pins a dated snapshot (`claude-sonnet-4@20250514`, `gpt-5-2025-08-07`,
/// `gemini-2.0-flash-001`) rather than naming a moving alias.
fn is_checkpoint(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = name.split('-').collect();
    name.contains('@')
        || parts.last().is_some_and(|p| p.len() == 3 && digits(p))
        || (parts.len() > 3
            && parts[parts.len() - 3..].iter().all(|p| digits(p))
            && parts[parts.len() - 3].len() == 4)
}

#[utoipa::path(get, path = "/v1/convai/llm/list", security(("api_key" = ["agents:read"])))]
async fn list_llms(cx: Ctx) -> ApiResult<Json<Value>> {
    let available = cx.app.engine.llm.available().await;
    let llms: Vec<Value> = available
        .into_iter()
        .map(|(name, local)| match local {
            // The local model reads text only, within the context every generation gets.
            Some(_) => json!({
                "llm": name,
                "is_checkpoint": false,
                "max_tokens_limit": colloquy_engine::llm::embedded::CONTEXT_TOKENS,
                "max_context_limit": colloquy_engine::llm::embedded::CONTEXT_TOKENS,
                "supports_image_input": false,
                "supports_document_input": false,
                "supports_parallel_tool_calls": true,
            }),
            None => capabilities(&name),
        })
        .collect();
    Ok(Json(json!({
        "llms": llms,
        "default_deprecation_config": {
            "warning_start_days": 30,
            "fallback_start_days": 14,
            "fallback_complete_days": 7,
            "fallback_start_percentage": 25,
            "fallback_complete_percentage": 100,
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_are_checkpoints() {
        for (name, want) in [
            ("gpt-4o", false),
            ("gpt-5-2025-08-07", true),
            ("claude-sonnet-4@20250514", true),
            ("gemini-2.0-flash-001", true),
            ("qwen2.5-1.5b-instruct", false),
            ("gpt-5.2", false),
        ] {
            assert_eq!(is_checkpoint(name), want, "{name}");
        }
    }
}
