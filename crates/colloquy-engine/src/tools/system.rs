//! System tools, acting on the conversation itself. In a text conversation `end_call`,
//! `skip_turn` and `language_detection` have their effect (`transfer_to_agent` is in
//! `transfer.rs`, the knowledge base's search tools in `knowledge.rs`, the procedure tools in
//! `procedures.rs`); the telephony-only ones answer with a clear tool error.

use serde_json::{Value, json};

use super::{AgentTool, CallStatus, Effect, ToolOutcome};

pub(super) fn system_type(config: &Value) -> &str {
    config
        .pointer("/params/system_tool_type")
        .and_then(Value::as_str)
        .or_else(|| config.get("name").and_then(Value::as_str))
        .unwrap_or_default()
}

/// Arguments the LLM gives each system tool.
pub fn parameters(config: &Value) -> Value {
    match system_type(config) {
        "end_call" => {
            json!({"type": "object", "properties": {"reason": {"type": "string", "description": "Why the conversation ends"}}})
        }
        "language_detection" => {
            json!({"type": "object", "properties": {"language": {"type": "string", "description": "ISO 639-1 code of the language to switch to"}}, "required": ["language"]})
        }
        "transfer_to_agent" => super::transfer::parameters(config),
        "skip_turn" => json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
        "start_procedure" | "end_procedure" => super::procedures::parameters(),
        "knowledge_base_rag" | "knowledge_base" => {
            json!({"type": "object", "properties": {"query": {"type": "string", "description": "What to look up in the knowledge base"}}, "required": ["query"]})
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// Runs a system tool.
pub fn call(tool: &AgentTool, args: &Value) -> ToolOutcome {
    match system_type(&tool.config) {
        "end_call" => ToolOutcome {
            effect: Effect::EndCall,
            ..ToolOutcome::ok("The conversation will end after this message.")
        },
        "skip_turn" => {
            ToolOutcome { effect: Effect::SkipTurn, ..ToolOutcome::ok("Waiting for the user.") }
        }
        "language_detection" => {
            match args.get("language").and_then(Value::as_str).filter(|l| !l.is_empty()) {
                Some(lang) => ToolOutcome {
                    effect: Effect::Language(lang.to_owned()),
                    ..ToolOutcome::ok(format!("Language switched to {lang}."))
                },
                None => ToolOutcome::error(
                    CallStatus::Error,
                    "customer_config",
                    "language_detection needs a language",
                ),
            }
        }
        other => ToolOutcome::error(
            CallStatus::Error,
            "customer_config",
            format!(
                "The system tool {other} needs a phone call and is not available in a text conversation"
            ),
        ),
    }
}
