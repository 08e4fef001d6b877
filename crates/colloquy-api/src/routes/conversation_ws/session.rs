//! One live conversation over a WebSocket (reference §D): the initiation handshake, then user
//! messages and audio in and agent text, speech, tool events and client tool calls out, until
//! the agent ends the call, the client leaves, or a limit is reached.
//!
//! Three tasks cooperate: this one reads the socket, hears the user's audio and keeps the
//! timers, the engine task owns the [`Conversation`] and runs one turn at a time (recognizing
//! a spoken turn first), and the writer task ([`Outbox`]) owns the socket's sending half. A
//! voice conversation adds a fourth, the [`Speaker`], which speaks the agent's answers as they
//! stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use colloquy_core::ids::{AgentId, ConversationId, WorkspaceId};
use colloquy_core::protocol::{
    self, AgentResponse, ClientEvent, ConversationMetadata, DecodeError, InitiationData,
    McpConnectionStatus, McpIntegration, PartKind, ResponsePart, ServerEvent,
};
use colloquy_core::time;
use colloquy_core::tools::ToolKind;
use colloquy_engine::conversation::UserFile;
use colloquy_engine::llm::Attachment;
use colloquy_engine::tools::MockSettings;
use colloquy_engine::voice::vad::VadEvent;
use colloquy_engine::webhooks;
use colloquy_engine::{
    AgentSnapshot, Conversation, Ending, LoadError, Pick, Source, StartOptions, TurnEvent,
};
use colloquy_store::StoreError;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::Instrument as _;

use super::client_tools::{Replies, SocketClientTools};
use super::fillers::{Fillers, Generator, SoftTimeout};
use super::hearing::{Hearing, IgnoreTerms, Playing, Recognized, Recognizer, spells, tentative};
use super::hold_audio::HoldAudio;
use super::outbox::{Outbox, Writer};
use super::overrides;
use super::voice::{Listener, SharedRecording, Speaker, VoiceSetup, audio_format};
use crate::limits::Slot;
use crate::state::AppState;

/// How long the client has to send its initiation data.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a spelled utterance waits for its rest (`turn.spelling_patience`).
const SPELLING_PATIENCE: Duration = Duration::from_millis(1500);
/// A timer that is not running.
const NEVER: Duration = Duration::from_secs(u32::MAX as u64);

/// What the conversation's engine task is asked to do.
enum Command {
    User(String),
    /// A `multimodal_message`: the text and the files it sends.
    UserFiles(String, Vec<UserFile>),
    /// An utterance of the user: 16-bit samples at the input rate.
    Speech(Vec<i16>),
    /// An utterance of the user, already recognized (it was spoken over the agent). Boxed: the
    /// channel reserves room for 32 commands at once in every conversation, each the size of
    /// the largest.
    Heard(Box<Recognized>),
    Context(String),
    /// The user interrupted turn `event_id` after hearing `heard` of it.
    Interrupted {
        event_id: u64,
        heard: String,
    },
    /// The user stayed silent for the turn timeout (seconds).
    Reengage(u64),
    /// The user stayed silent for the turn timeout (seconds) as far as the voice activity
    /// detector could tell: this audio is recognized in case it holds words after all.
    Retranscribe(Vec<i16>, u64),
    /// The conversation ends, and why (recorded as its termination reason).
    End(&'static str),
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

    /// [`Refusal::send`] for a conversation that could not start: the agent's or workspace's
    /// webhook hears of it as a `call_initiation_failure` when it asks for that event.
    async fn failed_start(
        self, state: &AppState, workspace_id: &WorkspaceId, agent_id: &AgentId, outbox: &Outbox,
        writer: Writer,
    ) {
        webhooks::initiation_failure(&state.engine, workspace_id, agent_id, &self.message).await;
        self.send(outbox, writer).await;
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
    /// How long a conversation with no first message waits for the user before the agent
    /// speaks (`turn.initial_wait_time`, else the turn timeout).
    initial_wait: Option<Duration>,
    ping_every: Duration,
}

impl Timing {
    fn of(config: &Value, ping_every: Duration) -> Timing {
        let secs = |pointer: &str| {
            config
                .pointer(pointer)
                .and_then(Value::as_f64)
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
        };
        Timing {
            agent_audio: audio_format(config, "/tts/agent_output_audio_format").name(),
            user_audio: audio_format(config, "/asr/user_input_audio_format").name(),
            max_duration: Duration::from_secs(
                config
                    .pointer("/conversation/max_duration_seconds")
                    .and_then(Value::as_u64)
                    .filter(|s| *s > 0)
                    .unwrap_or(600),
            ),
            silence: secs("/turn/silence_end_call_timeout"),
            turn_timeout: secs("/turn/turn_timeout"),
            initial_wait: secs("/turn/initial_wait_time").or(secs("/turn/turn_timeout")),
            ping_every,
        }
    }
}

/// The next client message; `None` once the client is gone, with `closed` set when it said
/// goodbye (a close frame: the user ended the conversation) rather than vanished.
async fn next_event(
    stream: &mut SplitStream<WebSocket>, closed: &mut bool,
) -> Option<Result<ClientEvent, DecodeError>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(ClientEvent::decode(text.as_bytes())),
            Ok(Message::Binary(bytes)) => return Some(ClientEvent::decode(&bytes)),
            Ok(Message::Close(_)) => {
                *closed = true;
                return None;
            }
            Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Runs a conversation with `agent` on `socket` until it ends; `base` is the server's address
/// as the client reached it (the files it attaches are served under it).
///
/// The start runs in a future of its own, boxed and freed once the conversation is under way:
/// its locals (the initiation data, the agent's configuration, the conversation before the
/// engine task takes it, the futures it waits on) would otherwise stay reserved in this task,
/// which lives as long as the socket, for every idle conversation (some 12 KB each).
///
/// The workspace's `slot` for a live conversation is held until the conversation ends.
pub(super) fn run(
    socket: WebSocket, state: AppState, agent: AgentSnapshot, base: String, slot: Slot,
) -> impl Future<Output = ()> {
    let span = tracing::info_span!("conversation.socket", agent = %agent.agent_id);
    async move {
        let _slot = slot;
        let Some(mut live) = Box::pin(start(socket, state, agent, base)).await else { return };
        let (timers, ended, turns, interrupting) =
            (live.timers, live.ended, live.turn_finished, live.interrupting);
        live.session.serve(&mut live.stream, timers, &live.heard, ended, turns, interrupting).await;
        Box::pin(after_the_call(live.session, live.engine, live.writer, live.recording)).await;
    }
    .instrument(span)
}

/// A conversation under way: what [`run`] keeps while it serves.
struct Started {
    session: Session,
    stream: SplitStream<WebSocket>,
    heard: Arc<Notify>,
    writer: Writer,
    /// The engine task, which owns the conversation.
    engine: tokio::task::JoinHandle<()>,
    recording: Option<SharedRecording>,
    timers: Timers,
    ended: oneshot::Receiver<()>,
    turn_finished: mpsc::UnboundedReceiver<()>,
    interrupting: mpsc::UnboundedReceiver<Recognized>,
}

/// The handshake and the start of the conversation, up to the engine task serving it; `None`
/// when it did not start (the client was told why, or left).
async fn start(
    socket: WebSocket, state: AppState, mut agent: AgentSnapshot, base: String,
) -> Option<Started> {
    let (sink, mut stream) = socket.split();
    // Set by the first client message after the handshake (see the outbox's metadata pause).
    let heard = Arc::new(Notify::new());
    let (mut outbox, writer) = Outbox::start(sink, heard.clone());
    // The client's initiation data comes first; a client that skips it starts with no
    // overrides, its first message handled as usual.
    let mut closed = false;
    let first = next_event(&mut stream, &mut closed);
    let (init, early) = match tokio::time::timeout(INIT_TIMEOUT, first).await {
        Ok(Some(Ok(ClientEvent::ConversationInitiationClientData(init)))) => (*init, None),
        Ok(Some(Err(e @ (DecodeError::NotJson(_) | DecodeError::Invalid { .. })))) => {
            let message = format!("The first message is not valid: {e}");
            Refusal::new(1008, "invalid_message", message, "invalid message")
                .send(&outbox, writer)
                .await;
            return None;
        }
        Ok(Some(other)) => (InitiationData::default(), Some(other)),
        Ok(None) => return None,
        Err(_) => (InitiationData::default(), None),
    };
    let replies = Replies::default();
    let text_only =
        overrides::text_only(init.conversation_config_override.as_ref().unwrap_or(&Value::Null));
    let opts = match prepare(&state, &mut agent, init, &mut outbox, &replies).await {
        Ok(opts) => opts,
        Err(refusal) => {
            let (workspace_id, agent_id) = (&agent.workspace_id, &agent.agent_id);
            refusal.failed_start(&state, workspace_id, agent_id, &outbox, writer).await;
            return None;
        }
    };
    // What the session itself reads of the configuration, taken now rather than keeping a copy
    // of the whole document for the conversation's life.
    let timing = Timing::of(&agent.conversation_config, state.settings.limits.ws_ping_every);
    let setup = VoiceSetup::of(&state.engine, &agent, text_only);
    let hold_audio =
        setup.as_ref().and_then(|s| HoldAudio::of(&state.engine, &agent, s.output, &outbox));
    let (workspace_id, agent_id) = (agent.workspace_id.clone(), agent.agent_id.clone());
    let conversation =
        match Conversation::start(state.engine.clone(), agent, Source::Live, opts).await {
            Ok(c) => c,
            Err(e) => {
                let why = "could not start the conversation";
                // The client's to fix (1008), as the contract says, or the server's (1011).
                let code = if e.error_type() == "missing_dynamic_variable" { 1008 } else { 1011 };
                let refusal = Refusal::new(code, e.error_type(), e.to_string(), why);
                refusal.failed_start(&state, &workspace_id, &agent_id, &outbox, writer).await;
                return None;
            }
        };
    count_live(&state, &workspace_id, &agent_id, conversation.id()).await;
    let voice = setup.map(|setup| EngineVoice::new(&state, setup, &outbox, hold_audio));
    let recording = voice.as_ref().and_then(|v| v.recording.clone());
    let greeted = greet(&conversation, &outbox, &timing, voice.as_ref()).await;
    let (ended_tx, ended) = oneshot::channel::<()>();
    let (turns_done, turn_finished) = mpsc::unbounded_channel::<()>();
    let (interrupts, interrupting) = mpsc::unbounded_channel();
    let id = conversation.id().clone();
    let (mut session, command_rx) = Session::new(state, base, &outbox, replies, id, workspace_id);
    session.listen(voice.as_ref(), interrupts);
    let channels = EngineChannels { outbox, ended: ended_tx, turns_done };
    let engine = tokio::spawn(engine_task(Box::new(conversation), command_rx, channels, voice));
    if let Some(first) = early {
        session.incoming(first).await;
    }
    let timers = Timers::new(&timing, greeted);
    Some(Started {
        session,
        stream,
        heard,
        writer,
        engine,
        recording,
        timers,
        ended,
        turn_finished,
        interrupting,
    })
}

/// Counts the conversation live on every node (`/analytics/live-count`) until
/// `after_the_call`.
async fn count_live(
    state: &AppState, workspace_id: &WorkspaceId, agent_id: &AgentId, id: &ConversationId,
) {
    let now = colloquy_core::time::now_secs();
    let node = &state.engine.node_id;
    if let Err(e) = state.store.live_started(workspace_id, id, agent_id.as_str(), node, now).await {
        tracing::warn!(error = %e, "could not count a conversation live");
    }
}

/// Once the socket is done: waits for the engine task and the writer, keeps the recording,
/// and queues the analysis (which queues the post-call webhook when it ends).
async fn after_the_call(
    session: Session, engine: tokio::task::JoinHandle<()>, writer: Writer,
    recording: Option<SharedRecording>,
) {
    let (state, workspace_id, conversation_id) =
        (session.state.clone(), session.workspace_id.clone(), session.conversation_id.clone());
    // The engine task ends once the session's command sender is gone.
    drop(session);
    let _ = engine.await;
    if let Err(e) = state.store.live_ended(&conversation_id).await {
        tracing::warn!(error = %e, "could not stop counting a conversation live");
    }
    writer.finish().await;
    if let Some(recording) = recording {
        keep_recording(&state, &workspace_id, &conversation_id, recording).await;
    }
    colloquy_engine::analysis::queue(&state.engine, &workspace_id, &conversation_id, true).await;
}

/// Encodes a finished conversation's recording and stores it.
async fn keep_recording(
    state: &AppState, workspace_id: &WorkspaceId, id: &ConversationId, recording: SharedRecording,
) {
    let taken = recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    let Some(taken) = taken else { return };
    let Ok(Some(recorded)) = tokio::task::spawn_blocking(move || taken.finish()).await else {
        return;
    };
    let audio = colloquy_store::ConversationAudio {
        content_type: "audio/mpeg".into(),
        audio: recorded.mp3,
        has_user_audio: recorded.has_user_audio,
        has_response_audio: recorded.has_response_audio,
    };
    if let Err(e) = state.store.save_conversation_audio(workspace_id, id, &audio).await {
        tracing::error!(error = %e, conversation = %id, "could not store a recording");
    }
}

/// Draws the agent's branch again now that the user is known, when it was drawn from a split
/// before (the socket opened without a user): the same user always lands on the same branch.
async fn redraw(
    state: &AppState, agent: &mut AgentSnapshot, user_id: Option<&str>,
) -> Result<(), Refusal> {
    let Some(user) = user_id.filter(|u| !u.is_empty() && agent.drawn) else {
        return Ok(());
    };
    let pick = Pick::Live { user_id: Some(user) };
    let loaded = async {
        let mut again =
            AgentSnapshot::load(&state.engine, &agent.workspace_id, &agent.agent_id, pick).await?;
        again.set_environment(&state.engine, &agent.environment).await?;
        Ok::<_, LoadError>(again)
    };
    match loaded.await {
        Ok(again) => {
            *agent = again;
            Ok(())
        }
        Err(e) => {
            Err(Refusal::new(1011, "internal_error", e.to_string(), "could not load the agent"))
        }
    }
}

/// Runs the conversation in the environment the initiation data names, if it names one.
async fn choose_environment(
    state: &AppState, agent: &mut AgentSnapshot, init: &InitiationData,
) -> Result<(), Refusal> {
    let Some(environment) = init.rest.get("environment").and_then(Value::as_str) else {
        return Ok(());
    };
    agent.set_environment(&state.engine, environment).await.map_err(|e| {
        let message = super::environment_refused(e);
        Refusal::new(1008, "environment_error", message, "unknown environment")
    })
}

/// Checks the client's overrides against what the agent allows and applies them, and turns
/// the rest of the initiation data into the conversation's options.
async fn prepare(
    state: &AppState, agent: &mut AgentSnapshot, init: InitiationData, outbox: &mut Outbox,
    replies: &Replies,
) -> Result<StartOptions, Refusal> {
    redraw(state, agent, init.user_id.as_deref()).await?;
    choose_environment(state, agent, &init).await?;
    let init = colloquy_engine::webhooks::initiation::client_data(&state.engine, agent, init).await;
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
async fn greet(
    conversation: &Conversation, outbox: &Outbox, timing: &Timing, voice: Option<&EngineVoice>,
) -> bool {
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
    let event_id = outbox.event_id();
    if let Some(speaker) = voice.and_then(|v| v.speaker.clone()) {
        speaker.begin(event_id, !voice.is_some_and(|v| v.first_message_uninterruptible));
        speaker.text(event_id, &first);
        let outbox = outbox.clone();
        tokio::spawn(async move {
            if let Some(e) = speaker.end(event_id).await.error {
                outbox.error(1002, "tts_cascade_error", &e.to_string()).await;
            }
        });
    }
    outbox
        .send(ServerEvent::AgentResponse {
            agent_response_event: AgentResponse { agent_response: first, event_id },
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
    /// The first message counts as a turn; with none, the user is first waited for
    /// `turn.initial_wait_time` (else the turn timeout).
    turn_timeout: Option<Duration>,
    waiting: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// What `waiting` was armed with.
    waiting_for: Duration,
    reengaging: bool,
    ping: tokio::time::Interval,
}

impl Timers {
    fn new(timing: &Timing, greeted: bool) -> Timers {
        let every = timing.ping_every;
        let ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let first_wait = if greeted { timing.turn_timeout } else { timing.initial_wait };
        Timers {
            deadline: Box::pin(tokio::time::sleep(timing.max_duration)),
            silence: timing.silence,
            quiet: Box::pin(tokio::time::sleep(timing.silence.unwrap_or(NEVER))),
            turn_timeout: timing.turn_timeout,
            waiting: Box::pin(tokio::time::sleep(first_wait.unwrap_or(NEVER))),
            waiting_for: first_wait.unwrap_or_default(),
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
            self.waiting_for = t;
        }
        self.reengaging = false;
    }

    /// The client sent something: the silence starts over; a user who types stops the turn
    /// timeout. Audio counts only once it holds speech ([`Timers::spoke`]): a microphone sends
    /// silence too.
    fn heard(&mut self, event: &Result<ClientEvent, DecodeError>) {
        if matches!(event, Ok(ClientEvent::UserAudioChunk(_))) {
            return;
        }
        if let Some(s) = self.silence {
            Self::rearm(&mut self.quiet, s);
        }
        if matches!(event, Ok(ClientEvent::UserMessage { .. } | ClientEvent::UserActivity {})) {
            Self::rearm(&mut self.waiting, NEVER);
        }
    }

    /// The user started speaking.
    fn spoke(&mut self) {
        if let Some(s) = self.silence {
            Self::rearm(&mut self.quiet, s);
        }
        Self::rearm(&mut self.waiting, NEVER);
    }
}

/// The keep-alive's round trips, for `ping_ms`.
#[derive(Default)]
struct Pings {
    /// The last ping sent and when.
    sent: Option<(u64, Instant)>,
    /// The last round trip measured.
    round_trip_ms: Option<u64>,
}

/// The reading side of a running conversation.
struct Session {
    conversation_id: ConversationId,
    workspace_id: WorkspaceId,
    commands: mpsc::Sender<Command>,
    outbox: Outbox,
    replies: Replies,
    /// The user's audio, in a voice conversation, and what becomes of it.
    listener: Option<Listener>,
    hearing: Option<Hearing>,
    /// The agent's voice, when it has one.
    speaker: Option<Speaker>,
    /// The client asked for `vad_score` events.
    wants_vad: bool,
    pings: Pings,
    state: AppState,
    /// The server's address as the client reached it.
    base: String,
}

impl Session {
    /// The session of conversation `conversation_id`, and the receiving end of the commands it
    /// sends the engine task.
    fn new(
        state: AppState, base: String, outbox: &Outbox, replies: Replies,
        conversation_id: ConversationId, workspace_id: WorkspaceId,
    ) -> (Session, mpsc::Receiver<Command>) {
        let (commands, command_rx) = mpsc::channel::<Command>(16);
        let session = Session {
            conversation_id,
            workspace_id,
            commands,
            outbox: outbox.clone(),
            replies,
            listener: None,
            hearing: None,
            speaker: None,
            wants_vad: outbox.wants("vad_score"),
            pings: Pings::default(),
            state,
            base,
        };
        (session, command_rx)
    }

    /// In a voice conversation, hears the user's audio and speaks with the agent's voice;
    /// utterances that interrupt the agent once recognized go to `interrupts`.
    fn listen(
        &mut self, voice: Option<&EngineVoice>, interrupts: mpsc::UnboundedSender<Recognized>,
    ) {
        let Some(voice) = voice else { return };
        self.listener = Some(
            Listener::new(voice.input, voice.end_silence_ms, voice.recording.clone())
                .keeping(voice.keep_silence),
        );
        let (terms, recognizer) = (voice.ignore_terms.clone(), voice.recognizer.clone());
        self.hearing = Some(Hearing::new(terms, voice.transcribe_held, recognizer, interrupts));
        self.speaker = voice.speaker.clone();
    }

    /// Reads the client and keeps the timers until the conversation ends.
    ///
    /// A client message's and an interruption's futures are boxed while they run: this future
    /// lasts as long as the conversation, and all it needs while idle is its timers.
    async fn serve(
        &mut self, stream: &mut SplitStream<WebSocket>, mut timers: Timers, heard: &Notify,
        mut ended: oneshot::Receiver<()>, mut turn_finished: mpsc::UnboundedReceiver<()>,
        mut interrupting: mpsc::UnboundedReceiver<Recognized>,
    ) {
        let mut closed = false;
        loop {
            tokio::select! {
                Some(()) = turn_finished.recv() => {
                    timers.turn_finished();
                    if let Some(listener) = self.listener.as_mut() {
                        listener.forget();
                    }
                }
                Some(heard) = interrupting.recv() => {
                    Box::pin(self.interrupt()).await;
                    let _ = self.commands.send(Command::Heard(Box::new(heard))).await;
                }
                () = &mut timers.waiting => {
                    timers.reengaging = true;
                    Timers::rearm(&mut timers.waiting, NEVER);
                    let secs = timers.waiting_for.as_secs();
                    let command = match self.listener.as_mut().and_then(Listener::take_kept) {
                        Some(samples) => Command::Retranscribe(samples, secs),
                        None => Command::Reengage(secs),
                    };
                    let _ = self.commands.send(command).await;
                }
                incoming = next_event(stream, &mut closed) => {
                    let Some(event) = incoming else {
                        if closed {
                            let _ = self.commands.send(Command::End("the user ended the conversation")).await;
                        }
                        break;
                    };
                    heard.notify_one();
                    timers.heard(&event);
                    if Box::pin(self.incoming(event)).await {
                        timers.spoke();
                    }
                }
                _ = &mut ended => break,
                () = &mut timers.deadline => {
                    let _ = self.commands.send(Command::End("the conversation reached its maximum duration")).await;
                    self.outbox.error(1000, "max_duration_exceeded", "The conversation reached its maximum duration").await;
                    self.outbox.close(1000, "max duration exceeded").await;
                    break;
                }
                () = &mut timers.quiet => {
                    let _ = self.commands.send(Command::End("the user was silent for too long")).await;
                    self.outbox.close(1000, "the user was silent for too long").await;
                    break;
                }
                _ = timers.ping.tick() => {
                    let event_id = self.outbox.event_id();
                    self.pings.sent = Some((event_id, Instant::now()));
                    let ping_event = protocol::Ping { event_id, ping_ms: self.pings.round_trip_ms };
                    self.outbox.send(ServerEvent::Ping { ping_event }).await;
                }
            }
        }
    }

    /// One message from the client; whether the user started speaking in it.
    async fn incoming(&mut self, event: Result<ClientEvent, DecodeError>) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                self.outbox.error(1008, "invalid_message", &e.to_string()).await;
                return false;
            }
        };
        match event {
            ClientEvent::UserAudioChunk(chunk) => return self.audio(&chunk).await,
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
            ClientEvent::Pong { event_id } => {
                if let Some((sent_id, at)) = self.pings.sent
                    && event_id == Some(sent_id)
                {
                    self.pings.round_trip_ms = Some(at.elapsed().as_millis() as u64);
                }
            }
            event @ ClientEvent::MultimodalMessage { .. } => self.multimodal(event).await,
            ClientEvent::UserActivity {} | ClientEvent::ConversationInitiationClientData(_) => {}
        }
        false
    }

    /// A `multimodal_message`: its files, uploaded to this conversation before, are taken (no
    /// longer withdrawable) and sent with its text; a file of another conversation, or none,
    /// is an error event and no turn.
    async fn multimodal(&mut self, event: ClientEvent) {
        let ids = event.file_ids();
        let ClientEvent::MultimodalMessage { text, .. } = event else { return };
        let text = text.and_then(|t| t.text).unwrap_or_default();
        if ids.is_empty() {
            let _ = self.commands.send(Command::User(text)).await;
            return;
        }
        let store = &self.state.store;
        let taken = store
            .use_conversation_files(
                &self.workspace_id,
                &self.conversation_id,
                &ids,
                time::now_secs(),
            )
            .await;
        let files = match taken {
            Ok(files) => files,
            Err(StoreError::NotFound) => {
                let message = format!(
                    "Unknown file in {ids:?}: upload it first with POST /v1/convai/conversations/{}/files",
                    self.conversation_id
                );
                self.outbox.error(1008, "invalid_message", &message).await;
                return;
            }
            Err(e) => {
                self.outbox.error(1011, "internal_error", &e.to_string()).await;
                return;
            }
        };
        let files = files
            .into_iter()
            .map(|f| UserFile {
                url: format!(
                    "{}/v1/convai/conversations/{}/files/{}",
                    self.base, self.conversation_id, f.id
                ),
                file_id: f.id,
                attachment: Attachment {
                    filename: f.filename,
                    mime_type: f.mime_type,
                    data: f.content.into(),
                },
            })
            .collect();
        let _ = self.commands.send(Command::UserFiles(text, files)).await;
    }

    /// A piece of the user's audio: heard, scored, and cut into utterances; speech that starts
    /// while the agent speaks interrupts it. Whether the user started speaking.
    async fn audio(&mut self, chunk: &str) -> bool {
        let Some(listener) = self.listener.as_mut() else {
            let message = "Audio input is not accepted: this conversation is text only";
            self.outbox.error(1008, "value_error", message).await;
            return false;
        };
        let (heard, ms) = match listener.hear(chunk) {
            Ok(heard) => heard,
            Err(message) => {
                self.outbox.error(1008, "invalid_message", &message).await;
                return false;
            }
        };
        if self.wants_vad {
            let vad_score_event = protocol::VadScore { vad_score: heard.score };
            self.outbox.send(ServerEvent::VadScore { vad_score_event }).await;
        }
        let mut started = false;
        for event in heard.events {
            let Some(hearing) = self.hearing.as_mut() else { break };
            match event {
                VadEvent::Started => {
                    started = true;
                    let playing = self.speaker.as_ref().map_or(Playing::No, Speaker::playing);
                    if hearing.started(playing) {
                        self.interrupt().await;
                    }
                }
                VadEvent::Utterance(samples) => {
                    if let Some(samples) = hearing.ended(samples, &self.outbox) {
                        let _ = self.commands.send(Command::Speech(samples)).await;
                    }
                }
            }
        }
        if self.hearing.as_mut().is_some_and(|h| h.more(ms)) {
            self.interrupt().await;
        }
        started
    }

    /// The user started speaking: a speaking agent stops, and is told what was heard.
    async fn interrupt(&self) {
        let Some(stopped) = self.speaker.as_ref().and_then(Speaker::interrupt) else {
            return;
        };
        let event_id = stopped.event_id;
        self.outbox
            .send(ServerEvent::Interruption {
                interruption_event: protocol::Interruption { event_id },
            })
            .await;
        if stopped.heard != stopped.original {
            self.outbox
                .send(ServerEvent::AgentResponseCorrection {
                    agent_response_correction_event: protocol::ResponseCorrection {
                        original_agent_response: stopped.original,
                        corrected_agent_response: stopped.heard.clone(),
                        event_id,
                    },
                })
                .await;
        }
        let _ = self.commands.send(Command::Interrupted { event_id, heard: stopped.heard }).await;
    }
}

/// What the engine task needs of a voice conversation.
struct EngineVoice {
    recognizer: Recognizer,
    input: colloquy_engine::voice::format::AudioFormat,
    end_silence_ms: u32,
    first_message_uninterruptible: bool,
    uninterruptible_tools: Arc<Vec<String>>,
    recording: Option<SharedRecording>,
    /// `None` when no synthesis provider serves the agent: it answers in text.
    speaker: Option<Speaker>,
    ignore_terms: Arc<IgnoreTerms>,
    transcribe_held: bool,
    soft_timeout: Option<SoftTimeout>,
    spelling_patience: bool,
    keep_silence: Option<Duration>,
    /// The agent's hold audio, played while tools keep the caller waiting.
    hold_audio: Option<HoldAudio>,
}

impl EngineVoice {
    fn new(
        state: &AppState, setup: VoiceSetup, outbox: &Outbox, hold_audio: Option<HoldAudio>,
    ) -> EngineVoice {
        let speaker = setup
            .voice
            .can_speak()
            .then(|| Speaker::start(state.engine.clone(), &setup, outbox.clone()));
        EngineVoice {
            recognizer: Recognizer {
                deps: state.engine.clone(),
                voice: setup.voice,
                rate: setup.input.rate(),
            },
            input: setup.input,
            end_silence_ms: setup.end_silence_ms,
            first_message_uninterruptible: setup.first_message_uninterruptible,
            uninterruptible_tools: Arc::new(setup.uninterruptible_tools),
            recording: setup.recording,
            speaker,
            ignore_terms: setup.ignore_terms,
            transcribe_held: setup.transcribe_held,
            soft_timeout: setup.soft_timeout,
            spelling_patience: setup.spelling_patience,
            keep_silence: setup.keep_silence,
            hold_audio,
        }
    }
}

/// Where the engine task reports.
struct EngineChannels {
    outbox: Outbox,
    ended: oneshot::Sender<()>,
    turns_done: mpsc::UnboundedSender<()>,
}

/// Owns the conversation: runs one command at a time and ends the conversation when the
/// client leaves or the agent ends the call.
///
/// The task lives as long as the conversation, mostly waiting for the next command, so what it
/// holds while waiting is what an idle conversation costs: the conversation comes boxed (an
/// argument of an async fn is reserved twice in its future), and a turn's futures are boxed
/// for the turn's time rather than reserved in the task for its life (some 8 KB together).
async fn engine_task(
    mut conversation: Box<Conversation>, mut commands: mpsc::Receiver<Command>,
    channels: EngineChannels, mut voice: Option<EngineVoice>,
) {
    let EngineChannels { outbox, ended, turns_done } = channels;
    let mut ending = Ending::Normal("the client disconnected".into());
    let mut language = conversation.language().to_owned();
    let mut last_turn = 0;
    // A command that came while the engine waited for the rest of a spelled utterance.
    let mut held_over = None;
    loop {
        let command = match held_over.take() {
            Some(command) => command,
            None => match commands.recv().await {
                Some(command) => command,
                None => break,
            },
        };
        match command {
            Command::Context(text) => conversation.add_context(&text),
            Command::End(reason) => ending = Ending::Normal(reason.into()),
            Command::Interrupted { event_id, heard } => {
                if event_id == last_turn
                    && let Err(e) = conversation.interrupted(&heard).await
                {
                    tracing::error!(error = %e, "could not record an interruption");
                }
            }
            command => {
                let mut said = Box::pin(said(command, &outbox, voice.as_ref())).await;
                if let (Some(spoken), Some(voice)) = (said.as_mut(), &voice) {
                    held_over = Box::pin(patience(spoken, &mut commands, &outbox, voice)).await;
                }
                let done = match said {
                    Some(said) => {
                        Box::pin(turn(&mut conversation, &outbox, said, voice.as_ref())).await
                    }
                    None => Done::default(),
                };
                // The user is heard in the language the conversation switched to.
                if conversation.language() != language {
                    language = conversation.language().to_owned();
                    if let Some(voice) = voice.as_mut() {
                        let recognizer = &mut voice.recognizer;
                        recognizer.voice =
                            recognizer.deps.voice.in_language(&recognizer.voice, &language);
                    }
                }
                last_turn = done.event_id.unwrap_or(last_turn);
                if let Some(why) = done.refused {
                    ending = Ending::Error(why);
                    outbox.close(1008, "The conversation cannot go on").await;
                    break;
                }
                if done.end_call {
                    let why = done.end_reason.unwrap_or("end_call tool was called");
                    ending = Ending::Normal(why.into());
                    outbox.close(1000, "The agent ended the conversation").await;
                    break;
                }
                let _ = turns_done.send(());
            }
        }
    }
    if let Err(e) = Box::pin(conversation.end(ending)).await {
        tracing::error!(error = %e, conversation = %conversation.id(), "could not record the end of a conversation");
    }
    let _ = ended.send(());
}

/// How a turn ended.
#[derive(Default)]
struct Done {
    /// The agent's answer's event id, when it answered.
    event_id: Option<u64>,
    /// The agent ended the call.
    end_call: bool,
    /// Why.
    end_reason: Option<&'static str>,
    /// The turn failed in a way that ends the conversation (close 1008), with why.
    refused: Option<String>,
}

/// What the user said to start a turn.
enum Said {
    Typed(String),
    /// Text with files.
    WithFiles(String, Vec<UserFile>),
    Spoken(Recognized),
    /// Nothing, for this many seconds (the agent re-engages).
    Silence(u64),
}

/// One turn of the agent, its events sent to the client as they happen (a spoken turn is
/// recognized first, and the answer spoken as it streams).
async fn turn(
    conversation: &mut Conversation, outbox: &Outbox, said: Said, voice: Option<&EngineVoice>,
) -> Done {
    let transcript = match &said {
        Said::Typed(text) | Said::WithFiles(text, _) => Some((text.clone(), outbox.event_id())),
        Said::Spoken(heard) => Some((heard.text.clone(), heard.event_id)),
        Said::Silence(_) => None,
    };
    if let Some((user_transcript, event_id)) = transcript {
        outbox
            .send(ServerEvent::UserTranscript {
                user_transcription_event: protocol::UserTranscription { user_transcript, event_id },
            })
            .await;
    }
    let turn_event = outbox.event_id();
    let speaker = voice.and_then(|v| v.speaker.clone());
    if let Some(speaker) = &speaker {
        speaker.begin(turn_event, true);
    }
    let began = Instant::now();
    let (events, event_rx) = mpsc::unbounded_channel::<TurnEvent>();
    let user_spoke = !matches!(said, Said::Silence(_))
        || conversation.transcript().iter().any(|t| t["role"] == "user");
    let fillers = voice
        .filter(|_| speaker.is_some())
        .and_then(|v| fillers(v, conversation, &said, user_spoke));
    let relay = Relay::new(outbox, turn_event, speaker.clone(), voice, fillers);
    let forward = tokio::spawn(relay.run(event_rx, began));
    let result = match said {
        Said::Spoken(heard) => {
            conversation.user_speech(&heard.text, heard.metrics, Some(&events)).await
        }
        Said::Typed(text) => conversation.user_message(&text, Some(&events)).await,
        Said::WithFiles(text, files) => conversation.user_files(&text, files, Some(&events)).await,
        Said::Silence(secs) => conversation.reengage(secs, Some(&events)).await,
    };
    drop(events);
    let llm_first_text = forward.await.ok().flatten();
    let turn = match result {
        Ok(turn) => turn,
        Err(e) => {
            outbox.error(e.code(), e.error_type(), &e.to_string()).await;
            if let Some(speaker) = &speaker {
                speaker.end(turn_event).await;
            }
            // What the configuration lacks (a variable the new agent needs) ends the call.
            let refused = (e.code() == 1008).then(|| e.to_string());
            return Done { refused, ..Done::default() };
        }
    };
    if turn.text.is_empty() {
        if let Some(speaker) = &speaker {
            speaker.end(turn_event).await;
        }
        return Done { end_call: turn.end_call, end_reason: turn.end_reason, ..Done::default() };
    }
    outbox
        .send(ServerEvent::AgentResponse {
            agent_response_event: AgentResponse {
                agent_response: turn.text.clone(),
                event_id: turn_event,
            },
        })
        .await;
    if let Some(speaker) = &speaker {
        if llm_first_text.is_none() {
            // The provider did not stream: the whole answer is spoken at once.
            speaker.text(turn_event, &turn.text);
        }
        spoken(conversation, outbox, speaker, turn_event, llm_first_text).await;
    }
    Done {
        event_id: Some(turn_event),
        end_call: turn.end_call,
        end_reason: turn.end_reason,
        refused: None,
    }
}

/// The soft timeout's fillers for an answer to `said`, if the agent has them.
fn fillers(
    voice: &EngineVoice, conversation: &Conversation, said: &Said, user_spoke: bool,
) -> Option<Fillers> {
    let timeout = voice.soft_timeout.as_ref()?;
    let mut fillers = timeout.for_answer(|m| conversation.render(m), user_spoke)?;
    if let Some(prompt) = timeout.generated() {
        let mut text: String = conversation
            .transcript()
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(|t| {
                format!(
                    "{}: {}\n",
                    t["role"].as_str().unwrap_or("user"),
                    t["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        match said {
            Said::Typed(words) | Said::WithFiles(words, _) => {
                text.push_str(&format!("user: {words}\n"));
            }
            Said::Spoken(heard) => text.push_str(&format!("user: {}\n", heard.text)),
            Said::Silence(_) => {}
        }
        fillers.generator = Some(Arc::new(Generator {
            deps: voice.recognizer.deps.clone(),
            model: conversation.llm().to_owned(),
            prompt: conversation.render(prompt),
            conversation: text,
        }));
    }
    Some(fillers)
}

/// What the user said in `command`; `None` when there is nothing to answer (speech recognized
/// as nothing, or recognition failed, which the client is told).
async fn said(command: Command, outbox: &Outbox, voice: Option<&EngineVoice>) -> Option<Said> {
    match command {
        Command::User(text) => Some(Said::Typed(text)),
        Command::UserFiles(text, files) => Some(Said::WithFiles(text, files)),
        Command::Speech(samples) => {
            voice?.recognizer.recognize(&samples, outbox).await.map(Said::Spoken)
        }
        Command::Heard(heard) => Some(Said::Spoken(*heard)),
        Command::Reengage(secs) => Some(Said::Silence(secs)),
        Command::Retranscribe(samples, secs) => {
            match voice?.recognizer.recognize(&samples, outbox).await {
                Some(heard) => Some(Said::Spoken(heard)),
                None => Some(Said::Silence(secs)),
            }
        }
        Command::Context(_) | Command::Interrupted { .. } | Command::End(_) => None,
    }
}

/// `turn.spelling_patience`: an utterance that ends mid-spelling ("my code is 4 7") waits
/// [`SPELLING_PATIENCE`] for the rest, which joins it, before the agent answers; the text so far
/// is shown as a tentative transcript. What else comes meanwhile is returned, to be handled next.
async fn patience(
    said: &mut Said, commands: &mut mpsc::Receiver<Command>, outbox: &Outbox, voice: &EngineVoice,
) -> Option<Command> {
    if !voice.spelling_patience {
        return None;
    }
    loop {
        let Said::Spoken(heard) = said else { return None };
        if !spells(&heard.text) {
            return None;
        }
        tentative(outbox, heard.text.clone(), heard.event_id).await;
        let more = match tokio::time::timeout(SPELLING_PATIENCE, commands.recv()).await {
            Ok(Some(Command::Speech(samples))) => {
                voice.recognizer.recognize(&samples, outbox).await
            }
            Ok(Some(Command::Heard(more))) => Some(*more),
            Ok(other) => return other,
            Err(_) => return None,
        };
        if let Some(more) = more {
            heard.text = format!("{} {}", heard.text, more.text);
        }
    }
}

/// Waits until the answer `turn_event` is synthesized and sent, tells the client if its
/// synthesis failed, and records the turn's timings.
async fn spoken(
    conversation: &mut Conversation, outbox: &Outbox, speaker: &Speaker, turn_event: u64,
    llm_first_text: Option<Duration>,
) {
    let report = speaker.end(turn_event).await;
    if let Some(e) = &report.error {
        outbox.error(1002, "tts_cascade_error", &e.to_string()).await;
    }
    let secs =
        |d: Option<Duration>| d.map(|d| serde_json::json!({"elapsed_time": d.as_secs_f64()}));
    let mut metrics = serde_json::Map::new();
    if let Some(m) = secs(llm_first_text) {
        metrics.insert("convai_llm_service_ttfb".into(), m);
    }
    if let Some(m) = secs(report.first_audio) {
        metrics.insert("convai_tts_service_ttfb".into(), m);
    }
    if let Err(e) = conversation.spoken(serde_json::json!({ "metrics": metrics })).await {
        tracing::error!(error = %e, "could not record a spoken answer");
    }
}

/// Sends a turn's events to the client as they happen, and its text to the speaker.
struct Relay {
    outbox: Outbox,
    turn_event: u64,
    speaker: Option<Speaker>,
    uninterruptible: Arc<Vec<String>>,
    /// The soft timeout's fillers, spoken while the answer's text is late.
    fillers: Option<Fillers>,
    /// Played while the turn's tools keep the caller waiting.
    hold_audio: Option<HoldAudio>,
}

impl Relay {
    fn new(
        outbox: &Outbox, turn_event: u64, speaker: Option<Speaker>, voice: Option<&EngineVoice>,
        fillers: Option<Fillers>,
    ) -> Relay {
        Relay {
            outbox: outbox.clone(),
            turn_event,
            speaker,
            uninterruptible: voice.map(|v| v.uninterruptible_tools.clone()).unwrap_or_default(),
            fillers,
            hold_audio: voice.and_then(|v| v.hold_audio.clone()),
        }
    }

    /// Runs until the turn ends; when its first text came, after `began`.
    async fn run(
        mut self, mut rx: mpsc::UnboundedReceiver<TurnEvent>, began: Instant,
    ) -> Option<Duration> {
        let mut first_text = None;
        let mut filler_due = self.fillers.as_ref().map(|f| began + f.every);
        loop {
            let due = async {
                match filler_due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                event = rx.recv() => event,
                () = due => {
                    filler_due = self.filler();
                    continue;
                }
            };
            let Some(event) = event else { break };
            let first_delta = matches!(event, TurnEvent::Delta(_)) && first_text.is_none();
            match &event {
                TurnEvent::Delta(text) => {
                    first_text.get_or_insert_with(|| began.elapsed());
                    filler_due = None;
                    if let Some(speaker) = &self.speaker {
                        speaker.text(self.turn_event, text);
                    }
                }
                TurnEvent::Language(language) => {
                    if let Some(speaker) = &self.speaker {
                        speaker.language(language);
                    }
                }
                TurnEvent::ToolRequest { name, .. } | TurnEvent::ToolResponse { name, .. } => {
                    let starts = matches!(event, TurnEvent::ToolRequest { .. });
                    if let Some(speaker) =
                        self.speaker.as_ref().filter(|_| self.uninterruptible.contains(name))
                    {
                        speaker.hold(starts);
                    }
                    if let Some(hold_audio) = &self.hold_audio {
                        hold_audio.tool(self.turn_event, starts);
                    }
                }
                _ => {}
            }
            forward_event(&self.outbox, event, self.turn_event, first_delta).await;
        }
        if let Some(hold_audio) = &self.hold_audio {
            hold_audio.turn_ended();
        }
        if first_text.is_some() {
            self.outbox.send(part(PartKind::Stop, String::new(), self.turn_event)).await;
        }
        first_text
    }

    /// Speaks the next filler (written by the LLM when the agent asks for that, off this
    /// task); when the one after it is due, if any is left.
    fn filler(&mut self) -> Option<Instant> {
        let fillers = self.fillers.as_mut()?;
        if let (Some(text), Some(speaker)) = (fillers.next(), self.speaker.clone()) {
            let turn_event = self.turn_event;
            match fillers.generator.clone() {
                Some(generator) => {
                    tokio::spawn(async move {
                        let written = generator.write().await;
                        speaker.filler(turn_event, written.as_deref().unwrap_or(&text));
                    });
                }
                None => speaker.filler(turn_event, &text),
            }
        }
        (!fillers.is_empty()).then(|| Instant::now() + fillers.every)
    }
}

fn part(kind: PartKind, text: String, event_id: u64) -> ServerEvent {
    ServerEvent::AgentChatResponsePart {
        text_response_part: ResponsePart { text, part: kind, event_id },
    }
}

/// A turn's event as the client sees it (`first_delta`: the first piece of its text, which
/// the `start` part goes before). Client tools announce themselves with `client_tool_call`,
/// so their request and response are not sent again.
async fn forward_event(outbox: &Outbox, event: TurnEvent, turn_event: u64, first_delta: bool) {
    let tool_type = |kind: Option<ToolKind>| kind.map_or("unknown", ToolKind::as_str).to_owned();
    let event = match event {
        TurnEvent::Delta(text) => {
            if first_delta {
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
        TurnEvent::GuardrailTriggered => ServerEvent::GuardrailTriggered {},
        TurnEvent::Language(_) | TurnEvent::Node { .. } => return,
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
