//! LLM providers behind one trait: a chat request with tools goes in, text deltas stream out
//! through a channel as they arrive, and the complete answer (text and tool calls) comes back.
//! Providers are hand-written over reqwest with lenient types (DESIGN.md §6): OpenAI-compatible
//! chat completions and the Anthropic Messages API. [`router::LlmRouter`] picks one per model.

pub mod anthropic;
pub mod embedded;
pub mod openai;
pub mod router;
pub(crate) mod sse;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The system prompt.
    System,
    /// The user.
    User,
    /// The agent.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A tool call the LLM asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The LLM's id for the call (answered by the tool message with the same id).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON text, as the LLM produced them.
    pub arguments: String,
}

/// A file the user attached to a message: an image or a PDF (a text file is given to the
/// LLM as text, in the message, since every model reads that).
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The name it was uploaded under.
    pub filename: String,
    /// `image/png`, `image/jpeg`, `image/gif`, `image/webp` or `application/pdf`.
    pub mime_type: String,
    /// The file, shared: the history is cloned into every request.
    pub data: std::sync::Arc<[u8]>,
}

impl Attachment {
    /// Whether it is an image (else a PDF document).
    pub fn is_image(&self) -> bool {
        self.mime_type.starts_with("image/")
    }

    /// The file as base64.
    pub fn base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.data)
    }
}

/// One message of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// Text (for a tool message: the result).
    pub content: String,
    /// Calls made by an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// Files the user attached to a user message.
    pub attachments: Vec<Attachment>,
}

impl ChatMessage {
    /// A message with only text.
    pub fn text(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            attachments: Vec::new(),
        }
    }

    /// An assistant message: its text and the tool calls it makes.
    pub fn calls(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage { tool_calls, ..ChatMessage::text(Role::Assistant, content) }
    }

    /// The result of a tool call.
    pub fn tool_result(call_id: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            tool_call_id: Some(call_id.to_owned()),
            ..ChatMessage::text(Role::Tool, content)
        }
    }
}

/// A tool offered to the LLM.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name the LLM calls it by.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON schema of its arguments (an object).
    pub parameters: Value,
}

/// One request to an LLM.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// Model name, as the provider knows it.
    pub model: String,
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Tools it may call.
    pub tools: Vec<ToolSpec>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Most tokens to produce.
    pub max_tokens: Option<u64>,
    /// Extra top-level fields of the provider request (`custom_llm_extra_body`).
    pub extra_body: Option<Map<String, Value>>,
    /// The tool the LLM must call (one of `tools`): how structured answers are asked for, as
    /// every provider with tool calling honours a forced call.
    pub force_tool: Option<String>,
}

/// The complete answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    /// Text produced.
    pub text: String,
    /// Tool calls requested.
    pub tool_calls: Vec<ToolCall>,
    /// Prompt tokens, when reported.
    pub input_tokens: Option<u64>,
    /// Completion tokens, when reported.
    pub output_tokens: Option<u64>,
    /// Why the model stopped (`stop`, `tool_calls`, `length`, ...), when it said.
    pub finish_reason: Option<String>,
}

/// Why an LLM call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// No answer in time.
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    /// The provider answered with an error status.
    #[error("the LLM answered HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
    /// Connecting or reading failed.
    #[error("the LLM could not be reached: {0}")]
    Transport(String),
    /// The answer could not be understood.
    #[error("the LLM answer could not be parsed: {0}")]
    Protocol(String),
    /// No provider serves this model.
    #[error(
        "no LLM provider is configured for model {0:?}; add a route for it in colloquy.toml or set OPENAI_BASE_URL"
    )]
    NoProvider(String),
    /// The destination was refused by the egress guard.
    #[error("{0}")]
    Refused(String),
    /// No provider is configured and no local model is present.
    #[error(
        "no LLM is configured: run `colloquy models pull` to download a local model, or set OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server)"
    )]
    Unconfigured,
    /// The embedded model could not be read or run.
    #[error("the embedded model: {0}")]
    Embedded(String),
}

impl LlmError {
    /// Whether a retry may succeed (rate limits, server errors, dropped connections).
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            LlmError::Transport(_) => true,
            _ => false,
        }
    }
}

/// Where text deltas go while the answer streams.
pub type Deltas = mpsc::UnboundedSender<String>;

/// An LLM provider.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Sends `request`; streams text deltas to `deltas` (if any) and returns the whole answer.
    async fn chat(
        &self, request: &ChatRequest, deltas: Option<&Deltas>,
    ) -> Result<ChatResponse, LlmError>;

    /// The models it serves, as its own list says (none when it has no list or could not
    /// be asked).
    async fn models(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Asks a provider's model list (`GET .../models`, OpenAI's and Anthropic's shape: ids under
/// `data`), waiting at most `MODEL_LIST_WAIT`.
pub(crate) async fn model_ids(request: reqwest::RequestBuilder) -> Vec<String> {
    let answer = async {
        let response =
            request.timeout(MODEL_LIST_WAIT).send().await.ok()?.error_for_status().ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        let ids = body.get("data")?.as_array()?.iter();
        Some(ids.filter_map(|m| m.get("id")?.as_str().map(str::to_owned)).collect())
    };
    answer.await.unwrap_or_default()
}

/// The longest `/llm/list` waits on one provider's model list.
const MODEL_LIST_WAIT: Duration = Duration::from_secs(3);

/// Timeouts and retries shared by the HTTP providers.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Longest wait for the response to start, and between two streamed chunks.
    pub timeout: Duration,
    /// Retries after a retryable failure that happened before any text was streamed.
    pub retries: u32,
    /// First backoff; doubles on each retry.
    pub backoff: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(60),
            retries: 2,
            backoff: Duration::from_millis(250),
        }
    }
}

impl CallPolicy {
    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up.
    pub async fn run<F, Fut>(&self, mut attempt: F) -> Result<ChatResponse, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<ChatResponse, LlmError>>,
    {
        let mut delay = self.backoff;
        for tries in 0.. {
            match attempt().await {
                Err(e) if e.retryable() && tries < self.retries => {
                    tracing::warn!(error = %e, retry_in = ?delay, "LLM call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        Err(LlmError::Transport("unreachable".into()))
    }
}

/// The first 500 characters of an error body.
pub(crate) fn snippet(body: &str) -> String {
    body.chars().take(500).collect()
}
