//! One live conversation over a WebSocket (reference §D): the initiation handshake, then user
//! messages in and agent text, tool events and client tool calls out, until the agent ends the
//! call, the client leaves, or a limit is reached.
//!
//! Three tasks cooperate: this one reads the socket and keeps the timers, the engine task owns
//! the [`Conversation`] and runs one turn at a time, and the writer task ([`Outbox`]) owns the
//! socket's sending half.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_core::protocol::{
    self, AgentResponse, ClientEvent, ConversationMetadata, DecodeError, InitiationData,
    McpConnectionStatus, McpIntegration, PartKind, ResponsePart, ServerEvent,
};
use colloquy_core::tools::ToolKind;
use colloquy_engine::tools::MockSettings;
use colloquy_engine::{AgentSnapshot, Conversation, Ending, Source, StartOptions, TurnEvent};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};

use super::client_tools::{Replies, SocketClientTools};
use super::outbox::{Outbox, Writer};
use super::overrides;
use crate::state::AppState;

/// How long the client has to send its initiation data.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive pings.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A timer that is not running.
const NEVER: Duration = Duration::from_secs(u32::MAX as u64);

/// What the conversation's engine task is asked to do.
enum Command {
    User(String),
    Context(String),
    /// The user stayed silent for the turn timeout (seconds).
    Reengage(u64),
}

/// Why a conversation does not start, after the handshake: the `error` event sent and the
/// close frame that follows it.
struct Refusal {
    code: u16,
    error_type: String,
    message: String,
    reason: &'static str,
}

impl Refusal {
    fn new(code: u16, error_type: &str, message: String, reason: &'static str) -> Refusal {
        Refusal { code, error_type: error_type.to_owned(), message, reason }
    }

    /// Tells the client, closes the socket and waits for the writer to finish.
    async fn send(self, outbox: &Outbox, writer: Writer) {
        outbox.error(self.code, &self.error_type, &self.message).await;
        outbox.close(self.code, self.reason).await;
        writer.finish().await;
    }
}

/// The parts of the conversation configuration the session reads itself.
struct Timing {
    agent_audio: String,
    user_audio: String,
    max_duration: Duration,
    silence: Option<Duration>,
    turn_timeout: Option<Duration>,
}

impl Timing {
    fn of(config: &Value) -> Timing {
        let secs = |pointer: &str| {
            config
                .pointer(pointer)
                .and_then(Value::as_f64)
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
        };
        Timing {
            agent_audio: audio_format(config, "/tts/agent_output_audio_format"),
            user_audio: audio_format(config, "/asr/user_input_audio_format"),
            max_duration: Duration::from_secs(
                config
                    .pointer("/conversation/max_duration_seconds")
                    .and_then(Value::as_u64)
                    .filter(|s| *s > 0)
                    .unwrap_or(600),
            ),
            silence: secs("/turn/silence_end_call_timeout"),
            turn_timeout: secs("/turn/turn_timeout"),
        }
    }
}

fn audio_format(config: &Value, pointer: &str) -> String {
    config
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|f| f.starts_with("pcm_") || f.starts_with("ulaw_"))
        .unwrap_or("pcm_16000")
        .to_owned()
}

/// The next client message; `None` once the client is gone.
async fn next_event(
    stream: &mut SplitStream<WebSocket>,
) -> Option<Result<ClientEvent, DecodeError>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(ClientEvent::decode(text.as_bytes())),
            Ok(Message::Binary(bytes)) => return Some(ClientEvent::decode(&bytes)),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Runs a conversation with `agent` on `socket` until it ends.
#[tracing::instrument(name = "conversation.socket", skip_all, fields(agent = %agent.agent_id))]
pub(super) async fn run(socket: WebSocket, state: AppState, mut agent: AgentSnapshot) {
    let (sink, mut stream) = socket.split();
    // Set by the first client message after the handshake (see the outbox's metadata pause).
    let heard = Arc::new(Notify::new());
    let (mut outbox, writer) = Outbox::start(sink, heard.clone());
    // The client's initiation data comes first; a client that skips it starts with no
    // overrides, its first message handled as usual.
    let (init, early) = match tokio::time::timeout(INIT_TIMEOUT, next_event(&mut stream)).await {
        Ok(Some(Ok(ClientEvent::ConversationInitiationClientData(init)))) => (*init, None),
        Ok(Some(Err(e @ (DecodeError::NotJson(_) | DecodeError::Invalid { .. })))) => {
            let message = format!("The first message is not valid: {e}");
            Refusal::new(1008, "invalid_message", message, "invalid message")
                .send(&outbox, writer)
                .await;
            return;
        }
        Ok(Some(other)) => (InitiationData::default(), Some(other)),
        Ok(None) => return,
        Err(_) => (InitiationData::default(), None),
    };
    let replies = Replies::default();
    let opts = match prepare(&state, &mut agent, init, &mut outbox, &replies).await {
        Ok(opts) => opts,
        Err(refusal) => return refusal.send(&outbox, writer).await,
    };
    // What the session itself reads of the configuration, taken now rather than keeping a copy
    // of the whole document for the conversation's life.
    let timing = Timing::of(&agent.conversation_config);
    let workspace_id = agent.workspace_id.clone();
    let conversation =
        match Conversation::start(state.engine.clone(), agent, Source::Live, opts).await {
            Ok(c) => c,
            Err(e) => {
                let refusal = Refusal::new(
                    1011,
                    e.error_type(),
                    e.to_string(),
                    "could not start the conversation",
                );
                return refusal.send(&outbox, writer).await;
            }
        };
    let greeted = greet(&conversation, &outbox, &timing).await;
    let (commands, command_rx) = mpsc::channel::<Command>(16);
    let (ended_tx, ended) = oneshot::channel::<()>();
    let (turns_done, turn_finished) = mpsc::unbounded_channel::<()>();
    let session = Session {
        conversation_id: conversation.id().clone(),
        workspace_id,
        commands,
        outbox: outbox.clone(),
        replies,
        state,
    };
    let engine = tokio::spawn(engine_task(conversation, command_rx, outbox, ended_tx, turns_done));
    if let Some(first) = early {
        session.incoming(first).await;
    }
    let timers = Timers::new(&timing, greeted);
    session.serve(&mut stream, timers, &heard, ended, turn_finished).await;
    drop(session);
    let _ = engine.await;
    writer.finish().await;
}

/// Checks the client's overrides against what the agent allows and applies them, and turns
/// the rest of the initiation data into the conversation's options.
async fn prepare(
    state: &AppState, agent: &mut AgentSnapshot, init: InitiationData, outbox: &mut Outbox,
    replies: &Replies,
) -> Result<StartOptions, Refusal> {
    let config_override = overrides::without_text_only(
        init.conversation_config_override.clone().unwrap_or(Value::Null),
    );
    let allowed = agent
        .platform_settings
        .pointer("/overrides/conversation_config_override")
        .cloned()
        .unwrap_or(Value::Null);
    let refused = overrides::refused(&config_override, &allowed);
    if !refused.is_empty() {
        let message = format!(
            "Override for {} is not allowed by the agent's security settings",
            refused.join(", ")
        );
        return Err(Refusal::new(1008, "override_error", message, "override not allowed"));
    }
    outbox.filter(overrides::client_events(&agent.conversation_config, &config_override));
    if config_override.is_object() {
        let servers_changed = ["mcp_server_ids", "native_mcp_server_ids"]
            .iter()
            .any(|f| config_override.pointer(&format!("/agent/prompt/{f}")).is_some());
        agent.apply_override(config_override);
        if servers_changed && let Err(e) = agent.reload_mcp_servers(&state.engine).await {
            let reason = "could not load the MCP servers";
            return Err(Refusal::new(1011, "mcp_tool_error", e.to_string(), reason));
        }
    }
    let extra_body_allowed = agent.platform_settings.pointer("/overrides/custom_llm_extra_body")
        == Some(&Value::Bool(true));
    let mut mocks: MockSettings = init
        .tool_mock_config
        .clone()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    mocks.overrides = None;
    Ok(StartOptions {
        dynamic_variables: init.dynamic_variables.clone().unwrap_or_default(),
        user_id: init.user_id.clone(),
        mocks,
        extra_body: init.custom_llm_extra_body.clone().filter(|_| extra_body_allowed),
        initiation_data: serde_json::to_value(&init).unwrap_or_default(),
        client: Some(Arc::new(SocketClientTools {
            outbox: outbox.clone(),
            replies: replies.clone(),
        })),
    })
}

/// The start of the conversation as the client sees it: its metadata, its MCP servers, the
/// agent's first message. Whether the agent spoke first.
async fn greet(conversation: &Conversation, outbox: &Outbox, timing: &Timing) -> bool {
    outbox
        .send(ServerEvent::ConversationInitiationMetadata {
            conversation_initiation_metadata_event: ConversationMetadata {
                conversation_id: conversation.id().to_string(),
                agent_output_audio_format: timing.agent_audio.clone(),
                user_input_audio_format: timing.user_audio.clone(),
            },
        })
        .await;
    if !conversation.mcp_status().is_empty() {
        let integrations = conversation
            .mcp_status()
            .iter()
            .map(|s| McpIntegration {
                integration_id: s.id.clone(),
                integration_type: "mcp_server".into(),
                is_connected: s.connected,
                tool_count: s.tool_count,
            })
            .collect();
        outbox
            .send(ServerEvent::McpConnectionStatus {
                mcp_connection_status: McpConnectionStatus { integrations },
            })
            .await;
    }
    let Some(first) = conversation.first_message() else {
        return false;
    };
    outbox
        .send(ServerEvent::AgentResponse {
            agent_response_event: AgentResponse {
                agent_response: first,
                event_id: outbox.event_id(),
            },
        })
        .await;
    true
}

/// The session's timers: the conversation's length, the user's silence, the turn timeout and
/// the keep-alive.
struct Timers {
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    silence: Option<Duration>,
    quiet: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// After the agent's turn, a user who stays silent this long is re-engaged, once per
    /// silence (the re-engaging turn does not re-arm the timer; the user's next turn does).
    /// The first message counts as a turn.
    turn_timeout: Option<Duration>,
    waiting: std::pin::Pin<Box<tokio::time::Sleep>>,
    reengaging: bool,
    ping: tokio::time::Interval,
}

impl Timers {
    fn new(timing: &Timing, greeted: bool) -> Timers {
        let ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        Timers {
            deadline: Box::pin(tokio::time::sleep(timing.max_duration)),
            silence: timing.silence,
            quiet: Box::pin(tokio::time::sleep(timing.silence.unwrap_or(NEVER))),
            turn_timeout: timing.turn_timeout,
            waiting: Box::pin(tokio::time::sleep(
                timing.turn_timeout.filter(|_| greeted).unwrap_or(NEVER),
            )),
            reengaging: false,
            ping,
        }
    }

    fn rearm(sleep: &mut std::pin::Pin<Box<tokio::time::Sleep>>, after: Duration) {
        sleep.as_mut().reset(tokio::time::Instant::now() + after);
    }

    /// The agent finished a turn: the turn timeout starts (unless this turn re-engaged).
    fn turn_finished(&mut self) {
        if let Some(t) = self.turn_timeout.filter(|_| !self.reengaging) {
            Self::rearm(&mut self.waiting, t);
        }
        self.reengaging = false;
    }

    /// The client sent something: the silence starts over; a user who speaks or types stops
    /// the turn timeout.
    fn heard(&mut self, event: &Result<ClientEvent, DecodeError>) {
        if let Some(s) = self.silence {
            Self::rearm(&mut self.quiet, s);
        }
        if matches!(event, Ok(ClientEvent::UserMessage { .. } | ClientEvent::UserActivity {})) {
            Self::rearm(&mut self.waiting, NEVER);
        }
    }
}

/// The reading side of a running conversation.
struct Session {
    conversation_id: ConversationId,
    workspace_id: WorkspaceId,
    commands: mpsc::Sender<Command>,
    outbox: Outbox,
    replies: Replies,
    state: AppState,
}

impl Session {
    /// Reads the client and keeps the timers until the conversation ends.
    async fn serve(
        &self, stream: &mut SplitStream<WebSocket>, mut timers: Timers, heard: &Notify,
        mut ended: oneshot::Receiver<()>, mut turn_finished: mpsc::UnboundedReceiver<()>,
    ) {
        loop {
            tokio::select! {
                Some(()) = turn_finished.recv() => timers.turn_finished(),
                () = &mut timers.waiting => {
                    timers.reengaging = true;
                    Timers::rearm(&mut timers.waiting, NEVER);
                    let secs = timers.turn_timeout.map_or(0, |t| t.as_secs());
                    let _ = self.commands.send(Command::Reengage(secs)).await;
                }
                incoming = next_event(stream) => {
                    let Some(event) = incoming else { break };
                    heard.notify_one();
                    timers.heard(&event);
                    self.incoming(event).await;
                }
                _ = &mut ended => break,
                () = &mut timers.deadline => {
                    self.outbox.error(1000, "max_duration_exceeded", "The conversation reached its maximum duration").await;
                    self.outbox.close(1000, "max duration exceeded").await;
                    break;
                }
                () = &mut timers.quiet => {
                    self.outbox.close(1000, "the user was silent for too long").await;
                    break;
                }
                _ = timers.ping.tick() => {
                    let ping_event = protocol::Ping { event_id: self.outbox.event_id(), ping_ms: None };
                    self.outbox.send(ServerEvent::Ping { ping_event }).await;
                }
            }
        }
    }

    /// One message from the client.
    async fn incoming(&self, event: Result<ClientEvent, DecodeError>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                return self.outbox.error(1008, "invalid_message", &e.to_string()).await;
            }
        };
        match event {
            ClientEvent::UserAudioChunk => {
                self.outbox
                    .error(
                        1008,
                        "value_error",
                        "Audio input is not supported: this server holds text conversations only",
                    )
                    .await;
            }
            ClientEvent::UserMessage { text } => {
                let _ = self.commands.send(Command::User(text.unwrap_or_default())).await;
            }
            ClientEvent::ContextualUpdate { text } => {
                let _ = self.commands.send(Command::Context(text)).await;
            }
            ClientEvent::ClientToolResult { tool_call_id, result, is_error } => {
                self.replies.tool_result(&tool_call_id, result, is_error)
            }
            ClientEvent::McpToolApprovalResult { tool_call_id, is_approved } => {
                self.replies.approval(&tool_call_id, is_approved)
            }
            ClientEvent::Feedback { score, .. } => {
                let _ = self
                    .state
                    .store
                    .set_conversation_feedback(
                        &self.workspace_id,
                        &self.conversation_id,
                        score.map(|s| s.as_str()),
                    )
                    .await;
            }
            ClientEvent::UserActivity {}
            | ClientEvent::Pong { .. }
            | ClientEvent::ConversationInitiationClientData(_)
            | ClientEvent::MultimodalMessage {} => {}
        }
    }
}

/// Owns the conversation: runs one command at a time and ends the conversation when the
/// client leaves or the agent ends the call.
async fn engine_task(
    mut conversation: Conversation, mut commands: mpsc::Receiver<Command>, outbox: Outbox,
    ended: oneshot::Sender<()>, turns_done: mpsc::UnboundedSender<()>,
) {
    let mut ending = Ending::Normal("the client disconnected".into());
    while let Some(command) = commands.recv().await {
        if let Command::Context(text) = &command {
            conversation.add_context(text);
            continue;
        }
        if turn(&mut conversation, &outbox, command).await {
            ending = Ending::Normal("end_call tool was called".into());
            outbox.close(1000, "The agent ended the conversation").await;
            break;
        }
        let _ = turns_done.send(());
    }
    if let Err(e) = conversation.end(ending).await {
        tracing::error!(error = %e, conversation = %conversation.id(), "could not record the end of a conversation");
    }
    let _ = ended.send(());
}

/// One turn of the agent, its events sent to the client as they happen; whether the agent
/// ended the call.
async fn turn(conversation: &mut Conversation, outbox: &Outbox, command: Command) -> bool {
    if let Command::User(text) = &command {
        outbox
            .send(ServerEvent::UserTranscript {
                user_transcription_event: protocol::UserTranscription {
                    user_transcript: text.clone(),
                    event_id: outbox.event_id(),
                },
            })
            .await;
    }
    let turn_event = outbox.event_id();
    let (events, mut event_rx) = mpsc::unbounded_channel::<TurnEvent>();
    let forward = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let mut started = false;
            while let Some(event) = event_rx.recv().await {
                forward_event(&outbox, event, turn_event, &mut started).await;
            }
            if started {
                outbox.send(part(PartKind::Stop, String::new(), turn_event)).await;
            }
        })
    };
    let result = match command {
        Command::User(text) => conversation.user_message(&text, Some(&events)).await,
        Command::Reengage(secs) => conversation.reengage(secs, Some(&events)).await,
        Command::Context(_) => return false,
    };
    drop(events);
    let _ = forward.await;
    match result {
        Ok(turn) => {
            if !turn.text.is_empty() {
                outbox
                    .send(ServerEvent::AgentResponse {
                        agent_response_event: AgentResponse {
                            agent_response: turn.text,
                            event_id: turn_event,
                        },
                    })
                    .await;
            }
            turn.end_call
        }
        Err(e) => {
            outbox.error(1011, e.error_type(), &e.to_string()).await;
            false
        }
    }
}

fn part(kind: PartKind, text: String, event_id: u64) -> ServerEvent {
    ServerEvent::AgentChatResponsePart {
        text_response_part: ResponsePart { text, part: kind, event_id },
    }
}

/// A turn's event as the client sees it. Client tools announce themselves with
/// `client_tool_call`, so their request and response are not sent again.
async fn forward_event(outbox: &Outbox, event: TurnEvent, turn_event: u64, started: &mut bool) {
    let tool_type = |kind: Option<ToolKind>| kind.map_or("unknown", ToolKind::as_str).to_owned();
    let event = match event {
        TurnEvent::Delta(text) => {
            if !*started {
                *started = true;
                outbox.send(part(PartKind::Start, String::new(), turn_event)).await;
            }
            part(PartKind::Delta, text, turn_event)
        }
        TurnEvent::ToolRequest { kind, .. } | TurnEvent::ToolResponse { kind, .. }
            if kind == Some(ToolKind::Client) =>
        {
            return;
        }
        TurnEvent::ToolRequest { call_id, name, kind, .. } => ServerEvent::AgentToolRequest {
            agent_tool_request: protocol::ToolRequest {
                tool_name: name,
                tool_call_id: call_id,
                tool_type: tool_type(kind),
                event_id: turn_event,
            },
        },
        TurnEvent::ToolResponse { call_id, name, kind, is_error, .. } => {
            ServerEvent::AgentToolResponse {
                agent_tool_response: protocol::ToolResponse {
                    tool_name: name,
                    tool_call_id: call_id,
                    tool_type: tool_type(kind),
                    is_error,
                    is_called: true,
                    event_id: turn_event,
                },
            }
        }
    };
    outbox.send(event).await;
}
