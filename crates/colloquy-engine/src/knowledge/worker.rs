//! The knowledge-base worker: every node runs one. It leases embedding indexes and crawls
//! that are queued, or whose holder died (their lease ran out), and works them one at a time.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::time;
use tokio::sync::watch;

use super::{crawler, indexer};
use crate::EngineDeps;

/// How long the worker waits before looking again when nothing was queued (jobs queued on
/// this node wake it at once).
const POLL: Duration = Duration::from_millis(500);

/// Leases and works indexes and crawls until `stop` fires.
pub async fn worker(deps: Arc<EngineDeps>, worker_id: String, mut stop: watch::Receiver<bool>) {
    let lease_secs = deps.limits.index_lease_secs;
    loop {
        if *stop.borrow() {
            return;
        }
        match deps.store.lease_rag_index(&worker_id, time::now_secs(), lease_secs).await {
            Ok(Some(index)) => {
                indexer::build(&deps, &index).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not lease an embedding index"),
        }
        match deps.store.lease_crawl_job(&worker_id, time::now_secs(), lease_secs).await {
            Ok(Some(job)) => {
                crawler::crawl(&deps, &job).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not lease a crawl"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = deps.knowledge_queued.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}
