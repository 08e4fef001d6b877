//! `tool` tests: did the agent call the expected tool with parameters that match (exact,
//! regex, LLM-judged or anything), or, with `verify_absence`, not call it at all.

use colloquy_core::ids::ToolId;
use colloquy_core::mocks;
use serde_json::{Value, json};

use super::Verdict;
use crate::{EngineDeps, judge};

/// The verdict on the `calls` (name, arguments) the agent made, against the test's
/// `tool_call_parameters`; `tools` names the agent's tools by id.
pub(super) async fn judge_tool_calls(
    deps: &EngineDeps, model: &str, test: &Value, calls: &[(String, Value)],
    tools: &[(ToolId, String)],
) -> Verdict {
    let expectation = &test["tool_call_parameters"];
    let id = expectation["referenced_tool"].get("id").and_then(Value::as_str).unwrap_or_default();
    let name = tools.iter().find(|(tid, _)| tid == id).map_or(id, |(_, n)| n.as_str()).to_owned();
    let made: Vec<String> = calls.iter().map(|(n, p)| format!("{n}({p})")).collect();
    let mut messages = vec![format!(
        "Tool calls made: {}",
        if made.is_empty() { "none".into() } else { made.join(", ") }
    )];
    if expectation.get("verify_absence").and_then(Value::as_bool) == Some(true) {
        let absent = !calls.iter().any(|(n, _)| *n == name);
        let summary = if absent {
            format!("{name} was not called, as expected")
        } else {
            format!("{name} was called but should not have been")
        };
        return Verdict::of(absent, summary, messages);
    }
    let any = test.get("check_any_tool_matches").and_then(Value::as_bool) == Some(true);
    if !any && calls.len() > 1 {
        let summary = format!("The agent made {} tool calls where one was expected", calls.len());
        return Verdict::of(false, summary, messages);
    }
    let conditions = conditions(expectation);
    let candidates =
        calls.iter().take(if any { calls.len() } else { 1 }).filter(|(called, _)| *called == name);
    for (_, params) in candidates {
        if matches(deps, model, &conditions, params, &mut messages).await {
            let summary = format!("{name} was called with matching parameters");
            return Verdict::of(true, summary, messages);
        }
    }
    let summary = format!("No call of {name} matched the expectation");
    Verdict::of(false, summary, messages)
}

/// The verdict on a `workflow_node_transition` expectation: did the agent enter the node
/// (`target_node_id` of `agent_id`'s workflow) while it answered? `nodes` are the (agent,
/// node) pairs it entered, in order.
pub(super) fn judge_transition(expected: &Value, nodes: &[(String, String)]) -> Verdict {
    let field = |k: &str| expected.get(k).and_then(Value::as_str).unwrap_or_default();
    let (agent, node) = (field("agent_id"), field("target_node_id"));
    let entered: Vec<String> = nodes.iter().map(|(a, n)| format!("{n} ({a})")).collect();
    let messages = vec![format!(
        "Workflow nodes entered: {}",
        if entered.is_empty() { "none".into() } else { entered.join(", ") }
    )];
    let reached = nodes.iter().any(|(a, n)| a == agent && n == node);
    let summary = if reached {
        format!("The agent moved to workflow node {node}")
    } else {
        format!("The agent did not move to workflow node {node}")
    };
    Verdict::of(reached, summary, messages)
}

/// The expectation's parameter checks, in the shape of a mock's conditions.
fn conditions(expectation: &Value) -> Vec<mocks::Condition> {
    let Some(parameters) = expectation.get("parameters").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mock = json!({"mock_result": "", "parameter_conditions": parameters});
    mocks::Mock::parse(&mock, &[]).map(|m| m.conditions).unwrap_or_default()
}

/// Whether every condition holds for `params`, noting each that does not.
async fn matches(
    deps: &EngineDeps, model: &str, conditions: &[mocks::Condition], params: &Value,
    messages: &mut Vec<String>,
) -> bool {
    let mut all = true;
    for c in conditions {
        let mut judge = |description: String, value: Value| async move {
            judge::holds(deps, model, &description, &value).await
        };
        if !mocks::holds(c, params, &mut judge).await {
            messages.push(format!("Parameter {} did not match", c.path));
            all = false;
        }
    }
    all
}
