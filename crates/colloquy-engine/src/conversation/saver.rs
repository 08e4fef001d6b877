//! Saves live conversations' state after each turn without holding up the next message. A
//! turn hands its state to the node's one writer and goes on. The writer takes what every
//! conversation has handed over since its last write and writes each one's newest state, all in
//! one transaction, so under load one commit covers many conversations' turns. A state
//! overtaken before it was written is skipped, since each holds the whole transcript so far. A
//! conversation's end waits until its last state is written before recording the final one, so
//! the stored record never goes backwards.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_store::{ConversationProgress, DynStore};
use tokio::sync::{Notify, watch};

/// How long the writer waits, once a state is handed over, for other conversations' turns to
/// join the same transaction: a commit costs the node far more than its statements, and a
/// live conversation's stored state may trail its turns by this much.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// The node's writer of live conversations' progress; clones share it.
#[derive(Clone)]
pub struct ProgressWriter {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Woken when a state is handed over.
    handed_over: Notify,
    /// Woken when a conversation's end waits for its state to be written.
    awaited: Notify,
    /// Counts the writes done, so a conversation's end can wait for the one carrying it.
    written: watch::Sender<u64>,
}

#[derive(Default)]
struct Queue {
    /// The newest state of each conversation not yet taken by a write.
    pending: HashMap<ConversationId, (WorkspaceId, ConversationProgress)>,
    /// The conversations whose states the write under way carries.
    writing: HashSet<ConversationId>,
}

impl ProgressWriter {
    /// Starts the writer on `store`. Its task lives as long as the runtime.
    pub fn spawn(store: DynStore) -> ProgressWriter {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            handed_over: Notify::new(),
            awaited: Notify::new(),
            written: watch::Sender::new(0),
        });
        let writer = shared.clone();
        tokio::spawn(async move {
            loop {
                writer.handed_over.notified().await;
                // Let more turns join this write, unless a conversation's end waits for it.
                tokio::select! {
                    () = tokio::time::sleep(GATHER) => {}
                    () = writer.awaited.notified() => {}
                }
                let batch: Vec<_> = {
                    let mut queue = writer.queue();
                    let pending = std::mem::take(&mut queue.pending);
                    queue.writing = pending.keys().cloned().collect();
                    pending
                        .into_iter()
                        .map(|(id, (workspace_id, state))| (workspace_id, id, state))
                        .collect()
                };
                if batch.is_empty() {
                    continue;
                }
                if let Err(e) = store.update_conversations(&batch).await {
                    // Each conversation's next turn (or its end) carries everything this had.
                    tracing::warn!(error = %e, conversations = batch.len(), "could not save turns");
                }
                writer.queue().writing.clear();
                writer.written.send_modify(|n| *n += 1);
            }
        });
        ProgressWriter { shared }
    }

    /// Hands over conversation `id`'s state after a turn.
    pub fn save(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, state: ConversationProgress,
    ) {
        self.shared.queue().pending.insert(id.clone(), (workspace_id.clone(), state));
        self.shared.handed_over.notify_one();
    }

    /// Waits until every state of conversation `id` handed over so far is written (or its
    /// write has failed).
    pub async fn flush(&self, id: &ConversationId) {
        let mut written = self.shared.written.subscribe();
        loop {
            {
                let queue = self.shared.queue();
                if !queue.pending.contains_key(id) && !queue.writing.contains(id) {
                    return;
                }
            }
            self.shared.awaited.notify_one();
            if written.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The lock is never held across a panic-prone call: a poisoned one still holds a
        // consistent queue.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
