//! The output stage: the agent's transcript entry for the turn, built up as the turn goes
//! (its text, the tool calls it made and their results) and closed once the agent has
//! answered, skipped its turn, ended the call, or run out of tool rounds.

use serde_json::{Value, json};

use super::guardrails::Triggered;
use super::{Events, TurnEvent, TurnResult};
use crate::conversation::state::State;
use crate::conversation::transcript;
use crate::llm::{ChatMessage, Role};

/// The agent's answer in the making.
pub(crate) struct Reply {
    /// Its transcript entry (tool calls and results are added as they happen).
    pub(crate) entry: Value,
    /// Its text so far, across every LLM round of the turn.
    pub(crate) text: String,
    /// An `end_call` tool ran.
    pub(crate) end_call: bool,
    /// Why the call ends, when it does.
    pub(crate) end_reason: Option<&'static str>,
}

impl Reply {
    /// A new reply, timed now.
    pub(crate) fn begin(state: &State) -> Reply {
        Reply {
            entry: transcript::agent_entry(&state.agent, "", state.secs()),
            text: String::new(),
            end_call: false,
            end_reason: None,
        }
    }

    /// Adds `text` the agent says to its answer, streamed like the LLM's (the answer a
    /// blocking guardrail held back, a transfer message, a refusal).
    pub(crate) fn say(&mut self, text: &str, events: Events<'_>) {
        if text.is_empty() {
            return;
        }
        let text = if self.text.is_empty() { text.to_owned() } else { format!(" {text}") };
        if let Some(tx) = events {
            let _ = tx.send(TurnEvent::Delta(text.clone()));
        }
        self.text.push_str(&text);
    }

    /// A guardrail stopped something this turn: the client hears of it, the entry records it.
    pub(crate) fn guarded(&mut self, triggered: &Triggered, events: Events<'_>) {
        if let Some(tx) = events {
            let _ = tx.send(TurnEvent::GuardrailTriggered);
        }
        match self.entry["triggered_guardrails"].as_array_mut() {
            Some(list) => list.push(triggered.record()),
            None => self.entry["triggered_guardrails"] = json!([triggered.record()]),
        }
    }

    /// The LLM answered with text (`last`, the answer of the final round): the turn is done.
    pub(crate) fn answered(self, state: &mut State, last: String) -> TurnResult {
        state.history.push(ChatMessage::text(Role::Assistant, last));
        self.close(state)
    }

    /// A tool stopped the turn (the agent skips it, or the call ends): the text so far is the
    /// answer.
    pub(crate) fn stopped(self, state: &mut State) -> TurnResult {
        state.history.push(ChatMessage::text(Role::Assistant, self.text.clone()));
        self.close(state)
    }

    /// The turn ends the call (a workflow's end node, a guardrail): the text so far is the
    /// last answer.
    pub(crate) fn ended(mut self, state: &mut State, reason: &'static str) -> TurnResult {
        self.end_call = true;
        self.end_reason = Some(reason);
        self.stopped(state)
    }

    /// The turn ends without an answer (the round limit): the entry keeps what was said.
    pub(crate) fn abandon(self, state: &mut State) {
        self.close(state);
    }

    fn close(mut self, state: &mut State) -> TurnResult {
        self.entry["message"] = json!(self.text);
        state.say(self.entry);
        TurnResult { text: self.text, end_call: self.end_call, end_reason: self.end_reason }
    }
}
