//! The conversation loop (DESIGN.md §3.3), shared by live WebSocket conversations, simulations
//! and test runs. A [`Conversation`] is its [`State`](state::State) (what it is), its
//! [`Runtime`] (what it runs with) and its [`Recorder`](record::Recorder) (how it is kept);
//! each turn is [`crate::turn::run`] over the first two, saved by the third.

pub mod otlp;
mod record;
mod saver;
mod shared;
pub(crate) mod state;
pub(crate) mod transcript;
mod transfer;
pub mod view;

use std::sync::Arc;

use colloquy_core::ids::ConversationId;
use colloquy_core::time;
use colloquy_store::ConversationRecord;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use record::Ending;
pub use saver::ProgressWriter;
pub use shared::SharedConfigs;

use self::record::Recorder;
use self::state::State;
use crate::EngineDeps;
use crate::agent::AgentSnapshot;
use crate::error::EngineError;
use crate::llm::Role;
use crate::mcp::ResolveIn;
use crate::mcp::pool::{McpPool, ServerStatus};
use crate::telemetry;
use crate::tools::{ClientTools, MockSettings};
pub use crate::turn::input::UserFile;
use crate::turn::{self, TurnEvent, TurnResult, input};

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

/// What a conversation runs with, apart from its state: the engine, its own id, how its tool
/// calls are mocked, the live client, its MCP connections.
pub(crate) struct Runtime {
    /// The conversation.
    pub(crate) id: ConversationId,
    /// The engine.
    pub(crate) deps: Arc<EngineDeps>,
    /// Mocking of tool calls.
    pub(crate) mocks: MockSettings,
    /// Extra body for the LLM request.
    pub(crate) extra_body: Option<Map<String, Value>>,
    /// The live client, for client tools and MCP approvals.
    pub(crate) client: Option<Arc<dyn ClientTools>>,
    /// The agent's MCP servers, connected.
    pub(crate) mcp: Option<Arc<McpPool>>,
    /// The conversation's span, open for its whole life: its turns are its children.
    pub(crate) span: tracing::Span,
}

/// A conversation in progress.
pub struct Conversation {
    state: State,
    runtime: Runtime,
    record: Recorder,
    mcp_status: Vec<ServerStatus>,
    source: Source,
}

impl Conversation {
    /// Starts a conversation with `agent`: connects its MCP servers, records it, and prepares
    /// the first message.
    pub async fn start(
        deps: Arc<EngineDeps>, agent: AgentSnapshot, source: Source, opts: StartOptions,
    ) -> Result<Conversation, EngineError> {
        let id = ConversationId::generate();
        let span = telemetry::conversation_span(&id, agent.agent_id.as_str(), source.as_str());
        let starting = tracing::info_span!(parent: &span, "conversation.start", agent = %agent.agent_id, source = source.as_str(), conversation = %id);
        Self::open(deps, agent, source, opts, id, span).instrument(starting).await
    }

    /// [`Conversation::start`] once its id and span are made.
    async fn open(
        deps: Arc<EngineDeps>, agent: AgentSnapshot, source: Source, opts: StartOptions,
        id: ConversationId, span: tracing::Span,
    ) -> Result<Conversation, EngineError> {
        let mut state = State::new(agent, &deps.configs, &id, &opts.dynamic_variables);
        let missing = state.missing_variables();
        if !missing.is_empty() {
            return Err(EngineError::MissingDynamicVariables(missing));
        }
        let (mcp, mcp_status) = if state.agent.mcp_servers.is_empty() {
            (None, Vec::new())
        } else {
            let opened = McpPool::open(
                deps.clone(),
                &state.agent.workspace_id,
                &state.agent.mcp_servers,
                ResolveIn { environment: &state.agent.environment, vars: &state.vars },
            )
            .await;
            state.agent.offer_mcp_tools(&opened);
            state.mcp_instructions = mcp_instructions(&state.agent, &opened.instructions);
            (Some(Arc::new(opened.pool)), opened.status)
        };
        if let Some(first) = state.first_message() {
            input::greeting(&mut state, &first);
        }
        let record = ConversationRecord {
            id: id.clone(),
            workspace_id: state.agent.workspace_id.clone(),
            agent_id: state.agent.agent_id.clone(),
            branch_id: state.agent.branch_id.clone(),
            version_id: state.agent.version_id.clone(),
            source: source.as_str().into(),
            started_at: time::now_secs(),
            external_reference: state
                .vars
                .get(colloquy_core::references::VARIABLE)
                .and_then(Value::as_str)
                .and_then(|r| colloquy_core::references::canonical(r).ok()),
        };
        let record = Recorder::start(
            deps.store.clone(),
            &record,
            &state,
            opts.initiation_data,
            opts.user_id,
            (source == Source::Live).then(|| deps.progress.clone()),
        )
        .await?;
        let runtime = Runtime {
            id,
            deps,
            mocks: opts.mocks,
            extra_body: opts.extra_body,
            client: opts.client,
            mcp,
            span,
        };
        Ok(Conversation { state, runtime, record, mcp_status, source })
    }

    /// `text` with the conversation's dynamic variables filled (for messages the session
    /// sends itself, such as the soft timeout's fillers).
    pub fn render(&self, text: &str) -> String {
        self.state.render(text)
    }

    /// The agent's LLM (its `prompt.llm`).
    pub fn llm(&self) -> &str {
        self.state.agent.llm()
    }

    /// The language the conversation is held in (the agent's, until `language_detection`
    /// switches it).
    pub fn language(&self) -> &str {
        &self.state.language
    }

    /// The conversation's id (a UUIDv7).
    pub fn id(&self) -> &ConversationId {
        &self.runtime.id
    }

    /// The agent's first message with dynamic variables filled, if it has one.
    pub fn first_message(&self) -> Option<String> {
        self.state.first_message()
    }

    /// The agent's MCP servers as found at the start (`mcp_connection_status`).
    pub fn mcp_status(&self) -> &[ServerStatus] {
        &self.mcp_status
    }

    /// The transcript so far, in the reference's shape.
    pub fn transcript(&self) -> &[Value] {
        self.state.transcript.entries()
    }

    /// Adds context the user did not say (a `contextual_update`): the agent sees it, no
    /// answer is produced.
    pub fn add_context(&mut self, text: &str) {
        input::context(&mut self.state, text);
    }

    /// One user turn: the agent answers, calling tools as it needs to.
    pub async fn user_message(
        &mut self, text: &str, events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        input::user(&mut self.state, text);
        self.respond(events).await
    }

    /// One user turn with files uploaded to the conversation (a `multimodal_message`).
    pub async fn user_files(
        &mut self, text: &str, files: Vec<input::UserFile>,
        events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        input::user_with_files(&mut self.state, text, files);
        self.respond(events).await
    }

    /// One spoken user turn: `text` as recognized, with the recognition's `metrics` (the
    /// reference's `conversation_turn_metrics`).
    pub async fn user_speech(
        &mut self, text: &str, metrics: Value, events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        input::spoken(&mut self.state, text, metrics);
        self.respond(events).await
    }

    /// The agent's last answer was spoken: its entry becomes an audio one with the turn's
    /// `metrics` (`conversation_turn_metrics`).
    pub async fn spoken(&mut self, metrics: Value) -> Result<(), EngineError> {
        self.state.spoken = true;
        self.state.transcript.amend_last("agent", |entry| {
            entry["source_medium"] = json!("audio");
            entry["conversation_turn_metrics"] = metrics;
        });
        self.record.turn(&self.state).await?;
        Ok(())
    }

    /// The user interrupted the agent's last answer after hearing `heard` of it: the entry
    /// keeps what was meant as `original_message`, and the agent remembers saying only what
    /// was heard.
    pub async fn interrupted(&mut self, heard: &str) -> Result<(), EngineError> {
        self.state.transcript.amend_last("agent", |entry| {
            entry["original_message"] = entry["message"].take();
            entry["message"] = json!(heard);
            entry["interrupted"] = json!(true);
        });
        if let Some(last) = self.state.history.iter_mut().rev().find(|m| m.role == Role::Assistant)
        {
            last.content = heard.to_owned();
        }
        self.record.turn(&self.state).await?;
        Ok(())
    }

    /// The user has not answered within the turn timeout: the agent takes a turn to re-engage
    /// them (the note is in the agent's history, not in the transcript).
    pub async fn reengage(
        &mut self, silent_secs: u64, events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        input::reengage(&mut self.state, silent_secs);
        self.respond(events).await
    }

    /// Adds a past message to the history and transcript without running the agent: a test's
    /// `chat_history`.
    pub fn seed(&mut self, role: Role, text: &str) {
        input::seed(&mut self.state, role, text);
    }

    /// The agent takes its turn on the history as it stands, and the turn is saved.
    pub async fn respond(
        &mut self, events: Option<&mpsc::UnboundedSender<TurnEvent>>,
    ) -> Result<TurnResult, EngineError> {
        let mut result = turn::run(&mut self.state, &self.runtime, events).await;
        // A transfer the turn asked for: the new agent speaks in the same turn (and may hand
        // over in turn, a few times at most).
        for _ in 0..transfer::MAX_CHAINED {
            let (Ok(said), Some(to)) = (&result, self.state.transfer.take()) else { break };
            self.record.turn(&self.state).await?;
            let before = said.clone();
            result = self.hand_over(to, events).await.map(|after| TurnResult {
                text: [before.text, after.text]
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
                end_call: before.end_call || after.end_call,
                end_reason: before.end_reason.or(after.end_reason),
            });
        }
        self.state.transfer = None;
        if let Err(e) = &result {
            self.state.error =
                Some(json!({"code": 500, "reason": e.error_type(), "details": e.to_string()}));
        }
        self.record.turn(&self.state).await?;
        result
    }

    /// Records the end of the conversation and closes its MCP connections.
    #[tracing::instrument(name = "conversation.end", parent = &self.runtime.span, skip_all, fields(conversation = %self.runtime.id))]
    pub async fn end(&mut self, ending: Ending) -> Result<(), EngineError> {
        if let Some(pool) = &self.runtime.mcp {
            pool.close().await;
        }
        self.record.end(&self.state, &ending).await?;
        // A live conversation's analysis is queued by its session once its recording is kept,
        // with its post-call webhook; simulations and test runs send no webhooks.
        if self.source != Source::Live {
            let deps = &self.runtime.deps;
            crate::analysis::queue(deps, &self.state.agent.workspace_id, &self.runtime.id, false)
                .await;
        }
        Ok(())
    }
}

/// The system prompt's part that passes on what the agent's MCP servers asked to tell the
/// model, each under the server's name.
fn mcp_instructions(agent: &AgentSnapshot, said: &[(String, String)]) -> String {
    let mut out = String::new();
    for (server_id, text) in said {
        let name = agent
            .mcp_servers
            .iter()
            .find(|s| &s.id == server_id)
            .and_then(|s| s.config.get("name").and_then(Value::as_str))
            .unwrap_or(server_id);
        out.push_str(&format!("\n\nInstructions from the MCP server {name}:\n{}", text.trim()));
    }
    out
}
