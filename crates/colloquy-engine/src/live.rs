//! The conversations live on this node, as every node sees them: a row per live conversation
//! (written by the WebSocket session at its start, removed at its end), which this node marks
//! seen every few seconds. A killed node's rows stop being seen, so the live count drops them
//! within a minute, and they are removed after ten.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::time;
use tokio::sync::watch;

use crate::EngineDeps;

/// How often this node marks its live conversations seen.
const SEEN_EVERY: Duration = Duration::from_secs(15);
/// Rows nobody has seen for this long (a dead node's) are removed.
const FORGET_AFTER_SECS: i64 = 600;

/// Marks this node's live conversations seen until `stop` says so.
pub async fn heartbeat(deps: Arc<EngineDeps>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SEEN_EVERY) => {}
            _ = stop.changed() => return,
        }
        let now = time::now_secs();
        if let Err(e) = deps.store.live_seen(&deps.node_id, now, now - FORGET_AFTER_SECS).await {
            tracing::warn!(error = %e, "could not mark this node's live conversations seen");
        }
    }
}
