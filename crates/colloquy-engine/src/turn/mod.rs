//! One agent turn, as a short sequence of stages over the conversation's
//! [`State`](crate::conversation::state::State), each its own module with one job:
//!
//! 1. [`input`]: what the user said (or a silence, or context) enters the conversation;
//!    it runs before [`run`], called by the conversation.
//! 2. [`retrieval`]: the agent's knowledge base adds its documents and the chunks that match
//!    the user's words to the system prompt.
//! 3. [`llm`]: the agent's LLM is asked for the next answer, text streaming out as it comes.
//! 4. [`tools`]: the calls that answer asks for run, are recorded, and take effect; then the
//!    LLM is asked again, until it answers with text or a tool stops the turn.
//! 5. [`output`]: the agent's transcript entry is closed and the turn's result returned.
//!
//! A stage that checks the input (guardrails) goes between the input and the LLM; a voice conversation puts speech recognition before the
//! input and synthesis after the output. Each is a module and a line in [`run`].

pub(crate) mod input;
mod llm;
mod output;
pub(crate) mod retrieval;
mod tools;

use colloquy_core::tools::ToolKind;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::error::EngineError;

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
        /// What the tool is; `None` when the agent has no tool of that name.
        kind: Option<ToolKind>,
        /// Arguments.
        parameters: Value,
    },
    /// A tool call finished and is recorded.
    ToolResponse {
        /// The LLM's call id.
        call_id: String,
        /// Tool name.
        name: String,
        /// What the tool is; `None` when the agent has no tool of that name.
        kind: Option<ToolKind>,
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

/// Where a turn's events go, if anyone listens.
pub(crate) type Events<'a> = Option<&'a mpsc::UnboundedSender<TurnEvent>>;

/// The agent's turn on the conversation as it stands.
#[tracing::instrument(name = "turn", parent = &rt.span, skip_all, fields(conversation = %rt.id))]
pub(crate) async fn run(
    state: &mut State, rt: &Runtime, events: Events<'_>,
) -> Result<TurnResult, EngineError> {
    state.before_turn();
    let rag = retrieval::run(state, rt).await?;
    let llm = llm::Llm::for_agent(state, rt)?;
    let mut reply = output::Reply::begin(state);
    if let Some(rag) = rag {
        reply.entry["rag_retrieval_info"] = rag;
    }
    for _round in 0..rt.deps.limits.max_tool_rounds {
        let (answer, model) = llm.ask(state, rt, events).await?;
        // Which model answered: the agent's own, or a backup that took over.
        reply.entry["producing_llm"] = serde_json::Value::String(model);
        reply.text.push_str(&answer.text);
        if answer.tool_calls.is_empty() {
            return Ok(reply.answered(state, answer.text));
        }
        if tools::run(state, rt, answer, events, &mut reply).await? {
            return Ok(reply.stopped(state));
        }
    }
    reply.abandon(state);
    Err(EngineError::TooManyToolRounds(rt.deps.limits.max_tool_rounds))
}
