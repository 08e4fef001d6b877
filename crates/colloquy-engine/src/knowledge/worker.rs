//! The knowledge-base worker: every node runs one. It leases embedding indexes and crawls
//! that are queued, or whose holder died (their lease ran out), and works them one at a time,
//! renewing the lease of the one it works; then URL documents due for auto-sync, then finished
//! conversations whose messages wait for their vectors.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::time;
use colloquy_store::{JobKind, Lease};
use tokio::sync::watch;

use super::{crawler, indexer, messages, sync};
use crate::EngineDeps;
use crate::lease::Heartbeat;

/// How long the worker waits before looking again when nothing was queued (jobs queued on
/// this node wake it at once).
const POLL: Duration = Duration::from_millis(500);

/// Leases and works indexes and crawls until `stop` fires.
pub async fn worker(deps: Arc<EngineDeps>, worker_id: String, mut stop: watch::Receiver<bool>) {
    let lease_secs = deps.limits.job_lease_secs;
    loop {
        if *stop.borrow() {
            return;
        }
        match deps.store.lease_rag_index(&worker_id, time::now_secs(), lease_secs).await {
            Ok(Some(index)) => {
                let _held =
                    heartbeat(&deps, JobKind::RagIndex, &index.id, &worker_id, index.attempt);
                indexer::build(&deps, &index).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not lease an embedding index"),
        }
        match deps.store.lease_crawl_job(&worker_id, time::now_secs(), lease_secs).await {
            Ok(Some(job)) => {
                let _held = heartbeat(&deps, JobKind::Crawl, &job.id, &worker_id, job.attempt);
                crawler::crawl(&deps, &job).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not lease a crawl"),
        }
        match deps.store.take_due_sync(time::now_secs(), lease_secs.max(60)).await {
            Ok(Some(due)) => {
                sync::sync(&deps, &due).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not take a document due for auto-sync"),
        }
        if messages::embed_waiting(&deps).await {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = deps.knowledge_queued.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// Keeps the lease of the job being worked until dropped; the job's own saves notice a lost
/// lease.
fn heartbeat(deps: &EngineDeps, kind: JobKind, id: &str, worker: &str, attempt: i64) -> Heartbeat {
    let lease = Lease { kind, id: id.to_owned(), worker: worker.to_owned(), attempt };
    Heartbeat::start(deps.store.clone(), lease, deps.limits.job_lease_secs)
}
