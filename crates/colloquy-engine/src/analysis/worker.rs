//! A node's analyser: takes the oldest queued analyses (or ones whose holder died), a few at
//! once (`COLLOQUY_ANALYSIS_CONCURRENCY`), keeps each one's lease while the LLM answers, and writes the result with the job's end. An LLM or database
//! failure is tried again after a backoff (10 s, doubling) until [`TRIES`] takes have failed;
//! an answer that breaks the contract, or a conversation or agent that is gone, fails at once.
//! A conversation whose post-call webhook waits for the analysis has it queued when the
//! analysis ends, successfully or for good.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ids::{ConversationId, WorkspaceId};
use colloquy_core::time;
use colloquy_store::{AnalysisJob, AnalysisOutcome};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::EngineDeps;
use crate::lease::Heartbeat;

/// How long the analyser waits between looks at the queue when nothing woke it.
const POLL: Duration = Duration::from_millis(500);
/// Takes of one analysis before it fails for good.
const TRIES: i64 = 4;
/// The wait before the second take; doubled before each one after.
const FIRST_RETRY_SECS: i64 = 10;

/// Works queued analyses, `concurrency` at once, until `stop` turns true (those under way
/// are left to finish, or to be taken over once their lease runs out).
pub async fn worker(
    deps: Arc<EngineDeps>, worker_id: String, concurrency: usize, mut stop: watch::Receiver<bool>,
) {
    let lease_secs = deps.limits.job_lease_secs;
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        if *stop.borrow() {
            return;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        match deps.store.take_analysis(&worker_id, time::now_secs(), lease_secs).await {
            Ok(Some(job)) => {
                let deps = deps.clone();
                tokio::spawn(async move {
                    let _held = Heartbeat::start(deps.store.clone(), job.lease(), lease_secs);
                    work(&deps, &job).await;
                    drop(slot);
                });
                continue;
            }
            Ok(None) => drop(slot),
            Err(e) => {
                drop(slot);
                tracing::warn!(error = %e, "could not take a conversation to analyse");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = deps.analyses_queued.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// Works one analysis, in its conversation's trace.
async fn work(deps: &EngineDeps, job: &AnalysisJob) {
    let span = tracing::info_span!("job.analysis", job.kind = "analysis", conversation = %job.id, job.attempt = job.attempt);
    crate::telemetry::join_conversation(&span, &ConversationId::from(job.id.as_str()));
    analyse_and_finish(deps, job).instrument(span).await;
}

async fn analyse_and_finish(deps: &EngineDeps, job: &AnalysisJob) {
    let workspace_id = WorkspaceId::from(job.workspace_id.as_str());
    let id = ConversationId::from(job.id.as_str());
    let outcome = match super::analyse(deps, &workspace_id, &id, None).await {
        Ok(done) => AnalysisOutcome::Succeeded {
            analysis: done.wire.to_string(),
            call_successful: done.call_successful,
        },
        Err(e) => {
            let retry = e.is_transient() && job.attempt < TRIES;
            if !retry {
                tracing::warn!(error = %e, conversation = %id, "a conversation's analysis failed");
            }
            let delay = FIRST_RETRY_SECS << (job.attempt - 1).clamp(0, 20);
            AnalysisOutcome::Failed {
                error: e.to_string(),
                retry_at: retry.then(|| time::now_secs() + delay),
            }
        }
    };
    match deps.store.finish_analysis(job, &outcome, time::now_secs()).await {
        Ok(true) => {
            if let AnalysisOutcome::Succeeded { analysis, .. } = &outcome {
                raise_ticket(deps, &workspace_id, &id, analysis).await;
            }
            let ended = !matches!(outcome, AnalysisOutcome::Failed { retry_at: Some(_), .. });
            if ended && job.deliver {
                crate::webhooks::post_call(deps, &workspace_id, &id).await;
            }
        }
        Ok(false) => {
            tracing::warn!(conversation = %id, "an analysis was taken over while it ran");
        }
        Err(e) => tracing::error!(error = %e, conversation = %id, "could not record an analysis"),
    }
}

/// A ticket for a failed evaluation, when the workspace asks for one; a failure to raise it is
/// logged and does not undo the analysis.
async fn raise_ticket(
    deps: &EngineDeps, workspace_id: &WorkspaceId, id: &ConversationId, analysis: &str,
) {
    let raised = async {
        let conversation = deps.store.get_conversation(workspace_id, id).await?;
        let analysis: serde_json::Value = serde_json::from_str(analysis).unwrap_or_default();
        crate::tickets::after_analysis(deps.store.as_ref(), workspace_id, &conversation, &analysis)
            .await
    };
    if let Err(e) = raised.await {
        tracing::error!(error = %e, conversation = %id, "could not raise a triage ticket");
    }
}
