//! The test-run worker (DESIGN.md §3.4): every node runs one. It leases runs from the store's
//! queue and runs them with bounded concurrency, renewing each run's lease while it runs; a
//! run whose worker dies is leased again once its lease expires, and only the lease holder's
//! result counts.

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::test_runs::RunStatus;
use colloquy_store::{JobKind, Lease, RunRow};
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};

use super::{Verdict, run_test};
use crate::lease::Heartbeat;
use crate::{AgentSnapshot, EngineDeps, Pick};

/// How long the worker waits before looking for runs again when none were queued (runs
/// queued on this node wake it at once).
const POLL: Duration = Duration::from_millis(250);

/// Leases and runs test runs until `stop` fires, at most `concurrency` at a time.
pub async fn worker(
    deps: Arc<EngineDeps>, worker_id: String, concurrency: usize, mut stop: watch::Receiver<bool>,
) {
    let lease_secs = deps.limits.job_lease_secs;
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    loop {
        if *stop.borrow() {
            return;
        }
        // Wait for a free slot, not for the next poll: a wave of runs that finishes together
        // used to wait up to a poll interval before the next wave was leased. Only this task
        // takes slots, so the ones free now stay free while it leases.
        let free = tokio::select! {
            permit = slots.acquire() => match permit {
                Ok(permit) => {
                    drop(permit);
                    slots.available_permits()
                }
                Err(_) => return,
            },
            // A dropped sender means no one can stop this worker any more: stop now.
            changed = stop.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        let leased = deps
            .store
            .lease_runs(
                &worker_id,
                colloquy_core::time::now_secs(),
                lease_secs,
                u32::try_from(free).unwrap_or(1),
            )
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not lease test runs");
                Vec::new()
            });
        if leased.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = deps.runs_queued.notified() => {}
                changed = stop.changed() => if changed.is_err() {
                    return;
                },
            }
            continue;
        }
        for run in leased {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let deps = deps.clone();
            let worker_id = worker_id.clone();
            tokio::spawn(async move {
                complete(&deps, &run, &worker_id).await;
                drop(permit);
            });
        }
    }
}

/// Runs a leased run and stores its result, if this worker still holds it.
#[tracing::instrument(name = "test_run", skip_all, fields(run = %run.id, test = %run.test_id, invocation = %run.invocation_id, attempt = run.attempt))]
async fn complete(deps: &Arc<EngineDeps>, run: &RunRow, worker_id: &str) {
    // A run that is cancelled or taken over stops instead of finishing for nothing.
    let heartbeat = Heartbeat::start(
        deps.store.clone(),
        Lease {
            kind: JobKind::TestRun,
            id: run.id.clone(),
            worker: worker_id.to_owned(),
            attempt: run.attempt,
        },
        deps.limits.job_lease_secs,
    );
    let verdict = execute(deps, run, heartbeat.lost()).await;
    drop(heartbeat);
    let status = if verdict.passed { RunStatus::Passed } else { RunStatus::Failed };
    let now = colloquy_core::time::now_secs();
    match deps
        .store
        .complete_run(&run.id, worker_id, run.attempt, status, &verdict.to_json().to_string(), now)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("run finished after its lease was taken over; result dropped")
        }
        Err(e) => tracing::error!(error = %e, "could not store a test run's result"),
    }
}

/// The run's test against its invocation's agent (with the invocation's override).
async fn execute(
    deps: &Arc<EngineDeps>, run: &RunRow, cancelled: watch::Receiver<bool>,
) -> Verdict {
    let invocation = match deps.store.get_invocation(&run.workspace_id, &run.invocation_id).await {
        Ok(i) => i,
        Err(e) => return Verdict::failed(format!("The invocation could not be read: {e}")),
    };
    let Ok(test) = deps.store.get_test_entity(&run.workspace_id, &run.test_id).await else {
        return Verdict::failed("The test no longer exists");
    };
    let pick = Pick::of(invocation.branch_id.as_deref(), invocation.version_id.as_deref());
    let Ok(mut agent) =
        AgentSnapshot::load(deps, &run.workspace_id, &invocation.agent_id, pick).await
    else {
        return Verdict::failed("The agent no longer exists");
    };
    let request: Value = serde_json::from_str(&invocation.document).unwrap_or_default();
    if let Some(config) =
        request.pointer("/agent_config_override/conversation_config").filter(|c| c.is_object())
    {
        agent.apply_override(config.clone());
    }
    let mut document: Map<String, Value> = serde_json::from_str(&test.document).unwrap_or_default();
    document.insert("type".into(), json!(test.test_type));
    // A simulation runs in its `simulation_environment`; every test resolves its tools'
    // environment variables in its `environment`.
    let environment = ["simulation_environment", "environment"]
        .iter()
        .find_map(|k| document.get(*k).and_then(Value::as_str).filter(|e| !e.is_empty()));
    if let Some(environment) = environment
        && let Err(e) = agent.set_environment(deps, environment).await
    {
        return Verdict::failed(format!("The test cannot run: {e}"));
    }
    run_test(deps, agent, &Value::Object(document), cancelled).await
}
