//! The input stage: what enters the conversation before the agent speaks. The user's words
//! join both the LLM's history and the transcript; notes the user did not say (context
//! updates, a silence) join only the history.

use serde_json::{Value, json};

use crate::conversation::state::State;
use crate::conversation::transcript;
use crate::llm::{Attachment, ChatMessage, Role};

/// A file the user sent with a message (uploaded to the conversation before).
#[derive(Debug, Clone)]
pub struct UserFile {
    /// The id the upload returned.
    pub file_id: String,
    /// The address the file is downloaded from (the transcript's `file_url`).
    pub url: String,
    /// The file: an image or PDF the LLM is given as such, or text it reads in the message.
    pub attachment: Attachment,
}

/// The user said `text`.
pub(crate) fn user(state: &mut State, text: &str) {
    seed(state, Role::User, text);
}

/// The user wrote `text` and sent `files`: a text file joins the message as text; images
/// and PDFs go to the LLM as files, the oldest dropped beyond the agent's
/// `file_input.max_files_in_memory` (a note says which). The transcript entry lists them all.
pub(crate) fn user_with_files(state: &mut State, text: &str, files: Vec<UserFile>) {
    let mut content = text.to_owned();
    let mut attachments = Vec::new();
    let mut listed = Vec::new();
    for file in files {
        let a = file.attachment;
        listed.push(json!({"file_id": file.file_id, "original_filename": a.filename,
            "mime_type": a.mime_type, "file_url": file.url}));
        if a.is_image() || a.mime_type == "application/pdf" {
            attachments.push(a);
        } else {
            content.push_str(&format!(
                "\n\n[File {}]\n{}",
                a.filename,
                String::from_utf8_lossy(&a.data)
            ));
        }
    }
    state.history.push(ChatMessage { attachments, ..ChatMessage::text(Role::User, content) });
    forget_files(state);
    let mut entry = transcript::entry("user", text, state.secs());
    entry["file_input"] = listed.first().cloned().unwrap_or(Value::Null);
    entry["file_inputs"] = json!(listed);
    state.say(entry);
}

/// Keeps only the newest `keep` files in the history: older ones leave a note in their
/// message, so the LLM knows a file was there.
fn forget_files(state: &mut State) {
    let keep = state.files_in_memory;
    let mut seen = 0;
    for message in state.history.iter_mut().rev() {
        if message.attachments.is_empty() {
            continue;
        }
        let kept = keep.saturating_sub(seen).min(message.attachments.len());
        seen += message.attachments.len();
        for dropped in message.attachments.drain(..message.attachments.len() - kept) {
            message
                .content
                .push_str(&format!("\n[File {} is no longer available]", dropped.filename));
        }
    }
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
    state.say(entry);
}

/// The agent's first message, at the start of the conversation.
pub(crate) fn greeting(state: &mut State, text: &str) {
    state.history.push(ChatMessage::text(Role::Assistant, text));
    let entry = transcript::agent_entry(&state.agent, text, 0);
    state.say(entry);
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
