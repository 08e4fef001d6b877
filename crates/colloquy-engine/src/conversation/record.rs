//! How a conversation is kept: its row is written at the start, its progress after every turn
//! (in the background for live conversations, see [`super::saver`]; before the turn returns
//! for tests and simulations), and its outcome at the end (`call_successful`, DESIGN.md §4.1).

use colloquy_core::ids::ConversationId;
use colloquy_core::time;
use colloquy_store::{ConversationProgress, ConversationRecord, DynStore, StoreError};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::saver::ProgressWriter;
use super::state::State;

/// How a conversation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Normally: the agent or the user ended it.
    Normal(String),
    /// On an error.
    Error(String),
}

/// The stored conversation document (as the conversations API returns it), borrowed from the
/// live conversation. Field order is the stored order.
#[derive(Serialize)]
struct StoredDocument<'a> {
    transcript: &'a [Box<RawValue>],
    metadata: StoredMetadata<'a>,
    conversation_initiation_client_data: &'a Value,
    user_id: &'a Option<String>,
    environment: &'a str,
    visited_agents: &'a [Value],
    /// Colloquy's own: when each entry was added, for the dashboard's timeline
    /// (`GET /api/conversations/{id}/timing`); not part of the reference's document.
    timing: Timing<'a>,
}

#[derive(Serialize)]
struct Timing<'a> {
    started_at_unix_ms: i64,
    entries_ms: &'a [i64],
}

#[derive(Serialize)]
struct StoredMetadata<'a> {
    text_only: bool,
    error: &'a Option<Value>,
    main_language: &'a str,
    termination_reason: &'a str,
}

/// The writer of one conversation's row.
pub(crate) struct Recorder {
    store: DynStore,
    id: ConversationId,
    /// What the client sent to start, kept on the record.
    initiation_data: Value,
    /// The end user's id, if the client gave one.
    user_id: Option<String>,
    /// Live conversations save their turns in the background, through the node's writer.
    saver: Option<ProgressWriter>,
}

impl Recorder {
    /// The end user's id, if the client gave one.
    pub(crate) fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// Writes the new conversation's row (and marks its agent as called). A live conversation
    /// passes the node's `saver`; without one each turn is written before it returns.
    pub(crate) async fn start(
        store: DynStore, record: &ConversationRecord, state: &State, initiation_data: Value,
        user_id: Option<String>, saver: Option<ProgressWriter>,
    ) -> Result<Recorder, StoreError> {
        let recorder = Recorder { store, id: record.id.clone(), initiation_data, user_id, saver };
        recorder
            .store
            .start_conversation(record, &recorder.progress(state, "in-progress", None))
            .await?;
        Ok(recorder)
    }

    /// Saves the conversation after a turn.
    pub(crate) async fn turn(&self, state: &State) -> Result<(), StoreError> {
        let progress = self.progress(state, "in-progress", None);
        match &self.saver {
            Some(saver) => {
                saver.save(&state.agent.workspace_id, &self.id, progress);
                Ok(())
            }
            None => {
                self.store.update_conversation(&state.agent.workspace_id, &self.id, &progress).await
            }
        }
    }

    /// Records the end: waits for the background saver, then writes the outcome.
    pub(crate) async fn end(&mut self, state: &State, ending: &Ending) -> Result<(), StoreError> {
        if let Some(saver) = self.saver.take() {
            saver.flush(&self.id).await;
        }
        let status = match ending {
            Ending::Normal(_) => "done",
            Ending::Error(_) => "failed",
        };
        let progress = self.progress(state, status, Some(ending));
        self.store.update_conversation(&state.agent.workspace_id, &self.id, &progress).await?;
        // Searchable once finished: indexing every turn would cost each turn a write.
        let messages: Vec<(i64, String, String)> = state
            .transcript
            .entries()
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let text = e["message"].as_str().filter(|t| !t.trim().is_empty())?;
                let role = e["role"].as_str().unwrap_or("agent");
                Some((i64::try_from(i).unwrap_or(i64::MAX), role.to_owned(), text.to_owned()))
            })
            .collect();
        self.store.index_messages(&state.agent.workspace_id, &self.id, &messages).await
    }

    fn progress(
        &self, state: &State, status: &str, ended: Option<&Ending>,
    ) -> ConversationProgress {
        let call_successful = match ended {
            Some(Ending::Normal(_)) if state.error.is_none() => "success",
            Some(Ending::Error(_)) => "failure",
            _ if state.error.is_some() => "failure",
            _ => "unknown",
        };
        let termination_reason = match ended {
            Some(Ending::Normal(r) | Ending::Error(r)) => r.clone(),
            None => String::new(),
        };
        // Serialized straight from the conversation's fields: this runs after every turn, and
        // building a `json!` document first deep-copied the whole transcript each time.
        let document = StoredDocument {
            transcript: state.transcript.json(),
            metadata: StoredMetadata {
                text_only: !state.spoken,
                error: &state.error,
                main_language: &state.language,
                termination_reason: &termination_reason,
            },
            conversation_initiation_client_data: &self.initiation_data,
            user_id: &self.user_id,
            environment: &state.agent.environment,
            visited_agents: &state.visited_agents,
            timing: Timing {
                started_at_unix_ms: state.started_at_ms,
                entries_ms: state.transcript.at_ms(),
            },
        };
        let document = serde_json::to_string(&document).unwrap_or_else(|_| "{}".into());
        ConversationProgress {
            status: status.into(),
            agent_name: Some(state.agent.name.clone()),
            user_id: self.user_id.clone(),
            ended_at: ended.map(|_| time::now_secs()),
            call_successful: call_successful.into(),
            message_count: state.transcript.entries().len() as i64,
            duration_secs: state.secs(),
            termination_reason,
            document,
        }
    }
}
