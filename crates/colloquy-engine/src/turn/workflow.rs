//! The workflow stage: moves the conversation through its agent's workflow. Before the LLM
//! answers, the current node's automatic exits are followed (unconditional edges, expressions
//! over dynamic variables that hold, a tool node's result); an `llm` edge is a tool the LLM
//! calls when the conversation meets its condition, and once the calls of that round are
//! recorded the conversation enters the edge's target and follows its automatic exits in turn.
//! On the way, a subagent node reconfigures the agent, a tool node runs its tools, a
//! standalone-agent node hands the conversation over, and an end node ends it.

use colloquy_core::ids::ToolId;
use colloquy_core::workflow::{Condition, MAX_STEPS, NodeKind, Standalone, ToolStep, eval, truthy};
use serde_json::{Map, Value, json};

use super::llm::Llm;
use super::output::Reply;
use super::{Events, TurnEvent, tools};
use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::error::EngineError;
use crate::llm::{ChatMessage, ToolCall};
use crate::tools::AgentTool;
use crate::tools::transfer::Transfer;
use crate::workflow::subagent;

/// What the turn does once the workflow has moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// The agent (in the node reached) answers now.
    Answer,
    /// The node waits for the user: the turn ends with what was said.
    Wait,
    /// An end node: the conversation ends after this turn.
    End,
    /// A standalone-agent node: the conversation goes to another agent after this turn.
    HandOver,
}

/// Where the walk goes: the node an `llm` edge leads to (`taken`), or the current node's
/// automatic exits.
pub(crate) async fn advance(
    state: &mut State, rt: &Runtime, llm: &Llm, reply: &mut Reply, events: Events<'_>,
    mut taken: Option<String>,
) -> Result<Next, EngineError> {
    if state.walk.is_none() {
        return Ok(Next::Answer);
    }
    let mut next = Next::Answer;
    for _ in 0..MAX_STEPS {
        let Some(to) = taken.take().or_else(|| automatic_exit(state)) else {
            return Ok(next);
        };
        let Some(walk) = state.walk.as_ref() else { return Ok(next) };
        let Some(node) = walk.graph.nodes.get(&to).cloned() else {
            tracing::warn!(node = %to, "a workflow edge leads to no node; the walk stays");
            return Ok(next);
        };
        let from_start =
            walk.graph.nodes.get(&walk.node).is_some_and(|n| n.kind == NodeKind::Start);
        enter(state, rt, reply, events, &to, &node.kind).await?;
        match &node.kind {
            NodeKind::End => return Ok(Next::End),
            NodeKind::Standalone(hand_over) => match &hand_over.agent_id {
                Some(_) => {
                    transfer(state, reply, events, hand_over);
                    return Ok(Next::HandOver);
                }
                None => taken = hand_over.node_id.clone(),
            },
            NodeKind::Tools(steps) => {
                let succeeded = run_tools(state, rt, llm, reply, events, &to, steps).await?;
                if let Some(walk) = state.walk.as_mut() {
                    walk.last_result = Some(succeeded);
                }
                next = Next::Answer;
            }
            NodeKind::Subagent(s) => {
                next = match s.entry_behavior.as_str() {
                    "wait_for_user" => Next::Wait,
                    "generate_immediately" => Next::Answer,
                    _ if from_start => Next::Wait,
                    _ => Next::Answer,
                };
            }
            NodeKind::Start | NodeKind::PhoneNumber => next = Next::Answer,
        }
    }
    tracing::warn!(
        steps = MAX_STEPS,
        "a workflow passed through too many nodes in one turn; it stops here"
    );
    Ok(next)
}

/// Whether the walk would move before the LLM answers (an exit the engine takes by itself).
pub(crate) fn moves(state: &State) -> bool {
    automatic_exit(state).is_some()
}

/// The first of the current node's exits the engine can take by itself.
fn automatic_exit(state: &State) -> Option<String> {
    let walk = state.walk.as_ref()?;
    walk.graph.exits(&walk.node).into_iter().find_map(|exit| {
        let open = match exit.condition {
            Condition::Unconditional => true,
            Condition::Expression(ast) => truthy(&eval(ast, &state.vars)),
            Condition::Result(wanted) => walk.last_result == Some(*wanted),
            Condition::Llm(_) => false,
        };
        open.then(|| exit.to.to_owned())
    })
}

/// Moves the walk into `id`: a start or subagent node reconfigures the agent; every node is
/// the turn's (`agent_metadata.workflow_node_id`) and is announced.
async fn enter(
    state: &mut State, rt: &Runtime, reply: &mut Reply, events: Events<'_>, id: &str,
    kind: &NodeKind,
) -> Result<(), EngineError> {
    let current = state.agent.clone();
    let Some(walk) = state.walk.as_mut() else { return Ok(()) };
    let base = walk.base.get_or_insert(current).clone();
    walk.node = id.to_owned();
    walk.last_result = None;
    walk.transitions = walk.transition_tools();
    let agent = match kind {
        NodeKind::Start => Some(base),
        NodeKind::Subagent(node) => Some(subagent(&rt.deps, &base, node).await?),
        _ => None,
    };
    if let Some(mut agent) = agent {
        let config = agent.conversation_config;
        agent.conversation_config = rt.deps.configs.share(&agent.agent_id, Some(id), config);
        agent.workflow_node_id = Some(id.to_owned());
        state.agent = agent;
        state.knowledge = None;
    } else {
        state.agent.workflow_node_id = Some(id.to_owned());
    }
    reply.entry["agent_metadata"]["workflow_node_id"] = json!(id);
    if let Some(tx) = events {
        let _ = tx.send(TurnEvent::Node {
            agent_id: state.agent.agent_id.to_string(),
            node_id: id.to_owned(),
        });
    }
    Ok(())
}

/// A standalone-agent node's hand-over, carried out once the turn is recorded.
fn transfer(state: &mut State, reply: &mut Reply, events: Events<'_>, node: &Standalone) {
    let Some(agent_id) = &node.agent_id else { return };
    if let Some(message) = &node.transfer_message {
        reply.say(&state.render(message), events);
    }
    state.transfer = Some(Transfer {
        agent_id: agent_id.as_str().into(),
        transfer_message: node.transfer_message.clone(),
        first_message: node.first_message,
        delay_ms: node.delay_ms.min(crate::tools::transfer::MAX_DELAY_MS),
        node_id: node.node_id.clone(),
    });
}

/// Runs a tool node's tools in parallel (their LLM parameters filled by the agent's model on
/// the conversation so far, the node's overrides on top), records them like the LLM's calls,
/// and says whether they all succeeded.
async fn run_tools(
    state: &mut State, rt: &Runtime, llm: &Llm, reply: &mut Reply, events: Events<'_>, node: &str,
    steps: &[ToolStep],
) -> Result<bool, EngineError> {
    let ids: Vec<ToolId> = steps.iter().map(|s| ToolId::from(s.tool_id.as_str())).collect();
    let rows = rt.deps.store.get_tools(&state.agent.workspace_id, &ids).await?;
    let found: Vec<AgentTool> = rows.iter().filter_map(AgentTool::from_row).collect();
    let mut calls = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(tool) = found.iter().find(|t| t.id.as_str() == step.tool_id) else {
            tracing::warn!(tool = %step.tool_id, node, "a workflow tool node names a tool that does not exist");
            return Ok(false);
        };
        let spec = tool.spec();
        let mut args = if spec.parameters["properties"].as_object().is_some_and(|p| !p.is_empty()) {
            llm.fill(state, rt, spec).await?
        } else {
            json!({})
        };
        apply_overrides(&mut args, &step.schema_overrides, &state.vars);
        calls.push(ToolCall {
            id: format!("{node}_{i}_{:016x}", u64::from_le_bytes(colloquy_core::random::bytes())),
            name: tool.name.clone(),
            arguments: args.to_string(),
        });
    }
    let among: Vec<&AgentTool> = found.iter().collect();
    let outcomes = tools::execute_all(state, rt, &calls, &among, events).await?;
    state.history.push(ChatMessage::calls(String::new(), calls.clone()));
    let mut succeeded = true;
    for (call, (kind, outcome)) in calls.iter().zip(outcomes) {
        succeeded &= !outcome.is_error();
        let updates = tools::assign(state, call, &outcome);
        tools::record(reply, call, kind, &outcome, updates);
        state.history.push(ChatMessage::tool_result(&call.id, outcome.result));
    }
    Ok(succeeded)
}

/// A tool node's `schema_overrides` on the arguments: constants, dynamic variables, omitted
/// parameters (`llm` ones are the model's). A webhook's `path_params.`, `query_params.` and
/// `request_body.` prefixes name the parameter itself.
fn apply_overrides(args: &mut Value, overrides: &Map<String, Value>, vars: &Map<String, Value>) {
    let Some(args) = args.as_object_mut() else { return };
    for (path, o) in overrides {
        let key = ["path_params.", "query_params.", "request_body."]
            .iter()
            .find_map(|p| path.strip_prefix(p))
            .unwrap_or(path)
            .to_owned();
        match o.get("source").and_then(Value::as_str) {
            Some("constant") => {
                args.insert(key, o.get("constant_value").cloned().unwrap_or(Value::Null));
            }
            Some("dynamic_variable") => {
                let name = o.get("dynamic_variable").and_then(Value::as_str).unwrap_or_default();
                if let Some(v) = vars.get(name) {
                    args.insert(key, v.clone());
                }
            }
            Some("omit") => {
                args.remove(&key);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_and_drop_arguments() {
        let vars: Map<String, Value> = serde_json::from_value(json!({"order": "A-7"})).unwrap();
        let overrides: Map<String, Value> = serde_json::from_value(json!({
            "path_params.id": {"source": "dynamic_variable", "dynamic_variable": "order"},
            "request_body.kind": {"source": "constant", "constant_value": "refund"},
            "note": {"source": "omit"},
            "reason": {"source": "llm", "prompt": "why"}
        }))
        .unwrap();
        let mut args = json!({"note": "x", "reason": "broken"});
        apply_overrides(&mut args, &overrides, &vars);
        assert_eq!(args, json!({"id": "A-7", "kind": "refund", "reason": "broken"}));
    }
}
