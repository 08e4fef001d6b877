//! One live conversation over a WebSocket (reference §D): the initiation handshake, then user
//! messages in and agent text, tool events and client tool calls out, until the agent ends the
//! call, the client leaves, or a limit is reached.
//!
//! Three tasks cooperate: this one reads the socket and keeps the timers, the engine task owns
//! the [`Conversation`] and runs one turn at a time, and the writer task owns the socket's
//! sending half. Everything sent goes through one bounded queue, so a client that does not read
//! slows its own conversation down instead of making the server buffer without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_engine::tools::{
    ClientToolCall, ClientToolResult, ClientTools, McpCallEvent, McpCallState, MockSettings,
};
use colloquy_engine::{AgentSnapshot, Conversation, Ending, Source, StartOptions, TurnEvent};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use super::overrides;
use crate::state::AppState;

/// Messages queued for the client; the queue's bound is the backpressure on a slow client.
const OUTBOX: usize = 64;
/// How long the client has to send its initiation data.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive pings.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Quiet time after `conversation_initiation_metadata`, so it is read apart from what follows.
/// `@elevenlabs/client` on Node (with `ws`) reads the metadata with a one-shot listener and
/// attaches its real one only after an `await`; a frame that reaches it in the same read as the
/// metadata is dropped. Sockets are TCP_NODELAY, so the writer holds what follows the metadata
/// this long, once per conversation; a client that has already sent a message after the
/// handshake is past that point, so its message ends the pause (its first turn does not wait).
const METADATA_PAUSE: Duration = Duration::from_millis(20);

enum Outgoing {
    Json(Value),
    Close(u16, String),
}

/// The sending side shared by the tasks: numbering, filtering and queueing of server events.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    next_event: Arc<AtomicU64>,
    filter: Option<Arc<Vec<String>>>,
}

impl Outbox {
    fn event_id(&self) -> u64 {
        self.next_event.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues an event unless the client's `client_events` leave it out (the handshake, pings
    /// and errors always go).
    async fn send(&self, event: Value) {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let always = matches!(kind, "conversation_initiation_metadata" | "ping" | "error");
        if !always
            && self
                .filter
                .as_ref()
                .is_some_and(|f| !f.iter().any(|e| e == kind))
        {
            return;
        }
        let _ = self.tx.send(Outgoing::Json(event)).await;
    }

    async fn error(&self, code: u16, error_type: &str, message: &str) {
        self.send(json!({"type": "error", "error_event": {"code": code, "error_type": error_type, "message": message, "reason": message}}))
            .await;
    }

    async fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.send(Outgoing::Close(code, reason.to_owned())).await;
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<(String, bool)>>>>;
type Approvals = Arc<Mutex<HashMap<String, oneshot::Sender<bool>>>>;

/// Client tools over this socket: the call goes out as `client_tool_call`, the answer comes
/// back as `client_tool_result` on the reading task, which completes the waiting call. MCP
/// approvals work the same way (`mcp_tool_call` awaiting approval, `mcp_tool_approval_result`).
struct SocketClientTools {
    outbox: Outbox,
    pending: Pending,
    approvals: Approvals,
}

fn mcp_tool_call(event: McpCallEvent) -> Value {
    let mut body = json!({
        "service_id": event.server_id,
        "tool_call_id": event.tool_call_id,
        "tool_name": event.tool_name,
        "tool_description": event.tool_description,
        "parameters": event.parameters,
        "timestamp": colloquy_core::time::rfc3339_ms(colloquy_core::time::now_ms()),
    });
    let (state, extra) = match event.state {
        McpCallState::Loading => ("loading", None),
        McpCallState::AwaitingApproval(secs) => (
            "awaiting_approval",
            Some(("approval_timeout_secs", json!(secs))),
        ),
        McpCallState::Success(result) => ("success", Some(("result", result))),
        McpCallState::Failure(message) => ("failure", Some(("error_message", json!(message)))),
    };
    body["state"] = json!(state);
    if let Some((key, value)) = extra {
        body[key] = value;
    }
    json!({"type": "mcp_tool_call", "mcp_tool_call": body})
}

#[async_trait]
impl ClientTools for SocketClientTools {
    async fn call(&self, call: ClientToolCall) -> ClientToolResult {
        let (tx, rx) = oneshot::channel();
        if call.expects_response {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(call.tool_call_id.clone(), tx);
        }
        self.outbox
            .send(json!({"type": "client_tool_call", "client_tool_call": {
                "tool_name": call.tool_name,
                "tool_call_id": call.tool_call_id,
                "parameters": call.parameters,
                "event_id": self.outbox.event_id(),
            }}))
            .await;
        if !call.expects_response {
            return ClientToolResult::Sent;
        }
        let answer = tokio::time::timeout(call.timeout, rx).await;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&call.tool_call_id);
        match answer {
            Ok(Ok((result, is_error))) => ClientToolResult::Answered { result, is_error },
            Ok(Err(_)) => ClientToolResult::Disconnected,
            Err(_) => ClientToolResult::TimedOut,
        }
    }

    async fn mcp_progress(&self, event: McpCallEvent) {
        self.outbox.send(mcp_tool_call(event)).await;
    }

    async fn approve_mcp(&self, event: McpCallEvent, timeout: Duration) -> Option<bool> {
        let (tx, rx) = oneshot::channel();
        let id = event.tool_call_id.clone();
        self.approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        self.outbox.send(mcp_tool_call(event)).await;
        let answer = tokio::time::timeout(timeout, rx).await;
        self.approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        answer.ok().and_then(Result::ok)
    }
}

enum Command {
    User(String),
    Context(String),
    /// The user stayed silent for the turn timeout (seconds).
    Reengage(u64),
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Closes a socket that may not start a conversation.
pub async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket.send(close_frame(code, reason)).await;
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

async fn next_json(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Option<Result<Value, String>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => {
                return Some(serde_json::from_str(text.as_str()).map_err(|e| e.to_string()));
            }
            Ok(Message::Binary(bytes)) => {
                return Some(serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The writer task: sends what is queued, flushing once per burst (a turn queues several events
/// at once, and a write per frame was a system call and a TCP segment each), until a close.
async fn write_socket(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    heard: Arc<Notify>,
) {
    'burst: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            let done = matches!(out, Outgoing::Close(..));
            let metadata = matches!(&out, Outgoing::Json(v) if v["type"] == "conversation_initiation_metadata");
            let message = match out {
                Outgoing::Json(v) => Message::Text(v.to_string().into()),
                Outgoing::Close(code, reason) => close_frame(code, &reason),
            };
            if sink.feed(message).await.is_err() {
                break 'burst;
            }
            if done {
                break 'burst;
            }
            if metadata {
                if sink.flush().await.is_err() {
                    break 'burst;
                }
                tokio::select! {
                    () = tokio::time::sleep(METADATA_PAUSE) => {}
                    () = heard.notified() => {}
                }
            }
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Runs a conversation with `agent` on `socket` until it ends.
pub async fn run(socket: WebSocket, state: AppState, mut agent: AgentSnapshot) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<Outgoing>(OUTBOX);
    // Set by the first client message after the handshake: see `METADATA_PAUSE`.
    let heard = Arc::new(Notify::new());
    let writer = tokio::spawn(write_socket(sink, rx, heard.clone()));
    let mut outbox = Outbox {
        tx,
        next_event: Arc::new(AtomicU64::new(1)),
        filter: None,
    };

    // Handshake: the client's initiation data comes first (a client that skips it starts
    // with no overrides, its first message handled as usual).
    let (init, early) = match tokio::time::timeout(INIT_TIMEOUT, next_json(&mut stream)).await {
        Ok(Some(Ok(v))) if v["type"] == "conversation_initiation_client_data" => (v, None),
        Ok(Some(Ok(v))) => (json!({}), Some(v)),
        Ok(Some(Err(e))) => {
            outbox
                .error(
                    1008,
                    "invalid_message",
                    &format!("The first message is not JSON: {e}"),
                )
                .await;
            outbox.close(1008, "invalid message").await;
            let _ = writer.await;
            return;
        }
        Ok(None) => return,
        Err(_) => (json!({}), None),
    };
    let config_override = overrides::without_text_only(
        init.get("conversation_config_override")
            .cloned()
            .unwrap_or(Value::Null),
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
        outbox.error(1008, "override_error", &message).await;
        outbox.close(1008, "override not allowed").await;
        let _ = writer.await;
        return;
    }
    outbox.filter =
        overrides::client_events(&agent.conversation_config, &config_override).map(Arc::new);
    if config_override.is_object() {
        let servers_changed = ["mcp_server_ids", "native_mcp_server_ids"].iter().any(|f| {
            config_override
                .pointer(&format!("/agent/prompt/{f}"))
                .is_some()
        });
        agent.apply_override(config_override);
        if servers_changed && let Err(e) = agent.reload_mcp_servers(&state.engine).await {
            outbox.error(1011, "mcp_tool_error", &e.to_string()).await;
            outbox.close(1011, "could not load the MCP servers").await;
            let _ = writer.await;
            return;
        }
    }
    let extra_body = init
        .get("custom_llm_extra_body")
        .and_then(Value::as_object)
        .filter(|_| {
            agent
                .platform_settings
                .pointer("/overrides/custom_llm_extra_body")
                == Some(&Value::Bool(true))
        })
        .cloned();
    let mut mocks: MockSettings = init
        .get("tool_mock_config")
        .cloned()
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    mocks.overrides = None;
    let pending: Pending = Arc::default();
    let approvals: Approvals = Arc::default();
    let opts = StartOptions {
        dynamic_variables: overrides::dynamic_variables(&init),
        user_id: init
            .get("user_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        mocks,
        extra_body,
        initiation_data: init.clone(),
        client: Some(Arc::new(SocketClientTools {
            outbox: outbox.clone(),
            pending: pending.clone(),
            approvals: approvals.clone(),
        })),
    };
    // What the session itself reads of the configuration, taken now rather than keeping a copy
    // of the whole document for the conversation's life.
    let timing = Timing::of(&agent.conversation_config);
    let workspace_id = agent.workspace_id.clone();
    let conversation =
        match Conversation::start(state.engine.clone(), agent, Source::Live, opts).await {
            Ok(c) => c,
            Err(e) => {
                outbox.error(1011, e.error_type(), &e.to_string()).await;
                outbox.close(1011, "could not start the conversation").await;
                let _ = writer.await;
                return;
            }
        };
    let conversation_id = conversation.id().to_owned();
    outbox
        .send(json!({"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": {
            "conversation_id": conversation_id,
            "agent_output_audio_format": timing.agent_audio,
            "user_input_audio_format": timing.user_audio,
        }}))
        .await;
    if !conversation.mcp_status().is_empty() {
        let integrations: Vec<Value> = conversation
            .mcp_status()
            .iter()
            .map(|s| json!({"integration_id": s.id, "integration_type": "mcp_server", "is_connected": s.connected, "tool_count": s.tool_count}))
            .collect();
        outbox
            .send(json!({"type": "mcp_connection_status", "mcp_connection_status": {"integrations": integrations}}))
            .await;
    }
    let greeted = conversation.first_message().is_some();
    if let Some(first) = conversation.first_message() {
        outbox.send(json!({"type": "agent_response", "agent_response_event": {"agent_response": first, "event_id": outbox.event_id()}})).await;
    }

    let replies = Replies { pending, approvals };
    let (commands, command_rx) = mpsc::channel::<Command>(16);
    let (ended_tx, mut ended) = oneshot::channel::<()>();
    let (turns_done, mut turn_finished) = mpsc::unbounded_channel::<()>();
    let engine = tokio::spawn(engine_task(
        conversation,
        command_rx,
        outbox.clone(),
        ended_tx,
        turns_done,
    ));
    if let Some(first) = early {
        handle(
            first,
            &commands,
            &outbox,
            &replies,
            &state,
            &workspace_id,
            &conversation_id,
        )
        .await;
    }

    let deadline = tokio::time::sleep(timing.max_duration);
    tokio::pin!(deadline);
    let silence = timing.silence;
    let quiet = tokio::time::sleep(silence.unwrap_or(Duration::from_secs(u64::from(u32::MAX))));
    tokio::pin!(quiet);
    // Turn timeout: after the agent's turn, a user who stays silent this long is re-engaged,
    // once per silence (the re-engaging turn does not re-arm the timer; the user's next turn
    // does). The first message counts as a turn.
    let turn_timeout = timing.turn_timeout;
    let far = Duration::from_secs(u64::from(u32::MAX));
    let waiting = tokio::time::sleep(turn_timeout.filter(|_| greeted).unwrap_or(far));
    tokio::pin!(waiting);
    let mut reengaging = false;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            Some(()) = turn_finished.recv() => {
                if let Some(t) = turn_timeout.filter(|_| !reengaging) {
                    waiting.as_mut().reset(tokio::time::Instant::now() + t);
                }
                reengaging = false;
            }
            () = &mut waiting => {
                reengaging = true;
                waiting.as_mut().reset(tokio::time::Instant::now() + far);
                let secs = turn_timeout.map_or(0, |t| t.as_secs());
                let _ = commands.send(Command::Reengage(secs)).await;
            }
            incoming = next_json(&mut stream) => match incoming {
                None => break,
                Some(Err(e)) => outbox.error(1008, "invalid_message", &format!("The message is not JSON: {e}")).await,
                Some(Ok(message)) => {
                    heard.notify_one();
                    if let Some(s) = silence {
                        quiet.as_mut().reset(tokio::time::Instant::now() + s);
                    }
                    if matches!(message["type"].as_str(), Some("user_message" | "user_activity")) {
                        waiting.as_mut().reset(tokio::time::Instant::now() + far);
                    }
                    handle(message, &commands, &outbox, &replies, &state, &workspace_id, &conversation_id).await;
                }
            },
            _ = &mut ended => break,
            () = &mut deadline => {
                outbox.error(1000, "max_duration_exceeded", "The conversation reached its maximum duration").await;
                outbox.close(1000, "max duration exceeded").await;
                break;
            }
            () = &mut quiet => {
                outbox.close(1000, "the user was silent for too long").await;
                break;
            }
            _ = ping.tick() => {
                outbox.send(json!({"type": "ping", "ping_event": {"event_id": outbox.event_id(), "ping_ms": null}})).await;
            }
        }
    }
    drop(commands);
    let _ = engine.await;
    drop(outbox);
    let _ = writer.await;
}

/// Where the client's answers go: client tool results and MCP approvals, by call id.
struct Replies {
    pending: Pending,
    approvals: Approvals,
}

/// One message from the client.
async fn handle(
    message: Value,
    commands: &mpsc::Sender<Command>,
    outbox: &Outbox,
    replies: &Replies,
    state: &AppState,
    workspace_id: &WorkspaceId,
    conversation_id: &ConversationId,
) {
    if message.get("user_audio_chunk").is_some() {
        outbox
            .error(
                1008,
                "value_error",
                "Audio input is not supported: this server holds text conversations only",
            )
            .await;
        return;
    }
    match message
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "user_message" => {
            let text = message
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let _ = commands.send(Command::User(text)).await;
        }
        "contextual_update" => {
            let text = message
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let _ = commands.send(Command::Context(text)).await;
        }
        "client_tool_result" => {
            let id = message
                .get("tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let result = match message.get("result") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let is_error = message
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let waiter = replies
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            if let Some(waiter) = waiter {
                let _ = waiter.send((result, is_error));
            }
        }
        "mcp_tool_approval_result" => {
            let id = message
                .get("tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let approved = message.get("is_approved").and_then(Value::as_bool) == Some(true);
            let waiter = replies
                .approvals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(approved);
            }
        }
        "feedback" => {
            let score = message
                .get("score")
                .and_then(Value::as_str)
                .filter(|s| *s == "like" || *s == "dislike");
            let _ = state
                .store
                .set_conversation_feedback(workspace_id, conversation_id, score)
                .await;
        }
        "user_activity" | "pong" | "conversation_initiation_client_data" | "multimodal_message" => {
        }
        other => {
            outbox
                .error(
                    1008,
                    "invalid_message",
                    &format!("Unknown message type {other:?}"),
                )
                .await;
        }
    }
}

/// Owns the conversation: runs one command at a time and ends the conversation when the
/// client leaves or the agent ends the call.
async fn engine_task(
    mut conversation: Conversation,
    mut commands: mpsc::Receiver<Command>,
    outbox: Outbox,
    ended: oneshot::Sender<()>,
    turns_done: mpsc::UnboundedSender<()>,
) {
    let mut ending = Ending::Normal("the client disconnected".into());
    while let Some(command) = commands.recv().await {
        let (user_text, silent_secs) = match command {
            Command::Context(text) => {
                conversation.add_context(&text);
                continue;
            }
            Command::User(text) => (Some(text), 0),
            Command::Reengage(secs) => (None, secs),
        };
        if let Some(text) = &user_text {
            outbox.send(json!({"type": "user_transcript", "user_transcription_event": {"user_transcript": text, "event_id": outbox.event_id()}})).await;
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
                    outbox.send(json!({"type": "agent_chat_response_part", "text_response_part": {"text": "", "type": "stop", "event_id": turn_event}})).await;
                }
            })
        };
        let result = match &user_text {
            Some(text) => conversation.user_message(text, Some(&events)).await,
            None => conversation.reengage(silent_secs, Some(&events)).await,
        };
        drop(events);
        let _ = forward.await;
        match result {
            Ok(turn) => {
                if !turn.text.is_empty() {
                    outbox.send(json!({"type": "agent_response", "agent_response_event": {"agent_response": turn.text, "event_id": turn_event}})).await;
                }
                if turn.end_call {
                    ending = Ending::Normal("end_call tool was called".into());
                    outbox.close(1000, "The agent ended the conversation").await;
                    break;
                }
            }
            Err(e) => outbox.error(1011, e.error_type(), &e.to_string()).await,
        }
        let _ = turns_done.send(());
    }
    if let Err(e) = conversation.end(ending).await {
        tracing::error!(error = %e, conversation = %conversation.id(), "could not record the end of a conversation");
    }
    let _ = ended.send(());
}

async fn forward_event(outbox: &Outbox, event: TurnEvent, turn_event: u64, started: &mut bool) {
    match event {
        TurnEvent::Delta(text) => {
            if !*started {
                *started = true;
                outbox.send(json!({"type": "agent_chat_response_part", "text_response_part": {"text": "", "type": "start", "event_id": turn_event}})).await;
            }
            outbox.send(json!({"type": "agent_chat_response_part", "text_response_part": {"text": text, "type": "delta", "event_id": turn_event}})).await;
        }
        // Client tools announce themselves with `client_tool_call`.
        TurnEvent::ToolRequest { kind, .. } | TurnEvent::ToolResponse { kind, .. }
            if kind == "client" => {}
        TurnEvent::ToolRequest {
            call_id,
            name,
            kind,
            ..
        } => {
            outbox
                .send(json!({"type": "agent_tool_request", "agent_tool_request": {
                    "tool_name": name, "tool_call_id": call_id, "tool_type": kind, "event_id": turn_event,
                }}))
                .await;
        }
        TurnEvent::ToolResponse {
            call_id,
            name,
            kind,
            is_error,
            ..
        } => {
            outbox
                .send(json!({"type": "agent_tool_response", "agent_tool_response": {
                    "tool_name": name, "tool_call_id": call_id, "tool_type": kind, "is_error": is_error, "is_called": true, "event_id": turn_event,
                }}))
                .await;
        }
    }
}
