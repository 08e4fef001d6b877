//! `transfer_to_agent`: the LLM picks one of the tool's `transfers` (by number, each with the
//! condition the LLM reads), the target is checked to exist in the workspace, and the result is
//! the reference's `TransferToAgentToolResult...` model. The switch itself happens once the
//! turn's calls are recorded (`conversation::transfer`).

use colloquy_core::ids::AgentId;
use serde_json::{Value, json};

use super::{AgentTool, CallScope, CallStatus, Effect, ToolOutcome};

/// The longest a transfer waits before it happens.
pub(crate) const MAX_DELAY_MS: u64 = 10_000;

/// A transfer the LLM asked for, to carry out after the turn's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The agent taking over.
    pub agent_id: AgentId,
    /// What the current agent says before handing over, if anything.
    pub transfer_message: Option<String>,
    /// Whether the new agent opens with its first message (else it answers the conversation).
    pub first_message: bool,
    /// How long to wait before the switch.
    pub delay_ms: u64,
    /// Where in the new agent's workflow the conversation starts (a workflow's hand-over).
    pub node_id: Option<String>,
}

/// The arguments: which transfer (its conditions listed), and why.
pub fn parameters(config: &Value) -> Value {
    let choices: Vec<String> = transfers(config)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let condition = t.get("condition").and_then(Value::as_str).unwrap_or("no condition");
            format!("{i}: {condition}")
        })
        .collect();
    let description = if choices.is_empty() {
        "Index of the transfer target".to_owned()
    } else {
        format!("Index of the transfer to make, by its condition: {}", choices.join("; "))
    };
    json!({
        "type": "object",
        "properties": {
            "agent_number": {"type": "integer", "description": description},
            "reason": {"type": "string", "description": "Why the conversation is transferred"}
        },
        "required": ["agent_number"]
    })
}

fn transfers(config: &Value) -> &[Value] {
    config.pointer("/params/transfers").and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Checks the chosen transfer and its target; the effect carries it out after the turn.
pub async fn call(scope: &CallScope<'_>, tool: &AgentTool, args: &Value) -> ToolOutcome {
    let failed = |error: String| {
        let result = json!({
            "result_type": "transfer_to_agent_error",
            "status": "error",
            "from_agent": scope.agent_id,
            "error": error,
        });
        ToolOutcome::error(CallStatus::Error, "customer_config", result.to_string())
    };
    let index = args.get("agent_number").and_then(Value::as_u64).unwrap_or(0) as usize;
    let Some(chosen) = transfers(&tool.config).get(index) else {
        return failed(format!("There is no transfer number {index}"));
    };
    let Some(target) = chosen.get("agent_id").and_then(Value::as_str).filter(|a| !a.is_empty())
    else {
        return failed(format!("Transfer number {index} names no agent"));
    };
    let target = AgentId::from(target);
    if let Err(e) = scope.deps.store.get_agent(scope.workspace_id, &target).await {
        return failed(format!("The agent {target} cannot take over: {e}"));
    }
    let text = |key: &str| chosen.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let transfer = Transfer {
        agent_id: target,
        transfer_message: text("transfer_message").map(str::to_owned),
        first_message: chosen
            .get("enable_transferred_agent_first_message")
            .and_then(Value::as_bool)
            == Some(true),
        delay_ms: chosen.get("delay_ms").and_then(Value::as_u64).unwrap_or(0).min(MAX_DELAY_MS),
        node_id: text("node_id").map(str::to_owned),
    };
    let result = json!({
        "result_type": "transfer_to_agent_success",
        "status": "success",
        "from_agent": scope.agent_id,
        "to_agent": transfer.agent_id,
        "to_node": transfer.node_id,
        "condition": text("condition").unwrap_or_default(),
        "delay_ms": transfer.delay_ms,
        "transfer_message": transfer.transfer_message,
        "enable_transferred_agent_first_message": transfer.first_message,
        "branch_info": null,
        "preserve_client_tts_overrides": chosen.get("preserve_client_tts_overrides").and_then(Value::as_bool).unwrap_or(false),
    });
    ToolOutcome {
        effect: Effect::Transfer(Box::new(transfer)),
        ..ToolOutcome::ok(result.to_string())
    }
}
