//! The conversation WebSocket's messages (reference §D; `elevenlabs-agents-asyncapi.yaml`):
//! what a client sends ([`ClientEvent`]) and what the server sends ([`ServerEvent`]), each a
//! JSON object tagged by `type`. The server and the tests both speak through these types, so
//! a renamed field is a compile error on both sides rather than a silent mismatch.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEvent {
    /// The first message: overrides, dynamic variables, the user's id, tool mocking.
    ConversationInitiationClientData(Box<InitiationData>),
    /// The user's text (`null` only signals a text-only client).
    UserMessage {
        /// What the user wrote.
        #[serde(default)]
        text: Option<String>,
    },
    /// Context the agent should know, without an answer.
    ContextualUpdate {
        /// The context.
        #[serde(default)]
        text: String,
    },
    /// The user is active (typing): no turn timeout meanwhile.
    UserActivity {},
    /// Answer to a `ping`.
    Pong {
        /// The ping's event id.
        #[serde(default)]
        event_id: Option<u64>,
    },
    /// The result of a `client_tool_call`.
    ClientToolResult {
        /// The call answered.
        #[serde(default)]
        tool_call_id: String,
        /// What the tool returned (text, or any JSON, passed on as text).
        #[serde(default)]
        result: Option<Value>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
    },
    /// The user's decision on an MCP tool call awaiting approval.
    McpToolApprovalResult {
        /// The call decided on.
        #[serde(default)]
        tool_call_id: String,
        /// Approved or not.
        #[serde(default)]
        is_approved: bool,
    },
    /// The user's rating of the agent's answer.
    Feedback {
        /// `like` or `dislike`.
        #[serde(default)]
        score: Option<FeedbackScore>,
        /// The rated event.
        #[serde(default)]
        event_id: Option<u64>,
    },
    /// Text with files uploaded to the conversation (`POST .../files`) before.
    MultimodalMessage {
        /// The text, as a `user_message`.
        #[serde(default)]
        text: Option<MultimodalText>,
        /// One file (what clients before `files` send).
        #[serde(default)]
        file: Option<FileInput>,
        /// Every file, in order (when given, `file` is its first).
        #[serde(default)]
        files: Option<Vec<FileInput>>,
    },
    /// A chunk of the user's voice (the only message without a `type`).
    #[serde(skip)]
    UserAudioChunk(String),
}

/// The text part of a `multimodal_message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MultimodalText {
    /// What the user wrote.
    #[serde(default)]
    pub text: Option<String>,
}

/// A file part of a `multimodal_message` (`type: "file_input"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInput {
    /// The id the upload returned.
    pub file_id: String,
}

impl ClientEvent {
    /// The ids of a `multimodal_message`'s files, in order (empty for other events).
    pub fn file_ids(&self) -> Vec<String> {
        match self {
            ClientEvent::MultimodalMessage { file, files, .. } => match (files, file) {
                (Some(files), _) if !files.is_empty() => {
                    files.iter().map(|f| f.file_id.clone()).collect()
                }
                (_, Some(file)) => vec![file.file_id.clone()],
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }
}

/// `conversation_initiation_client_data`. What the server reads is typed; everything else the
/// client sent is kept (the whole object is stored on the conversation's record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InitiationData {
    /// Overrides of the agent's configuration (as far as the agent allows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_config_override: Option<Value>,
    /// Extra fields of the LLM request (when the agent allows them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_llm_extra_body: Option<Map<String, Value>>,
    /// The conversation's dynamic variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_variables: Option<Map<String, Value>>,
    /// The end user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Which tool calls are mocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_mock_config: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackScore {
    /// Good.
    Like,
    /// Bad.
    Dislike,
}

impl FeedbackScore {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackScore::Like => "like",
            FeedbackScore::Dislike => "dislike",
        }
    }
}

/// Why a client message was not understood.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all.
    #[error("The message is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but of no known type.
    #[error("Unknown message type {0:?}")]
    UnknownType(String),
    /// A known type with fields of the wrong shape.
    #[error("The {kind} message is not valid: {error}")]
    Invalid {
        /// Its type.
        kind: String,
        /// What is wrong.
        error: serde_json::Error,
    },
}

/// The `type`s a client may send.
const CLIENT_TYPES: [&str; 9] = [
    "conversation_initiation_client_data",
    "user_message",
    "contextual_update",
    "user_activity",
    "pong",
    "client_tool_result",
    "mcp_tool_approval_result",
    "feedback",
    "multimodal_message",
];

impl ClientEvent {
    /// Reads one message of the client.
    pub fn decode(bytes: &[u8]) -> Result<ClientEvent, DecodeError> {
        let value: Value = serde_json::from_slice(bytes).map_err(DecodeError::NotJson)?;
        if let Some(chunk) = value.get("user_audio_chunk") {
            return match chunk.as_str() {
                Some(b64) => Ok(ClientEvent::UserAudioChunk(b64.to_owned())),
                None => Err(DecodeError::Invalid {
                    kind: "user_audio_chunk".into(),
                    error: serde::de::Error::custom("user_audio_chunk must be a base64 string"),
                }),
            };
        }
        let kind = value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !CLIENT_TYPES.contains(&kind.as_str()) {
            return Err(DecodeError::UnknownType(kind));
        }
        ClientEvent::deserialize(value).map_err(|error| DecodeError::Invalid { kind, error })
    }
}

/// A message of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The conversation started.
    ConversationInitiationMetadata {
        /// Its id and audio formats.
        conversation_initiation_metadata_event: ConversationMetadata,
    },
    /// What the user said, as the agent heard it.
    UserTranscript {
        /// The text.
        user_transcription_event: UserTranscription,
    },
    /// What the user is heard to say so far, while a streaming recognizer works (the final
    /// `user_transcript` has the same event id).
    TentativeUserTranscript {
        /// The text so far.
        tentative_user_transcription_event: UserTranscription,
    },
    /// The agent's complete answer.
    AgentResponse {
        /// The text.
        agent_response_event: AgentResponse,
    },
    /// A piece of the agent's answer as it streams.
    AgentChatResponsePart {
        /// The piece.
        text_response_part: ResponsePart,
    },
    /// The agent calls a tool.
    AgentToolRequest {
        /// Which.
        agent_tool_request: ToolRequest,
    },
    /// A tool call finished (and is recorded).
    AgentToolResponse {
        /// How it went.
        agent_tool_response: ToolResponse,
    },
    /// The client is to run one of its tools.
    ClientToolCall {
        /// Which, with what.
        client_tool_call: ClientToolCall,
    },
    /// Progress of an MCP tool call (loading, awaiting approval, success, failure).
    McpToolCall {
        /// The call and its state.
        mcp_tool_call: McpToolCall,
    },
    /// The agent's MCP servers as the conversation found them.
    McpConnectionStatus {
        /// Each server.
        mcp_connection_status: McpConnectionStatus,
    },
    /// A piece of the agent's speech.
    Audio {
        /// The audio and the timing of its characters.
        audio_event: AudioEvent,
    },
    /// The user spoke over the agent: its audio of that turn stops.
    Interruption {
        /// The interrupted turn.
        interruption_event: Interruption,
    },
    /// The part of an interrupted answer the user heard.
    AgentResponseCorrection {
        /// The answer and the part heard.
        agent_response_correction_event: ResponseCorrection,
    },
    /// How likely the user's latest audio is speech.
    VadScore {
        /// The score.
        vad_score_event: VadScore,
    },
    /// Keep-alive; the client answers with `pong`.
    Ping {
        /// Its id.
        ping_event: Ping,
    },
    /// Something went wrong.
    Error {
        /// What.
        error_event: ErrorEvent,
    },
    /// A guardrail stopped the agent's answer (or the user's words).
    GuardrailTriggered {},
}

impl ServerEvent {
    /// The event's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerEvent::ConversationInitiationMetadata { .. } => {
                "conversation_initiation_metadata"
            }
            ServerEvent::UserTranscript { .. } => "user_transcript",
            ServerEvent::TentativeUserTranscript { .. } => "tentative_user_transcript",
            ServerEvent::AgentResponse { .. } => "agent_response",
            ServerEvent::AgentChatResponsePart { .. } => "agent_chat_response_part",
            ServerEvent::AgentToolRequest { .. } => "agent_tool_request",
            ServerEvent::AgentToolResponse { .. } => "agent_tool_response",
            ServerEvent::ClientToolCall { .. } => "client_tool_call",
            ServerEvent::McpToolCall { .. } => "mcp_tool_call",
            ServerEvent::McpConnectionStatus { .. } => "mcp_connection_status",
            ServerEvent::Audio { .. } => "audio",
            ServerEvent::Interruption { .. } => "interruption",
            ServerEvent::AgentResponseCorrection { .. } => "agent_response_correction",
            ServerEvent::VadScore { .. } => "vad_score",
            ServerEvent::Ping { .. } => "ping",
            ServerEvent::Error { .. } => "error",
            ServerEvent::GuardrailTriggered {} => "guardrail_triggered",
        }
    }

    /// An `error` event.
    pub fn error(code: u16, error_type: &str, message: &str) -> ServerEvent {
        ServerEvent::Error {
            error_event: ErrorEvent {
                code,
                error_type: error_type.to_owned(),
                message: message.to_owned(),
                reason: message.to_owned(),
            },
        }
    }
}

/// `conversation_initiation_metadata_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMetadata {
    /// The conversation's id.
    pub conversation_id: String,
    /// Format of the agent's audio.
    pub agent_output_audio_format: String,
    /// Format the user's audio is expected in.
    pub user_input_audio_format: String,
}

/// `audio_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioEvent {
    /// The audio in the agent's output format, base64.
    pub audio_base_64: String,
    /// The turn's event id (an `interruption` with this id or a later one drops it).
    pub event_id: u64,
    /// When each character of the text is spoken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment: Option<Alignment>,
}

/// `alignment`: the characters of the spoken text with their start and length, in ms from
/// the start of the turn's audio.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alignment {
    /// The characters.
    pub chars: Vec<String>,
    /// When each starts.
    pub char_start_times_ms: Vec<u64>,
    /// How long each lasts.
    pub char_durations_ms: Vec<u64>,
}

/// `interruption_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    /// The interrupted turn's event id.
    pub event_id: u64,
}

/// `agent_response_correction_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseCorrection {
    /// What the agent meant to say.
    pub original_agent_response: String,
    /// What the user heard before interrupting.
    pub corrected_agent_response: String,
    /// The turn's event id.
    pub event_id: u64,
}

/// `vad_score_event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VadScore {
    /// 0 (silence) to 1 (speech).
    pub vad_score: f32,
}

/// `user_transcription_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTranscription {
    /// What the user said.
    pub user_transcript: String,
    /// Its event id.
    pub event_id: u64,
}

/// `agent_response_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentResponse {
    /// The agent's text.
    pub agent_response: String,
    /// The turn's event id.
    pub event_id: u64,
}

/// `text_response_part`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePart {
    /// The piece (empty for `start` and `stop`).
    pub text: String,
    /// Where in the stream it is.
    #[serde(rename = "type")]
    pub part: PartKind,
    /// The turn's event id.
    pub event_id: u64,
}

/// Where a streamed piece is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartKind {
    /// Before the first piece.
    Start,
    /// A piece.
    Delta,
    /// After the last piece.
    Stop,
}

/// `agent_tool_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRequest {
    /// The tool's name.
    pub tool_name: String,
    /// The call's id.
    pub tool_call_id: String,
    /// The tool's type (`webhook`, `system`, `mcp`, ...).
    pub tool_type: String,
    /// The turn's event id.
    pub event_id: u64,
}

/// `agent_tool_response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResponse {
    /// The tool's name.
    pub tool_name: String,
    /// The call's id.
    pub tool_call_id: String,
    /// The tool's type.
    pub tool_type: String,
    /// Whether it failed.
    pub is_error: bool,
    /// Whether it ran.
    pub is_called: bool,
    /// The turn's event id.
    pub event_id: u64,
}

/// `client_tool_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientToolCall {
    /// The tool's name.
    pub tool_name: String,
    /// The call's id, to answer with.
    pub tool_call_id: String,
    /// Its arguments.
    pub parameters: Value,
    /// Its event id.
    pub event_id: u64,
}

/// `mcp_tool_call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McpToolCall {
    /// The MCP server.
    pub service_id: String,
    /// The call's id.
    pub tool_call_id: String,
    /// The MCP tool's name.
    pub tool_name: String,
    /// Its description.
    pub tool_description: String,
    /// Its arguments.
    pub parameters: Value,
    /// When (RFC 3339).
    pub timestamp: String,
    /// `loading`, `awaiting_approval`, `success` or `failure`.
    pub state: String,
    /// How long the user has to approve (`awaiting_approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// The server's content blocks (`success`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed (`failure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `mcp_connection_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpConnectionStatus {
    /// Each server.
    pub integrations: Vec<McpIntegration>,
}

/// One MCP server's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpIntegration {
    /// The server's id.
    pub integration_id: String,
    /// Always `mcp_server`.
    pub integration_type: String,
    /// Whether it answered.
    pub is_connected: bool,
    /// How many tools it offers.
    pub tool_count: usize,
}

/// `ping_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Its id, echoed by `pong`.
    pub event_id: u64,
    /// Round trip estimate (not measured here).
    pub ping_ms: Option<u64>,
}

/// `error_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// A WebSocket close code the error corresponds to.
    pub code: u16,
    /// The error's type (`invalid_message`, `llm_error`, ...).
    pub error_type: String,
    /// What went wrong.
    pub message: String,
    /// The same, for clients that read `reason`.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn client_messages_decode_by_type_and_keep_unknown_initiation_fields() {
        let init = json!({"type": "conversation_initiation_client_data", "user_id": "u1",
            "dynamic_variables": {"name": "Ada"}, "source_info": {"source": "js_sdk"}});
        let ClientEvent::ConversationInitiationClientData(data) =
            ClientEvent::decode(init.to_string().as_bytes()).unwrap()
        else {
            panic!("not an initiation");
        };
        assert_eq!(data.user_id.as_deref(), Some("u1"));
        assert_eq!(data.rest["source_info"], json!({"source": "js_sdk"}));
        let mut back =
            serde_json::to_value(ClientEvent::ConversationInitiationClientData(data)).unwrap();
        back.as_object_mut().unwrap().sort_keys();
        let mut init = init;
        init.as_object_mut().unwrap().sort_keys();
        assert_eq!(back, init);

        assert_eq!(
            ClientEvent::decode(br#"{"type":"user_message","text":"hi"}"#).unwrap(),
            ClientEvent::UserMessage { text: Some("hi".into()) }
        );
        assert_eq!(
            ClientEvent::decode(br#"{"user_audio_chunk":"AAAA"}"#).unwrap(),
            ClientEvent::UserAudioChunk("AAAA".into())
        );
        assert!(matches!(
            ClientEvent::decode(br#"{"user_audio_chunk":42}"#),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            ClientEvent::decode(br#"{"type":"dance"}"#),
            Err(DecodeError::UnknownType(t)) if t == "dance"
        ));
        assert!(matches!(
            ClientEvent::decode(br#"{"type":"feedback","score":"meh"}"#),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(ClientEvent::decode(b"not json"), Err(DecodeError::NotJson(_))));
    }

    #[test]
    fn server_events_have_the_reference_shape() {
        let event = ServerEvent::AgentChatResponsePart {
            text_response_part: ResponsePart {
                text: String::new(),
                part: PartKind::Start,
                event_id: 3,
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"type": "agent_chat_response_part", "text_response_part": {"text": "", "type": "start", "event_id": 3}})
        );
        assert_eq!(event.kind(), "agent_chat_response_part");
        assert_eq!(
            serde_json::to_value(ServerEvent::error(1008, "invalid_message", "bad")).unwrap(),
            json!({"type": "error", "error_event": {"code": 1008, "error_type": "invalid_message", "message": "bad", "reason": "bad"}})
        );
    }
}
