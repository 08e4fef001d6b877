//! One agent turn, as a short sequence of stages over the conversation's
//! [`State`](crate::conversation::state::State), each its own module with one job:
//!
//! 1. [`input`]: what the user said (or a silence, or context) enters the conversation;
//!    it runs before [`run`], called by the conversation.
//! 2. [`guardrails`]: the user's words are judged for a prompt injection (and the agent's
//!    answers, before the turn ends, for the content and custom rules it has on).
//! 3. [`retrieval`]: the agent's knowledge base adds its documents and the chunks that match
//!    the user's words to the system prompt.
//! 4. [`llm`]: the agent's LLM is asked for the next answer, text streaming out as it comes
//!    (held back until the guardrails pass it, when one of them is blocking).
//! 5. [`tools`]: the calls that answer asks for run, are recorded, and take effect; then the
//!    LLM is asked again, until it answers with text or a tool stops the turn.
//! 6. [`output`]: the agent's transcript entry is closed and the turn's result returned.
//!
//! A voice conversation puts speech recognition before the input and synthesis after the
//! output. Each is a module and a line in [`run`].

pub(crate) mod guardrails;
pub(crate) mod input;
mod llm;
mod output;
pub(crate) mod retrieval;
mod tools;
pub(crate) mod workflow;

use colloquy_core::tools::ToolKind;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::conversation::Runtime;
use crate::conversation::state::State;
use crate::error::EngineError;
use crate::llm::{ChatMessage, Role};
use guardrails::{Action, Screening};

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
    /// A guardrail stopped an answer or the user's words.
    GuardrailTriggered,
    /// The conversation switched to this language (`language_detection`): what follows is
    /// spoken in it.
    Language(String),
    /// The conversation entered a node of the agent's workflow.
    Node {
        /// The agent whose workflow it is.
        agent_id: String,
        /// The node.
        node_id: String,
    },
}

/// The end of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnResult {
    /// The agent's complete text (empty when it skipped its turn).
    pub text: String,
    /// The agent ended the conversation.
    pub end_call: bool,
    /// Why, when it did: its `end_call` tool, its workflow's end node, a guardrail.
    pub end_reason: Option<&'static str>,
}

/// Why a call ended at a workflow's end node.
const WORKFLOW_END: &str = "the workflow reached an end node";
/// Why a call ended on a guardrail's `end_call` action.
const GUARDRAIL_END: &str = "a guardrail ended the call";

/// Where a turn's events go, if anyone listens.
pub(crate) type Events<'a> = Option<&'a mpsc::UnboundedSender<TurnEvent>>;

/// The agent's turn on the conversation as it stands.
#[tracing::instrument(name = "turn", parent = &rt.span, skip_all, fields(conversation = %rt.id))]
pub(crate) async fn run(
    state: &mut State, rt: &Runtime, events: Events<'_>,
) -> Result<TurnResult, EngineError> {
    state.before_turn();
    let llm = llm::Llm::for_agent(state, rt)?;
    let mut reply = output::Reply::begin(state);
    let guardrails = state.guardrails.clone();
    // The user's words are judged for a prompt injection, and nothing of the turn takes
    // effect before the verdict (a workflow about to move waits for it first).
    let mut screening = Screening::start(&guardrails, &llm, state);
    let resume = state.next_node.take();
    if (resume.is_some() || workflow::moves(state))
        && let Some(triggered) = screening.verdict().await
    {
        return Ok(refuse(state, reply, &triggered, events));
    }
    // A hand-over into a node of this agent's workflow starts there.
    match workflow::advance(state, rt, &llm, &mut reply, events, resume).await? {
        workflow::Next::Answer | workflow::Next::Wait => {}
        workflow::Next::End => return Ok(reply.ended(state, WORKFLOW_END)),
        workflow::Next::HandOver => return Ok(reply.stopped(state)),
    }
    // A node may have reconfigured the agent (its model and tools among it).
    let llm = llm::Llm::for_agent(state, rt)?;
    if let Some(rag) = retrieval::run(state, rt).await? {
        reply.entry["rag_retrieval_info"] = rag;
    }
    // A blocking guardrail holds every answer back until it has passed.
    let stream = if guardrails.blocking() { None } else { events };
    let mut retried = false;
    let mut llm = llm;
    for _round in 0..rt.deps.limits.max_tool_rounds {
        let held = screening.pending();
        let (mut answer, model) = llm.ask(state, rt, if held { None } else { stream }).await?;
        // Which model answered: the agent's own, or a backup that took over.
        reply.entry["producing_llm"] = serde_json::Value::String(model);
        let checked = answer.tool_calls.is_empty() && guardrails.checks_output();
        // A text answer the guardrails check is judged with the user's words in one request.
        let said = if checked { screening.with_answer() } else { None };
        if let Some(triggered) = screening.verdict().await {
            return Ok(refuse(state, reply, &triggered, events));
        }
        if checked {
            let ruling = guard(state, rt, &llm, &answer.text, said, &mut reply, events);
            match (ruling.await, retried) {
                (Ruling::Refuse(triggered), _) => {
                    return Ok(refuse(state, reply, &triggered, events));
                }
                (Ruling::Pass, _) => {}
                (Ruling::Retry, false) => {
                    retried = true;
                    continue;
                }
                (Ruling::Retry, true) => answer.text = guardrails::REFUSAL.into(),
                (Ruling::End, _) => return Ok(reply.ended(state, GUARDRAIL_END)),
            }
        }
        if stream.is_none() || held {
            reply.say(&answer.text, events);
        } else {
            reply.text.push_str(&answer.text);
        }
        if answer.tool_calls.is_empty() {
            return Ok(reply.answered(state, answer.text));
        }
        let stopped = tools::run(state, rt, answer, events, &mut reply).await?;
        if let Some(target) = state.next_node.take() {
            match workflow::advance(state, rt, &llm, &mut reply, events, Some(target)).await? {
                workflow::Next::Answer => llm = llm::Llm::for_agent(state, rt)?,
                workflow::Next::Wait | workflow::Next::HandOver => return Ok(reply.stopped(state)),
                workflow::Next::End => return Ok(reply.ended(state, WORKFLOW_END)),
            }
        }
        if stopped {
            return Ok(reply.stopped(state));
        }
    }
    reply.abandon(state);
    Err(EngineError::TooManyToolRounds(rt.deps.limits.max_tool_rounds))
}

/// The fixed refusal in place of the turn's answer, the guardrail announced and recorded.
fn refuse(
    state: &mut State, mut reply: output::Reply, triggered: &guardrails::Triggered,
    events: Events<'_>,
) -> TurnResult {
    reply.guarded(triggered, events);
    reply.say(guardrails::REFUSAL, events);
    reply.answered(state, guardrails::REFUSAL.into())
}

/// What the guardrails make of an answer.
enum Ruling {
    /// It stands.
    Pass,
    /// The user's words were a prompt injection: the turn gets the refusal.
    Refuse(guardrails::Triggered),
    /// Ask again (the guardrail's feedback is in the history).
    Retry,
    /// Drop it and end the call.
    End,
}

/// Judges the agent's `answer` with the guardrails; a trigger is announced and recorded, and a
/// retry's feedback joins the history.
async fn guard(
    state: &mut State, rt: &Runtime, llm: &llm::Llm, answer: &str, said: Option<String>,
    reply: &mut output::Reply, events: Events<'_>,
) -> Ruling {
    let guardrails = state.guardrails.clone();
    let Some(triggered) = guardrails.check_output(state, rt, llm, answer, said.as_deref()).await
    else {
        return Ruling::Pass;
    };
    if triggered.guardrail_type == guardrails::PROMPT_INJECTION {
        return Ruling::Refuse(triggered);
    }
    reply.guarded(&triggered, events);
    match triggered.action {
        Action::Retry(feedback) => {
            let feedback = feedback.replace("{{trigger_reason}}", &triggered.reason);
            state.history.push(ChatMessage::text(Role::User, feedback));
            Ruling::Retry
        }
        Action::EndCall => Ruling::End,
    }
}
