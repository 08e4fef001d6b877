//! Where a conversation is in its agent's workflow ([`Walk`]), and the configuration each node
//! gives the agent: the start node runs the agent as configured, a subagent node the agent
//! with the node's overrides ([`subagent`]). The turn's `workflow` stage moves the walk.

use std::sync::Arc;

use colloquy_core::agents::merge;
use colloquy_core::workflow::{Condition, Subagent, Workflow};
use colloquy_store::StoreError;
use serde_json::{Value, json};

use crate::EngineDeps;
use crate::agent::{AgentSnapshot, offered_tools};
use crate::tools::{AgentTool, Effect, ToolOutcome};

/// The system tool type of the tools that take an `llm` edge.
pub(crate) const TRANSITION: &str = "workflow_transition";

/// A conversation's place in a workflow.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    /// The graph.
    pub(crate) graph: Arc<Workflow>,
    /// The node the conversation is in.
    pub(crate) node: String,
    /// The agent as configured (no node's overrides), kept once the walk leaves the start.
    pub(crate) base: Option<AgentSnapshot>,
    /// Whether the tools of the last tool node all succeeded.
    pub(crate) last_result: Option<bool>,
    /// The tools that take the current node's `llm` edges.
    pub(crate) transitions: Vec<AgentTool>,
}

impl Walk {
    /// The walk of `agent`'s workflow from its start node; `None` when it has no edges.
    pub(crate) fn start(agent: &AgentSnapshot) -> Option<Walk> {
        let graph = Workflow::of(&agent.workflow)?;
        let node = graph.start()?.to_owned();
        let mut walk = Walk {
            graph: Arc::new(graph),
            node,
            base: None,
            last_result: None,
            transitions: vec![],
        };
        walk.transitions = walk.transition_tools();
        Some(walk)
    }

    /// One tool per `llm` exit of the current node: the LLM calls it when the conversation
    /// meets the edge's condition.
    pub(crate) fn transition_tools(&self) -> Vec<AgentTool> {
        let mut taken = Vec::new();
        self.graph
            .exits(&self.node)
            .iter()
            .filter_map(|exit| {
                let Condition::Llm(condition) = exit.condition else { return None };
                let mut name = format!("go_to_{}", llm_safe(exit.to));
                name.truncate(64);
                while taken.contains(&name) {
                    name = format!("{}_{}", &name[..name.len().min(60)], taken.len());
                }
                taken.push(name.clone());
                AgentTool::inline(json!({
                    "type": "system",
                    "name": name,
                    "description": format!("Call this when: {condition}"),
                    "params": {"system_tool_type": TRANSITION, "edge_id": exit.edge_id, "target": exit.to},
                }))
            })
            .collect()
    }
}

/// A transition tool's call: the move to its edge's target, once the turn's calls are
/// recorded.
pub(crate) fn transition(tool: &AgentTool) -> ToolOutcome {
    let field = |k: &str| tool.config.pointer(&format!("/params/{k}")).and_then(Value::as_str);
    let target = field("target").unwrap_or_default().to_owned();
    let result = json!({"result_type": TRANSITION, "status": "success", "edge_id": field("edge_id"), "to_node": target});
    ToolOutcome { effect: Effect::Node(target), ..ToolOutcome::ok(result.to_string()) }
}

/// `text` as a tool name the LLM providers accept.
fn llm_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// `base` as a subagent node configures it: the node's `conversation_config` overrides merged
/// in, its `additional_prompt` after the system prompt, its additional tools and knowledge-base
/// documents beside the agent's. The agent's MCP servers stay connected and offered.
pub(crate) async fn subagent(
    deps: &EngineDeps, base: &AgentSnapshot, node: &Subagent,
) -> Result<AgentSnapshot, StoreError> {
    let mut agent = base.clone();
    let config = Arc::make_mut(&mut agent.conversation_config);
    if let Some(own) = node.conversation_config.get("agent").filter(|a| a.is_object()) {
        merge(config, json!({"agent": own}));
    }
    let prompt = &mut config["agent"]["prompt"];
    if !node.additional_prompt.is_empty() {
        let text = prompt["prompt"].as_str().unwrap_or_default();
        prompt["prompt"] = Value::String(format!("{text}\n\n{}", node.additional_prompt));
    }
    if !node.additional_knowledge_base.is_empty() {
        let mut documents = prompt["knowledge_base"].as_array().cloned().unwrap_or_default();
        documents.extend(node.additional_knowledge_base.iter().cloned());
        prompt["knowledge_base"] = Value::Array(documents);
    }
    let overridden = node.conversation_config.pointer("/agent/prompt").is_some_and(|p| {
        ["tool_ids", "tools", "built_in_tools"].iter().any(|k| p.get(k).is_some())
    });
    let mut ids: Vec<Value> = node.additional_tool_ids.iter().map(|id| json!(id)).collect();
    if overridden {
        // The node names the agent's own tools anew: those replace the agent's (its MCP
        // servers' tools stay).
        agent.tools.retain(|t| t.kind == colloquy_core::tools::ToolKind::Mcp);
        agent.tools.extend(
            offered_tools(deps, &agent.workspace_id, &agent.conversation_config["agent"]["prompt"])
                .await?,
        );
    }
    ids.retain(|id| !agent.tools.iter().any(|t| Some(t.id.as_str()) == id.as_str()));
    if !ids.is_empty() {
        let extra = offered_tools(deps, &agent.workspace_id, &json!({"tool_ids": ids})).await?;
        agent.tools.extend(extra);
    }
    Ok(agent)
}
