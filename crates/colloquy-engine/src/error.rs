//! Why a turn, or the start or end of a conversation, failed. Each failure has the
//! reference's error type (`llm_error`, `llm_timeout`, `custom_llm_error`, `internal_error`)
//! for the `error` event and the conversation's record.

use colloquy_store::StoreError;

use crate::llm::LlmError;

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The LLM failed.
    #[error("{error}")]
    Llm {
        /// `llm_timeout`, `llm_error` or `custom_llm_error`.
        error_type: &'static str,
        /// The cause.
        #[source]
        error: LlmError,
    },
    /// Persisting failed (the conversation, or a tool call's audit record).
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// The agent went round its tools more often than allowed in one turn.
    #[error("the agent called tools {0} times in a row without answering")]
    TooManyToolRounds(usize),
    /// The agent's prompt or first message names variables nobody gave a value.
    #[error("Missing required dynamic variables in the agent's prompt or first message: {}", .0.join(", "))]
    MissingDynamicVariables(Vec<String>),
    /// The agent a transfer hands over to names variables nobody gave a value.
    #[error("Missing required dynamic variables after the transfer to another agent: {}", .0.join(", "))]
    MissingDynamicVariablesTransfer(Vec<String>),
    /// The agent a transfer hands over to could not be loaded.
    #[error("the transfer to agent {0} failed: {1}")]
    Transfer(String, String),
}

impl EngineError {
    /// The reference's error type for events and records.
    pub fn error_type(&self) -> &'static str {
        match self {
            EngineError::Llm { error_type, .. } => error_type,
            EngineError::Store(_) => "internal_error",
            EngineError::TooManyToolRounds(_) => "llm_error",
            EngineError::MissingDynamicVariables(_) => "missing_dynamic_variable",
            EngineError::MissingDynamicVariablesTransfer(_) => "missing_dynamic_variable_transfer",
            EngineError::Transfer(..) => "internal_error",
        }
    }

    /// The close code of the `error` event: 1008 (policy) for what the configuration or the
    /// client is missing, which ends the conversation; 1011 for the rest.
    pub fn code(&self) -> u16 {
        match self {
            EngineError::MissingDynamicVariables(_)
            | EngineError::MissingDynamicVariablesTransfer(_) => 1008,
            _ => 1011,
        }
    }
}
