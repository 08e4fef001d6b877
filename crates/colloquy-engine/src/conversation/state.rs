//! What a conversation is, apart from how it is carried (a WebSocket, a simulation, a test
//! run): the active agent configuration, the dynamic variables, the LLM's history, the
//! transcript, the language, and the first error. Every stage of a turn reads and changes
//! this, and nothing else of the conversation.

use std::sync::Arc;
use std::time::Instant;

use colloquy_core::ids::ConversationId;
use colloquy_core::{template, time};
use serde_json::{Map, Value, json};

use super::shared::SharedConfigs;
use super::transcript::Transcript;
use crate::agent::AgentSnapshot;
use crate::llm::ChatMessage;
use crate::tools::AgentTool;
use crate::tools::procedures::{self, Procedures};
use crate::tools::transfer::Transfer;
use crate::turn::guardrails::{self, Guardrails};
use crate::turn::retrieval::Knowledge;
use crate::workflow::Walk;

/// The conversation's state.
pub(crate) struct State {
    /// The agent as configured for this conversation (overrides applied).
    pub(crate) agent: AgentSnapshot,
    /// Dynamic variables: the agent's placeholders, the client's values, `system__*`.
    pub(crate) vars: Map<String, Value>,
    /// What the LLM is shown, after the system prompt.
    pub(crate) history: Vec<ChatMessage>,
    /// How many of the user's files the history keeps for the LLM, the newest.
    pub(crate) files_in_memory: usize,
    /// What the conversation's record shows.
    pub(crate) transcript: Transcript,
    /// The language the conversation is held in.
    pub(crate) language: String,
    /// The first platform error, kept for the record (`metadata.error`).
    pub(crate) error: Option<Value>,
    /// The agent's knowledge-base documents, resolved at its first turn.
    pub(crate) knowledge: Option<Knowledge>,
    /// The chunks the knowledge base retrieved for this turn.
    pub(crate) context: String,
    /// What the agent's MCP servers asked to tell the model (their `instructions`).
    pub(crate) mcp_instructions: String,
    /// Someone spoke (the conversation is not text only).
    pub(crate) spoken: bool,
    /// Ids of the procedures started and not yet ended.
    pub(crate) active_procedures: Vec<String>,
    /// A transfer to another agent the turn's tools asked for, carried out after the turn.
    pub(crate) transfer: Option<Transfer>,
    /// Every agent that has spoken in the conversation, in order (`visited_agents`).
    pub(crate) visited_agents: Vec<Value>,
    /// The agent's guardrails (`platform_settings.guardrails`).
    pub(crate) guardrails: Arc<Guardrails>,
    /// Where the conversation is in the agent's workflow, when it has one.
    pub(crate) walk: Option<Walk>,
    /// The workflow node an `llm` edge the LLM took this round leads to.
    pub(crate) next_node: Option<String>,
    started: Instant,
    /// The start, in Unix milliseconds (the row keeps whole seconds).
    pub(crate) started_at_ms: i64,
}

impl State {
    /// A new conversation `id` with `agent`, the client's `dynamic_variables` on top of the
    /// agent's placeholders.
    pub(crate) fn new(
        agent: AgentSnapshot, configs: &SharedConfigs, id: &ConversationId,
        dynamic_variables: &Map<String, Value>,
    ) -> State {
        let guardrails = Arc::new(Guardrails::of(&agent.platform_settings["guardrails"]));
        let walk = Walk::start(&agent);
        let files_in_memory = files_in_memory(&agent);
        let mut agent = running(agent, configs);
        agent.workflow_node_id = walk.as_ref().map(|w| w.node.clone());
        let mut vars = agent
            .conversation_config
            .pointer("/agent/dynamic_variables/dynamic_variable_placeholders")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        vars.extend(dynamic_variables.clone());
        for (k, v) in [
            ("system__agent_id", json!(agent.agent_id)),
            ("system__current_agent_id", json!(agent.agent_id)),
            ("system__conversation_id", json!(id)),
            ("system__time_utc", json!(time::rfc3339_ms(time::now_ms()))),
            ("system__timezone", json!("UTC")),
            ("system__agent_turns", json!(0)),
            ("system__call_duration_secs", json!(0)),
        ] {
            vars.insert(k.into(), v);
        }
        let language = agent
            .conversation_config
            .pointer("/agent/language")
            .and_then(Value::as_str)
            .unwrap_or("en")
            .to_owned();
        State {
            vars,
            history: Vec::new(),
            transcript: Transcript::default(),
            language,
            error: None,
            knowledge: None,
            context: String::new(),
            mcp_instructions: String::new(),
            spoken: false,
            active_procedures: Vec::new(),
            transfer: None,
            visited_agents: vec![visited(&agent)],
            guardrails,
            walk,
            next_node: None,
            agent,
            started: Instant::now(),
            started_at_ms: colloquy_core::time::now_ms(),
            files_in_memory,
        }
    }

    /// Hands the conversation to `agent`: its prompt, tools, knowledge base and procedures
    /// from now on; the history, transcript, language and dynamic variables (over the new
    /// agent's placeholders) carry over.
    pub(crate) fn switch_agent(&mut self, agent: AgentSnapshot, configs: &SharedConfigs) {
        self.guardrails = Arc::new(Guardrails::of(&agent.platform_settings["guardrails"]));
        self.walk = Walk::start(&agent);
        self.files_in_memory = files_in_memory(&agent);
        let mut agent = running(agent, configs);
        agent.workflow_node_id = self.walk.as_ref().map(|w| w.node.clone());
        let placeholders = agent
            .conversation_config
            .pointer("/agent/dynamic_variables/dynamic_variable_placeholders")
            .and_then(Value::as_object);
        for (k, v) in placeholders.into_iter().flatten() {
            self.vars.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.vars.insert("system__current_agent_id".into(), json!(agent.agent_id));
        self.knowledge = None;
        self.context.clear();
        self.mcp_instructions.clear();
        self.active_procedures.clear();
        let seen = visited(&agent);
        if !self.visited_agents.contains(&seen) {
            self.visited_agents.push(seen);
        }
        self.agent = agent;
    }

    /// Whole seconds since the start.
    pub(crate) fn secs(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX)
    }

    /// Milliseconds since the start.
    pub(crate) fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Adds `entry` to the transcript, now.
    pub(crate) fn say(&mut self, entry: Value) {
        let at = self.elapsed_ms();
        self.transcript.push(entry, at);
    }

    /// The agent's prompt settings (`conversation_config.agent.prompt`).
    pub(crate) fn prompt(&self) -> &Value {
        &self.agent.conversation_config["agent"]["prompt"]
    }

    /// The agent's first message with dynamic variables filled, if it has one.
    pub(crate) fn first_message(&self) -> Option<String> {
        let text = self
            .agent
            .conversation_config
            .pointer("/agent/first_message")
            .and_then(Value::as_str)?;
        (!text.is_empty()).then(|| template::render(text, &self.vars))
    }

    /// The variables the agent's prompt and first message name that have no value: no
    /// placeholder default, nothing from the client, not a system variable.
    pub(crate) fn missing_variables(&self) -> Vec<String> {
        self.missing_for(&self.agent)
    }

    /// [`State::missing_variables`] for `agent`, were it to take over the conversation (its
    /// placeholders count as values).
    pub(crate) fn missing_for(&self, agent: &AgentSnapshot) -> Vec<String> {
        let config = &agent.conversation_config;
        let texts = [
            config.pointer("/agent/prompt/prompt").and_then(Value::as_str),
            config.pointer("/agent/first_message").and_then(Value::as_str),
        ];
        let placeholders = config
            .pointer("/agent/dynamic_variables/dynamic_variable_placeholders")
            .and_then(Value::as_object);
        let mut missing: Vec<String> = Vec::new();
        for name in texts.into_iter().flatten().flat_map(template::names) {
            let known = self.vars.get(&name).is_some_and(|v| !v.is_null())
                || placeholders.is_some_and(|p| p.get(&name).is_some_and(|v| !v.is_null()));
            if !known && !name.is_empty() && !missing.contains(&name) {
                missing.push(name);
            }
        }
        missing
    }

    /// What the user said last, when the history ends with it (not after a context note or a
    /// silence, which are the platform's words).
    pub(crate) fn last_user_words(&self) -> Option<String> {
        let last = self.history.last().filter(|m| m.role == crate::llm::Role::User)?;
        let entry = self.transcript.entries().last().filter(|e| e["role"] == "user")?;
        (entry["message"].as_str() == Some(last.content.as_str())).then(|| last.content.clone())
    }

    /// `text` with the dynamic variables filled.
    pub(crate) fn render(&self, text: &str) -> String {
        template::render(text, &self.vars)
    }

    /// The system prompt with dynamic variables filled, then what the MCP servers and the
    /// knowledge base add.
    pub(crate) fn system_prompt(&self) -> String {
        let prompt = self.prompt()["prompt"].as_str().unwrap_or_default();
        let mut text = template::render(prompt, &self.vars);
        if self.guardrails.focus {
            text.push_str(guardrails::FOCUS);
        }
        text.push_str(&self.mcp_instructions);
        if let Some(knowledge) = &self.knowledge {
            text.push_str(&knowledge.in_prompt);
        }
        text.push_str(&self.context);
        let can_start = self.agent.tools.iter().any(|t| t.system_type() == "start_procedure");
        text.push_str(&procedures::prompt_section(self.procedures(), can_start, |t| {
            self.render(t)
        }));
        text
    }

    /// The tools the LLM is offered: the agent's, and those that take the current workflow
    /// node's `llm` edges.
    pub(crate) fn tools(&self) -> impl Iterator<Item = &AgentTool> {
        let transitions = self.walk.as_ref().map(|w| w.transitions.as_slice()).unwrap_or_default();
        self.agent.tools.iter().chain(transitions)
    }

    /// The agent's procedures and the active ones.
    pub(crate) fn procedures(&self) -> Procedures<'_> {
        Procedures { available: &self.agent.procedures, active: &self.active_procedures }
    }

    /// Brings the turn-dependent system variables up to date before the agent's turn.
    pub(crate) fn before_turn(&mut self) {
        let agent_turns = self.transcript.agent_turns();
        self.vars.insert("system__agent_turns".into(), json!(agent_turns));
        self.vars.insert("system__call_duration_secs".into(), json!(self.secs()));
    }
}

/// Images and PDFs the history holds when the agent's `file_input` says nothing.
const FILES_IN_MEMORY: usize = 10;

/// How many of the user's images and PDFs the LLM is given (the newest):
/// `conversation.file_input.max_files_in_memory`.
fn files_in_memory(agent: &AgentSnapshot) -> usize {
    agent
        .conversation_config
        .pointer("/conversation/file_input/max_files_in_memory")
        .and_then(Value::as_u64)
        .map_or(FILES_IN_MEMORY, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// `agent` as a running conversation keeps it: only the `agent` part of its configuration,
/// shared with the node's other conversations running an equal one. The rest (voice, ASR,
/// turn settings, platform settings; the workflow, read into the walk) was used by the caller
/// before the start and would cost every open conversation tens of kilobytes of parsed JSON.
fn running(mut agent: AgentSnapshot, configs: &SharedConfigs) -> AgentSnapshot {
    if agent.conversation_config.as_object().is_some_and(|c| c.keys().any(|k| k != "agent")) {
        let config = Arc::make_mut(&mut agent.conversation_config);
        if let Some(config) = config.as_object_mut() {
            config.retain(|key, _| key == "agent");
        }
    }
    let config = agent.conversation_config;
    agent.conversation_config = configs.share(&agent.agent_id, None, config);
    agent.platform_settings = Value::Null;
    agent.workflow = Value::Null;
    agent
}

/// The reference's `VisitedAgentRef` of `agent`.
fn visited(agent: &AgentSnapshot) -> Value {
    json!({"agent_id": agent.agent_id, "branch_id": agent.branch_id})
}
