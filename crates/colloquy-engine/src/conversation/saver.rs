//! Saves a live conversation's state after each turn without holding up the next message:
//! the turn hands its state over and goes on, and a task per conversation writes the newest
//! state it has (states that were overtaken before being written are skipped — each holds the
//! whole transcript so far). The conversation's end waits for the last write before recording
//! the final state, so the stored record never goes backwards.

use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_store::{ConversationProgress, DynStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The background writer of one conversation.
pub struct Saver {
    latest: watch::Sender<Option<ConversationProgress>>,
    task: JoinHandle<()>,
}

impl Saver {
    /// Starts the writer of conversation `id`.
    pub fn spawn(store: DynStore, workspace_id: WorkspaceId, id: ConversationId) -> Saver {
        let (latest, mut pending) = watch::channel(None::<ConversationProgress>);
        let task = tokio::spawn(async move {
            while pending.changed().await.is_ok() {
                let state = pending.borrow_and_update().clone();
                if let Some(state) = state
                    && let Err(e) = store.update_conversation(&workspace_id, &id, &state).await
                {
                    // The next turn's state (or the end's) carries everything this one had.
                    tracing::warn!(error = %e, conversation = %id, "could not save a turn");
                }
            }
        });
        Saver { latest, task }
    }

    /// Hands over the state after a turn.
    pub fn save(&self, state: ConversationProgress) {
        self.latest.send_replace(Some(state));
    }

    /// Writes what is still pending and stops.
    pub async fn finish(self) {
        drop(self.latest);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "a conversation's saver failed");
        }
    }
}
