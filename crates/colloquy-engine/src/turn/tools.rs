//! The tools stage: the calls of one LLM answer run concurrently ([`crate::tools::execute`]:
//! mocked or real, each recorded durably before its result is told), their results join the
//! history and the agent's transcript entry, the variables their responses assign are set, and
//! what system tools do to the conversation (end the call, skip the turn, switch language,
//! start or end a procedure) takes effect.

use colloquy_core::redact;
use colloquy_core::tools::ToolKind;
use serde_json::{Value, json};

use super::output::Reply;
use super::{Events, TurnEvent};
use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::error::EngineError;
use crate::llm::{ChatMessage, ChatResponse, ToolCall};
use crate::tools::procedures::Change;
use crate::tools::{self, AgentTool, CallScope, Effect, ToolOutcome};

/// Runs the calls `answer` asks for; whether the turn stops here (no further LLM round).
pub(crate) async fn run(
    state: &mut State, rt: &Runtime, answer: ChatResponse, events: Events<'_>, reply: &mut Reply,
) -> Result<bool, EngineError> {
    state.history.push(ChatMessage::calls(answer.text, answer.tool_calls.clone()));
    let offered: Vec<&AgentTool> = state.tools().collect();
    let outcomes = execute_all(state, rt, &answer.tool_calls, &offered, events).await?;
    let mut skip = false;
    for (call, (tool, mut outcome)) in answer.tool_calls.iter().zip(outcomes) {
        let updates = assign(state, call, &outcome);
        record(reply, call, tool, &outcome, updates);
        match std::mem::take(&mut outcome.effect) {
            Effect::EndCall => {
                reply.end_call = true;
                reply.end_reason.get_or_insert("end_call tool was called");
            }
            Effect::SkipTurn => skip = true,
            Effect::Language(lang) => {
                if let Some(tx) = events {
                    let _ = tx.send(TurnEvent::Language(lang.clone()));
                }
                state.language = lang;
            }
            Effect::Procedure(Change::Start(id)) => state.active_procedures.push(id),
            Effect::Procedure(Change::End(id)) => state.active_procedures.retain(|a| *a != id),
            // The current agent's turn ends here, with its transfer message; the new agent
            // takes over once the turn is recorded.
            Effect::Transfer(transfer) if state.transfer.is_none() => {
                if let Some(message) = &transfer.transfer_message {
                    reply.say(&state.render(message), events);
                }
                state.transfer = Some(*transfer);
                skip = true;
            }
            // The first move the LLM asks for wins; the workflow stage makes it after the
            // calls.
            Effect::Node(target) if state.next_node.is_none() => state.next_node = Some(target),
            Effect::Transfer(_) | Effect::Node(_) | Effect::None => {}
        }
        state.history.push(ChatMessage::tool_result(&call.id, outcome.result));
    }
    Ok(reply.end_call || skip)
}

/// Runs the calls of one answer concurrently; each is recorded before its result is told.
pub(super) async fn execute_all(
    state: &State, rt: &Runtime, calls: &[ToolCall], among: &[&AgentTool], events: Events<'_>,
) -> Result<Vec<(Option<ToolKind>, ToolOutcome)>, EngineError> {
    let scope = CallScope {
        deps: &rt.deps,
        workspace_id: &state.agent.workspace_id,
        conversation_id: &rt.id,
        agent_id: &state.agent.agent_id,
        branch_id: state.agent.branch_id.as_deref(),
        environment: &state.agent.environment,
        model: state.agent.llm(),
        vars: &state.vars,
        mocks: &rt.mocks,
        client: rt.client.as_deref(),
        mcp: rt.mcp.as_deref(),
        documents: state.knowledge.as_ref().map_or(&[][..], |k| k.searchable.as_slice()),
        procedures: state.procedures(),
    };
    let runs = calls.iter().map(|call| {
        let tool = among.iter().copied().find(|t| t.name == call.name);
        let scope = &scope;
        async move {
            if let Some(tx) = events {
                let _ = tx.send(TurnEvent::ToolRequest {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    kind: tool.map(|t| t.kind),
                    parameters: serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({})),
                });
            }
            let outcome = tools::execute(scope, tool, call).await;
            (tool.map(|t| t.kind), outcome)
        }
    });
    let mut outcomes = Vec::with_capacity(calls.len());
    for (call, (tool, outcome)) in calls.iter().zip(futures_util::future::join_all(runs).await) {
        let outcome = outcome?;
        if let Some(tx) = events {
            let _ = tx.send(TurnEvent::ToolResponse {
                call_id: call.id.clone(),
                name: call.name.clone(),
                kind: tool,
                result: outcome.result.clone(),
                is_error: outcome.is_error(),
            });
        }
        outcomes.push((tool, outcome));
    }
    Ok(outcomes)
}

/// Sets the variables the call's response assigns; the reference's `dynamic_variable_updates`
/// saying so (but for sanitized ones).
pub(super) fn assign(state: &mut State, call: &ToolCall, outcome: &ToolOutcome) -> Vec<Value> {
    let now = colloquy_core::time::now_ms() as f64 / 1000.0;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut updates = Vec::new();
    for a in &outcome.assigned {
        let old = state.vars.insert(a.name.clone(), a.value.clone());
        // A sanitized value is set, and shown nowhere.
        if !a.sanitized {
            updates.push(json!({
                "variable_name": a.name,
                "old_value": old.as_ref().map(text),
                "new_value": text(&a.value),
                "updated_at": now,
                "tool_name": call.name,
                "tool_request_id": call.id,
            }));
        }
    }
    updates
}

/// The call and its result in the agent's transcript entry (secrets scrubbed).
pub(super) fn record(
    reply: &mut Reply, call: &ToolCall, kind: Option<ToolKind>, outcome: &ToolOutcome,
    updates: Vec<Value>,
) {
    let wire_type = match kind {
        Some(kind @ (ToolKind::Client | ToolKind::Webhook | ToolKind::Mcp)) => Some(kind.as_str()),
        _ => None,
    };
    let result = redact::scrub(&outcome.result, &outcome.secrets);
    if let Some(calls) = reply.entry["tool_calls"].as_array_mut() {
        calls.push(json!({
            "type": wire_type,
            "request_id": call.id,
            "tool_name": call.name,
            "params_as_json": call.arguments,
            "tool_has_been_called": !outcome.mocked,
            "tool_details": outcome.details,
        }));
    }
    if let Some(results) = reply.entry["tool_results"].as_array_mut() {
        results.push(json!({
            "type": wire_type,
            "request_id": call.id,
            "tool_name": call.name,
            "result_value": result,
            "is_error": outcome.is_error(),
            "tool_has_been_called": !outcome.mocked,
            "tool_latency_secs": outcome.latency_us as f64 / 1_000_000.0,
            "error_type": outcome.error_type.clone().unwrap_or_default(),
            "raw_error_message": if outcome.is_error() { result.clone() } else { String::new() },
            "dynamic_variable_updates": updates,
        }));
    }
}
