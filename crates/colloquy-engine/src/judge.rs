//! The judge: an LLM asked for a verdict. Test runs ask it whether a reply meets a success
//! condition, simulations whether a conversation meets each criterion, and tool calls (LLM
//! mock conditions, `llm` parameter checks) whether a value satisfies a description. It lives
//! apart from the tests and simulations that use it so neither imports the other.

use serde_json::Value;

use crate::EngineDeps;
use crate::llm::{ChatMessage, ChatRequest, LlmError, Role};

/// The judge's instructions for a verdict: strict JSON.
const VERDICT_SYSTEM: &str = "You evaluate an AI agent's reply in a test. Answer with only a JSON object: \
{\"result\": \"success\" or \"failure\", \"rationale\": \"one sentence\"}.";

/// The judge's instructions for a yes/no check of a value.
const CHECK_SYSTEM: &str =
    "You check a value against a condition. Answer with exactly one word: yes or no.";

/// Asks `model` (routed like any agent's model) with a system prompt and one user message, at
/// temperature 0.
pub async fn ask(
    deps: &EngineDeps, model: &str, system: &str, user: &str,
) -> Result<String, LlmError> {
    let (provider, model) = deps.llm.route(model)?;
    let request = ChatRequest {
        model,
        messages: vec![
            ChatMessage::text(Role::System, system),
            ChatMessage::text(Role::User, user),
        ],
        temperature: Some(0.0),
        ..Default::default()
    };
    Ok(provider.chat(&request, None).await?.text)
}

/// The judge's raw answer on `prompt`; [`parse_verdict`] reads it.
pub async fn verdict(deps: &EngineDeps, model: &str, prompt: &str) -> Result<String, LlmError> {
    ask(deps, model, VERDICT_SYSTEM, prompt).await
}

/// Whether `value` satisfies `description`, as `model` judges it. A judge that cannot be
/// asked says no (and the failure is logged): a condition nobody could check does not hold.
pub async fn holds(deps: &EngineDeps, model: &str, description: &str, value: &Value) -> bool {
    let question =
        format!("Condition: {description}\nValue: {value}\nDoes the value satisfy the condition?");
    match ask(deps, model, CHECK_SYSTEM, &question).await {
        Ok(answer) => answer.trim().to_ascii_lowercase().starts_with("yes"),
        Err(e) => {
            tracing::warn!(error = %e, "the LLM judge of a condition failed; treating it as not met");
            false
        }
    }
}

/// `{"result": "success"|"failure", "rationale": "..."}`, possibly inside a code fence: whether
/// it passed, and why. Anything else is not a verdict.
pub fn parse_verdict(answer: &str) -> Option<(bool, String)> {
    let start = answer.find('{')?;
    let end = answer.rfind('}')?;
    let v: Value = serde_json::from_str(answer.get(start..=end)?).ok()?;
    let passed = match v.get("result")?.as_str()? {
        "success" => true,
        "failure" => false,
        _ => return None,
    };
    let rationale = v.get("rationale").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some((passed, rationale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_strictly() {
        assert_eq!(
            parse_verdict(r#"{"result": "success", "rationale": "greeted"}"#),
            Some((true, "greeted".into()))
        );
        assert_eq!(
            parse_verdict("```json\n{\"result\": \"failure\", \"rationale\": \"rude\"}\n```"),
            Some((false, "rude".into()))
        );
        for bad in ["yes", "{}", r#"{"result": "maybe"}"#, r#"{"result": true}"#, "{not json}"] {
            assert_eq!(parse_verdict(bad), None, "{bad}");
        }
    }
}
