//! The conversation loop (DESIGN.md §3.3), shared by live WebSocket conversations,
//! simulations and test runs: the agent's config (overrides and dynamic variables applied),
//! the history and a user turn go in; the LLM is called with the agent's tools, tool calls are
//! executed (in parallel when one answer asks for several) and recorded, and the loop repeats
//! until the LLM answers with text. Text streams out through a channel as it is produced; the
//! conversation is persisted after every turn.

use std::sync::Arc;
use std::time::Instant;

use colloquy_core::ids::ConversationId;
use colloquy_core::{template, time};
use colloquy_store::{ConversationProgress, ConversationRecord, StoreError};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::llm::{ChatMessage, ChatRequest, Deltas, LlmError, LlmProvider, Role, ToolCall};
use crate::mcp::pool::{McpPool, Opened, ServerStatus};
use crate::tools::{self, AgentTool, CallScope, ClientTools, Effect, MockSettings, ToolOutcome};
use crate::{AgentSnapshot, EngineDeps};

/// The stored conversation document (as the conversations API returns it), borrowed from the
/// live conversation. Field order is the stored order.
#[derive(Serialize)]
struct StoredDocument<'a> {
    transcript: &'a [Box<RawValue>],
    metadata: StoredMetadata<'a>,
    conversation_initiation_client_data: &'a Value,
    user_id: &'a Option<String>,
}

#[derive(Serialize)]
struct StoredMetadata<'a> {
    text_only: bool,
    error: &'a Option<Value>,
    main_language: &'a str,
    termination_reason: &'a str,
}

/// The transcript, parsed (the engine reads it) and each entry also as JSON text, written once
/// when the entry is added: the conversation is saved after every turn, and re-serializing the
/// whole transcript each time made saving quadratic in its length. Entries are never changed
/// once added.
#[derive(Default)]
struct Transcript {
    entries: Vec<Value>,
    json: Vec<Box<RawValue>>,
}

impl Transcript {
    fn push(&mut self, entry: Value) {
        // Serializing a `Value` cannot fail (its keys are strings); both lists stay in step.
        if let Ok(json) = serde_json::value::to_raw_value(&entry) {
            self.json.push(json);
            self.entries.push(entry);
        }
    }
}

/// Where a conversation comes from (`source` of the conversation row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A live WebSocket conversation.
    Live,
    /// A simulated conversation.
    Simulation,
    /// A test run.
    Test,
}

impl Source {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Live => "ws",
            Source::Simulation => "simulation",
            Source::Test => "test",
        }
    }
}

/// How a conversation starts.
#[derive(Default)]
pub struct StartOptions {
    /// Dynamic variables given by the client.
    pub dynamic_variables: Map<String, Value>,
    /// The end user's id.
    pub user_id: Option<String>,
    /// Mocking of tool calls.
    pub mocks: MockSettings,
    /// Extra body for the LLM request (`custom_llm_extra_body`, when allowed).
    pub extra_body: Option<Map<String, Value>>,
    /// The client's initiation data, kept on the record.
    pub initiation_data: Value,
    /// The live client, for client tools.
    pub client: Option<Arc<dyn ClientTools>>,
}

/// What a turn produces while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    /// A piece of the agent's text.
    Delta(String),
    /// The agent calls a tool.
    ToolRequest {
        /// The LLM's call id.
        call_id: String,
        /// Tool name.
        name: String,
        /// `webhook`, `client`, `system`, `mcp`.
        kind: String,
        /// Arguments.
        parameters: Value,
    },
    /// A tool call finished and is recorded.
    ToolResponse {
        /// The LLM's call id.
        call_id: String,
        /// Tool name.
        name: String,
        /// `webhook`, `client`, `system`, `mcp`.
        kind: String,
        /// What the LLM sees.
        result: String,
        /// Whether it failed.
        is_error: bool,
    },
}

/// The end of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnResult {
    /// The agent's complete text (empty when it skipped its turn).
    pub text: String,
    /// The agent ended the conversation.
    pub end_call: bool,
}

/// Why a turn failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The LLM failed.
    #[error("{error}")]
    Llm {
        /// `llm_timeout`, `llm_error` or `custom_llm_error`.
        error_type: &'static str,
        /// The cause.
        error: LlmError,
    },
    /// Persisting failed.
    #[error("storage failed: {0}")]
    Store(String),
    /// The agent went round its tools more often than allowed in one turn.
    #[error("the agent called tools {0} times in a row without answering")]
    TooManyToolRounds(usize),
}

impl EngineError {
    /// The reference's error type for events and records.
    pub fn error_type(&self) -> &'static str {
        match self {
            EngineError::Llm { error_type, .. } => error_type,
            EngineError::Store(_) => "internal_error",
            EngineError::TooManyToolRounds(_) => "llm_error",
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e.to_string())
    }
}

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Normally: the agent or the user ended it.
    Normal(String),
    /// On an error.
    Error(String),
}

/// A conversation in progress.
pub struct Conversation {
    id: ConversationId,
    deps: Arc<EngineDeps>,
    agent: AgentSnapshot,
    vars: Map<String, Value>,
    history: Vec<ChatMessage>,
    transcript: Transcript,
    started: Instant,
    opts: StartOptions,
    error: Option<Value>,
    language: String,
    mcp: Option<Arc<McpPool>>,
    mcp_status: Vec<ServerStatus>,
    /// Live conversations save their turns in the background; the others (tests,
    /// simulations) save each turn before it returns.
    saver: Option<crate::saver::Saver>,
}

/// Offers the tools the agent's MCP servers listed (those a `type: "mcp"` tool of the agent
/// already names stay as that tool), under names the LLM accepts, and applies each server's
/// per-tool config overrides.
fn add_mcp_tools(agent: &mut AgentSnapshot, opened: &Opened) {
    let mcp_key = |t: &AgentTool| -> Option<(String, String)> {
        let server = t.config.get("mcp_server_id")?.as_str()?.to_owned();
        let name = t.config.get("mcp_tool_name")?.as_str()?.to_owned();
        Some((server, name))
    };
    let mut taken: std::collections::BTreeSet<String> =
        agent.tools.iter().map(|t| t.name.clone()).collect();
    let existing: Vec<(String, String)> = agent
        .tools
        .iter()
        .filter(|t| t.kind == "mcp")
        .filter_map(mcp_key)
        .collect();
    for (server_id, tool) in &opened.tools {
        let key = (server_id.clone(), tool.name.to_string());
        if existing.contains(&key) {
            continue;
        }
        let Ok(spec) = opened.pool.spec(server_id) else {
            continue;
        };
        let id = agent
            .mcp_tool_records
            .iter()
            .find(|(s, n, _)| (s, n) == (&key.0, &key.1))
            .map(|(_, _, id)| id.clone())
            .unwrap_or_else(|| colloquy_core::mcp_servers::derived_tool_id(server_id, &tool.name));
        let name = tools::mcp::llm_name(&tool.name, &spec.name, &taken);
        taken.insert(name.clone());
        agent.tools.push(tools::mcp::offered(spec, tool, id, name));
    }
    for tool in agent.tools.iter_mut().filter(|t| t.kind == "mcp") {
        let server = tool
            .config
            .get("mcp_server_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Ok(spec) = opened.pool.spec(&server) {
            tools::mcp::apply_server_overrides(tool, &spec.config);
        }
    }
}

fn transcript_entry(role: &str, message: &str, secs: i64) -> Value {
    json!({
        "role": role,
        "message": message,
        "tool_calls": [],
        "tool_results": [],
        "feedback": null,
        "time_in_call_secs": secs,
        "interrupted": false,
        "source_medium": "text",
    })
}

impl Conversation {
    /// Starts a conversation with `agent`: records it, and prepares the first message.
    pub async fn start(
        deps: Arc<EngineDeps>,
        mut agent: AgentSnapshot,
        source: Source,
        opts: StartOptions,
    ) -> Result<Conversation, EngineError> {
        let id = ConversationId::generate();
        let started_at = time::now_secs();
        // A running conversation reads only the `agent` part of its configuration; the rest
        // (voice, ASR, turn settings, platform settings) was used by the caller before the start
        // and would cost every open conversation tens of kilobytes of parsed JSON.
        if let Some(config) = agent.conversation_config.as_object_mut() {
            config.retain(|key, _| key == "agent");
        }
        agent.platform_settings = Value::Null;
        let mut vars = agent
            .conversation_config
            .pointer("/agent/dynamic_variables/dynamic_variable_placeholders")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        vars.extend(opts.dynamic_variables.clone());
        let language = agent
            .conversation_config
            .pointer("/agent/language")
            .and_then(Value::as_str)
            .unwrap_or("en")
            .to_owned();
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
        let (mcp, mcp_status) = if agent.mcp_servers.is_empty() {
            (None, Vec::new())
        } else {
            let opened =
                McpPool::open(deps.clone(), &agent.workspace_id, &agent.mcp_servers, &vars).await;
            add_mcp_tools(&mut agent, &opened);
            (Some(Arc::new(opened.pool)), opened.status)
        };
        let saver = matches!(source, Source::Live).then(|| {
            crate::saver::Saver::spawn(deps.store.clone(), agent.workspace_id.clone(), id.clone())
        });
        let mut conversation = Conversation {
            id: id.clone(),
            deps,
            agent,
            vars,
            history: Vec::new(),
            transcript: Transcript::default(),
            started: Instant::now(),
            opts,
            error: None,
            language,
            mcp,
            mcp_status,
            saver,
        };
        if let Some(first) = conversation.first_message() {
            conversation
                .history
                .push(ChatMessage::text(Role::Assistant, first.clone()));
            conversation
                .transcript
                .push(transcript_entry("agent", &first, 0));
        }
        let record = ConversationRecord {
            id,
            workspace_id: conversation.agent.workspace_id.clone(),
            agent_id: conversation.agent.agent_id.clone(),
            branch_id: conversation.agent.branch_id.clone(),
            source: source.as_str().into(),
            started_at,
        };
        conversation
            .deps
            .store
            .start_conversation(&record, &conversation.state("in-progress", None))
            .await?;
        Ok(conversation)
    }

    /// The conversation's id (a UUIDv7).
    pub fn id(&self) -> &ConversationId {
        &self.id
    }

    /// The agent talked to.
    pub fn agent(&self) -> &AgentSnapshot {
        &self.agent
    }

    /// The agent's first message with dynamic variables filled, if it has one.
    pub fn first_message(&self) -> Option<String> {
        let text = self
            .agent
            .conversation_config
            .pointer("/agent/first_message")
            .and_then(Value::as_str)?;
        (!text.is_empty()).then(|| template::render(text, &self.vars))
    }

    /// The agent's MCP servers as found at the start (`mcp_connection_status`).
    pub fn mcp_status(&self) -> &[ServerStatus] {
        &self.mcp_status
    }

    /// The transcript so far, in the reference's shape.
    pub fn transcript(&self) -> &[Value] {
        &self.transcript.entries
    }

    /// The conversation's dynamic variables (the client's, placeholders, `system__*`).
    pub fn variables(&self) -> &Map<String, Value> {
        &self.vars
    }

    fn secs(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX)
    }

    /// Adds context the user did not say (a `contextual_update`): the agent sees it, no
    /// answer is produced.
    pub fn add_context(&mut self, text: &str) {
        self.history.push(ChatMessage::text(
            Role::User,
            format!("[Context update] {text}"),
        ));
    }

    fn state(&self, status: &str, ended: Option<&Ending>) -> ConversationProgress {
        let call_successful = match ended {
            Some(Ending::Normal(_)) if self.error.is_none() => "success",
            Some(Ending::Error(_)) => "failure",
            _ if self.error.is_some() => "failure",
            _ => "unknown",
        };
        let termination_reason = match ended {
            Some(Ending::Normal(r) | Ending::Error(r)) => r.clone(),
            None => String::new(),
        };
        // Serialized straight from the conversation's fields: this runs after every turn, and
        // building a `json!` document first deep-copied the whole transcript each time.
        let document = StoredDocument {
            transcript: &self.transcript.json,
            metadata: StoredMetadata {
                text_only: true,
                error: &self.error,
                main_language: &self.language,
                termination_reason: &termination_reason,
            },
            conversation_initiation_client_data: &self.opts.initiation_data,
            user_id: &self.opts.user_id,
        };
        let document = serde_json::to_string(&document).unwrap_or_else(|_| "{}".into());
        ConversationProgress {
            status: status.into(),
            agent_name: Some(self.agent.name.clone()),
            user_id: self.opts.user_id.clone(),
            ended_at: ended.map(|_| time::now_secs()),
            call_successful: call_successful.into(),
            message_count: self.transcript.entries.len() as i64,
            duration_secs: self.secs(),
            termination_reason,
            document,
        }
    }

    async fn persist(&self) -> Result<(), EngineError> {
        let state = self.state("in-progress", None);
        match &self.saver {
            Some(saver) => saver.save(state),
            None => {
                self.deps
                    .store
                    .update_conversation(&self.agent.workspace_id, &self.id, &state)
                    .await?
            }
        }
        Ok(())
    }

    /// Records the end of the conversation.
    pub async fn end(&mut self, ending: Ending) -> Result<(), EngineError> {
        if let Some(saver) = self.saver.take() {
            saver.finish().await;
        }
        let status = match ending {
            Ending::Normal(_) => "done",
            Ending::Error(_) => "failed",
        };
        if let Some(pool) = &self.mcp {
            pool.close().await;
        }
        let state = self.state(status, Some(&ending));
        self.deps
            .store
            .update_conversation(&self.agent.workspace_id, &self.id, &state)
            .await?;
        Ok(())
    }

    fn provider(&self) -> Result<(Arc<dyn LlmProvider>, String, &'static str), EngineError> {
        let prompt = &self.agent.conversation_config["agent"]["prompt"];
        let llm = prompt
            .get("llm")
            .and_then(Value::as_str)
            .unwrap_or("gemini-2.5-flash");
        if llm == "custom-llm"
            && let Some(custom) = prompt.get("custom_llm").filter(|c| c.is_object())
        {
            let url = custom
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let model = custom
                .get("model_id")
                .and_then(Value::as_str)
                .unwrap_or("custom-llm")
                .to_owned();
            let key = custom
                .pointer("/api_key/secret_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            return Ok((
                self.deps
                    .llm
                    .custom(url, self.secret_for_custom_llm(key.as_deref())),
                model,
                "custom_llm_error",
            ));
        }
        let (provider, model) = self.deps.llm.route(llm).map_err(|error| EngineError::Llm {
            error_type: "llm_error",
            error,
        })?;
        Ok((provider, model, "llm_error"))
    }

    /// The custom LLM's API key was opened at load time (see [`AgentSnapshot`]).
    fn secret_for_custom_llm(&self, secret_id: Option<&str>) -> Option<String> {
        secret_id.and_then(|_| self.agent.custom_llm_api_key.clone())
    }

    fn system_prompt(&self) -> String {
        let prompt = self
            .agent
            .conversation_config
            .pointer("/agent/prompt/prompt")
            .and_then(Value::as_str)
            .unwrap_or_default();
        template::render(prompt, &self.vars)
    }

    /// One user turn: the agent answers, calling tools as it needs to.
    pub async fn user_message(
        &mut self,
        text: &str,
        events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        self.history.push(ChatMessage::text(Role::User, text));
        self.transcript
            .push(transcript_entry("user", text, self.secs()));
        self.respond(events).await
    }

    /// The user has not answered within the turn timeout: the agent takes a turn to re-engage
    /// them (the note is in the agent's history, not in the transcript).
    pub async fn reengage(
        &mut self,
        silent_secs: u64,
        events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        self.history.push(ChatMessage::text(
            Role::User,
            format!("[The user has not replied for {silent_secs} seconds. Briefly check whether they are still there.]"),
        ));
        self.respond(events).await
    }

    /// Adds a past message to the history and transcript without running the agent: a test's
    /// `chat_history`.
    pub fn seed(&mut self, role: Role, text: &str) {
        self.history.push(ChatMessage::text(role, text));
        let wire = if role == Role::User { "user" } else { "agent" };
        self.transcript
            .push(transcript_entry(wire, text, self.secs()));
    }

    /// The agent takes its turn on the history as it stands (persisted like any turn).
    pub async fn respond(
        &mut self,
        events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        let agent_turns = self
            .transcript
            .entries
            .iter()
            .filter(|t| t["role"] == "agent")
            .count();
        self.vars
            .insert("system__agent_turns".into(), json!(agent_turns));
        self.vars
            .insert("system__call_duration_secs".into(), json!(self.secs()));
        let result = self.agent_turn(events).await;
        if let Err(e) = &result {
            self.error =
                Some(json!({"code": 500, "reason": e.error_type(), "details": e.to_string()}));
        }
        self.persist().await?;
        result
    }

    async fn agent_turn(
        &mut self,
        events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        let (provider, model, error_type) = self.provider()?;
        let prompt = &self.agent.conversation_config["agent"]["prompt"];
        let temperature = prompt.get("temperature").and_then(Value::as_f64);
        let max_tokens = prompt
            .get("max_tokens")
            .and_then(Value::as_i64)
            .filter(|m| *m > 0)
            .map(|m| m as u64);
        let specs = self
            .agent
            .tools
            .iter()
            .map(AgentTool::spec)
            .collect::<Vec<_>>();
        let mut entry = transcript_entry("agent", "", self.secs());
        let mut text = String::new();
        let mut end_call = false;
        for _round in 0..self.deps.limits.max_tool_rounds {
            let mut messages = vec![ChatMessage::text(Role::System, self.system_prompt())];
            messages.extend(self.history.iter().cloned());
            let request = ChatRequest {
                model: model.clone(),
                messages,
                tools: specs.clone(),
                temperature,
                max_tokens,
                extra_body: self.opts.extra_body.clone(),
            };
            let (delta_tx, mut delta_rx) = mpsc::unbounded_channel::<String>();
            let forward = events.cloned();
            let relay = tokio::spawn(async move {
                while let Some(d) = delta_rx.recv().await {
                    if let Some(tx) = &forward {
                        let _ = tx.send(TurnEvent::Delta(d));
                    }
                }
            });
            let answer = provider.chat(&request, Some(&delta_tx as &Deltas)).await;
            drop(delta_tx);
            let _ = relay.await;
            let answer = answer.map_err(|error| EngineError::Llm {
                error_type: if matches!(error, LlmError::Timeout(_)) {
                    "llm_timeout"
                } else {
                    error_type
                },
                error,
            })?;
            text.push_str(&answer.text);
            if answer.tool_calls.is_empty() {
                self.history
                    .push(ChatMessage::text(Role::Assistant, answer.text));
                entry["message"] = json!(text);
                self.transcript.push(entry);
                return Ok(TurnResult { text, end_call });
            }
            self.history.push(ChatMessage {
                role: Role::Assistant,
                content: answer.text.clone(),
                tool_calls: answer.tool_calls.clone(),
                tool_call_id: None,
            });
            let outcomes = self
                .run_tools(&answer.tool_calls, events, &mut entry)
                .await?;
            let mut skip = false;
            for (call, outcome) in answer.tool_calls.iter().zip(&outcomes) {
                self.history
                    .push(ChatMessage::tool_result(&call.id, outcome.result.clone()));
                match &outcome.effect {
                    Effect::EndCall => end_call = true,
                    Effect::SkipTurn => skip = true,
                    Effect::Language(lang) => self.language = lang.clone(),
                    Effect::Transfer(_) | Effect::None => {}
                }
            }
            if end_call || skip {
                self.history
                    .push(ChatMessage::text(Role::Assistant, text.clone()));
                entry["message"] = json!(text);
                self.transcript.push(entry);
                return Ok(TurnResult { text, end_call });
            }
        }
        entry["message"] = json!(text);
        self.transcript.push(entry);
        Err(EngineError::TooManyToolRounds(
            self.deps.limits.max_tool_rounds,
        ))
    }

    /// Runs the calls of one answer concurrently; each is recorded before its result is told.
    async fn run_tools(
        &self,
        calls: &[ToolCall],
        events: Option<&mpsc::UnboundedSender<TurnEvent>>,
        entry: &mut Value,
    ) -> Result<Vec<ToolOutcome>, EngineError> {
        let model = self
            .agent
            .conversation_config
            .pointer("/agent/prompt/llm")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let scope = CallScope {
            deps: &self.deps,
            workspace_id: &self.agent.workspace_id,
            conversation_id: &self.id,
            agent_id: &self.agent.agent_id,
            branch_id: self.agent.branch_id.as_deref(),
            model: &model,
            vars: &self.vars,
            mocks: &self.opts.mocks,
            client: self.opts.client.as_deref(),
            mcp: self.mcp.as_deref(),
        };
        let unknown = AgentTool {
            id: "tool_unknown".into(),
            name: String::new(),
            kind: "unknown".into(),
            config: Value::Null,
            response_mocks: Vec::new(),
        };
        let runs = calls.iter().map(|call| {
            let tool = self
                .agent
                .tools
                .iter()
                .find(|t| t.name == call.name)
                .cloned()
                .unwrap_or_else(|| AgentTool {
                    name: call.name.clone(),
                    ..unknown.clone()
                });
            let scope = &scope;
            async move {
                if let Some(tx) = events {
                    let _ = tx.send(TurnEvent::ToolRequest {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        kind: tool.kind.clone(),
                        parameters: serde_json::from_str(&call.arguments)
                            .unwrap_or_else(|_| json!({})),
                    });
                }
                let outcome = tools::execute(scope, &tool, call).await;
                (tool, outcome)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let mut outcomes = Vec::with_capacity(results.len());
        for (call, (tool, outcome)) in calls.iter().zip(results) {
            let outcome = outcome.map_err(EngineError::Store)?;
            if let Some(tx) = events {
                let _ = tx.send(TurnEvent::ToolResponse {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    kind: tool.kind.clone(),
                    result: outcome.result.clone(),
                    is_error: outcome.is_error(),
                });
            }
            let wire_type = match tool.kind.as_str() {
                "client" | "webhook" | "mcp" => Some(tool.kind.as_str()),
                _ => None,
            };
            if let Some(calls) = entry["tool_calls"].as_array_mut() {
                calls.push(json!({
                    "type": wire_type,
                    "request_id": call.id,
                    "tool_name": call.name,
                    "params_as_json": call.arguments,
                    "tool_has_been_called": !outcome.mocked,
                    "tool_details": outcome.details,
                }));
            }
            if let Some(results) = entry["tool_results"].as_array_mut() {
                results.push(json!({
                    "type": wire_type,
                    "request_id": call.id,
                    "tool_name": call.name,
                    "result_value": colloquy_core::redact::scrub(&outcome.result, &outcome.secrets),
                    "is_error": outcome.is_error(),
                    "tool_has_been_called": !outcome.mocked,
                    "tool_latency_secs": outcome.latency_us as f64 / 1_000_000.0,
                    "error_type": outcome.error_type.clone().unwrap_or_default(),
                    "raw_error_message": if outcome.is_error() { colloquy_core::redact::scrub(&outcome.result, &outcome.secrets) } else { String::new() },
                    "dynamic_variable_updates": [],
                }));
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}
