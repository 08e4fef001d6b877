//! The input stage: what enters the conversation before the agent speaks. The user's words
//! join both the LLM's history and the transcript; notes the user did not say (context
//! updates, a silence) join only the history.

use serde_json::{Value, json};

use crate::conversation::state::State;
use crate::conversation::transcript;
use crate::llm::{ChatMessage, Role};

/// The user said `text`.
pub(crate) fn user(state: &mut State, text: &str) {
    seed(state, Role::User, text);
}

/// The user said `text` aloud; `metrics` are the recognition's (`conversation_turn_metrics`).
pub(crate) fn spoken(state: &mut State, text: &str, metrics: Value) {
    user(state, text);
    state.spoken = true;
    state.transcript.amend_last("user", |entry| {
        entry["source_medium"] = json!("audio");
        entry["conversation_turn_metrics"] = metrics;
    });
}

/// A message of the past (a test's `chat_history`), by the user or the agent.
pub(crate) fn seed(state: &mut State, role: Role, text: &str) {
    state.history.push(ChatMessage::text(role, text));
    let secs = state.secs();
    let entry = if role == Role::User {
        transcript::entry("user", text, secs)
    } else {
        transcript::agent_entry(&state.agent, text, secs)
    };
    state.transcript.push(entry);
}

/// The agent's first message, at the start of the conversation.
pub(crate) fn greeting(state: &mut State, text: &str) {
    state.history.push(ChatMessage::text(Role::Assistant, text));
    let entry = transcript::agent_entry(&state.agent, text, 0);
    state.transcript.push(entry);
}

/// Context the user did not say (a `contextual_update`).
pub(crate) fn context(state: &mut State, text: &str) {
    state.history.push(ChatMessage::text(Role::User, format!("[Context update] {text}")));
}

/// The user stayed silent for `silent_secs`: the agent is asked to check on them.
pub(crate) fn reengage(state: &mut State, silent_secs: u64) {
    state.history.push(ChatMessage::text(
        Role::User,
        format!("[The user has not replied for {silent_secs} seconds. Briefly check whether they are still there.]"),
    ));
}
