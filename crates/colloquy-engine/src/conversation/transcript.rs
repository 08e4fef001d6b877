//! The transcript in the reference's shape (`ConversationHistoryTranscript...`): the entries
//! the engine reads, each also kept as JSON text written once, when added.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AgentSnapshot;

/// The transcript, parsed (the engine reads it) and each entry also as JSON text: the
/// conversation is saved after every turn, and re-serializing the whole transcript each time
/// made saving quadratic in its length. Entries are not changed once added, except the last
/// agent entry, which a voice conversation completes once its speech has been played (or
/// interrupted).
#[derive(Default)]
pub(crate) struct Transcript {
    entries: Vec<Value>,
    json: Vec<Box<RawValue>>,
    /// When each entry was added, in milliseconds from the start: `time_in_call_secs` has
    /// whole seconds, and an agent entry's is when its turn began, not when it was said.
    at_ms: Vec<i64>,
}

impl Transcript {
    /// Adds an entry, added `at_ms` from the start.
    pub(crate) fn push(&mut self, entry: Value, at_ms: i64) {
        // Serializing a `Value` cannot fail (its keys are strings); the lists stay in step.
        if let Ok(json) = serde_json::value::to_raw_value(&entry) {
            self.json.push(json);
            self.entries.push(entry);
            self.at_ms.push(at_ms);
        }
    }

    /// Changes the last entry of `role`, if there is one.
    pub(crate) fn amend_last(&mut self, role: &str, change: impl FnOnce(&mut Value)) {
        let Some(i) = self.entries.iter().rposition(|e| e["role"] == role) else { return };
        change(&mut self.entries[i]);
        if let Ok(json) = serde_json::value::to_raw_value(&self.entries[i]) {
            self.json[i] = json;
        }
    }

    /// The entries so far.
    pub(crate) fn entries(&self) -> &[Value] {
        &self.entries
    }

    /// When each entry was added, in milliseconds from the start.
    pub(crate) fn at_ms(&self) -> &[i64] {
        &self.at_ms
    }

    /// The entries as JSON text, for the stored document.
    pub(crate) fn json(&self) -> &[Box<RawValue>] {
        &self.json
    }

    /// How many entries are the agent's.
    pub(crate) fn agent_turns(&self) -> usize {
        self.entries.iter().filter(|t| t["role"] == "agent").count()
    }
}

/// An entry of the agent's at `secs` into the conversation, with which agent, branch and
/// version said it (`agent_metadata`).
pub(crate) fn agent_entry(agent: &AgentSnapshot, message: &str, secs: i64) -> Value {
    let mut entry = entry("agent", message, secs);
    entry["agent_metadata"] = json!({
        "agent_id": agent.agent_id,
        "branch_id": agent.branch_id,
        "version_id": agent.version_id,
        "workflow_node_id": agent.workflow_node_id,
    });
    entry
}

/// A text entry of `role` (`user` or `agent`) at `secs` into the conversation.
pub(crate) fn entry(role: &str, message: &str, secs: i64) -> Value {
    json!({
        "role": role,
        "message": message,
        "tool_calls": [],
        "tool_results": [],
        "feedback": null,
        "time_in_call_secs": secs,
        "interrupted": false,
        "source_medium": "text",
    })
}
