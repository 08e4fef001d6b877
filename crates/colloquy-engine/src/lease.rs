//! The heartbeat that keeps a job's lease short while its holder works it: the lease is
//! renewed every second (or every third of the lease, if shorter), so a job of any length keeps
//! its lease while its node lives, and a node that dies loses every lease it held within
//! `job_lease_secs`, when any node may take the job over.

use std::time::Duration;

use colloquy_core::time;
use colloquy_store::{DynStore, Lease};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Renews one lease until dropped.
pub struct Heartbeat {
    task: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl Heartbeat {
    /// Starts renewing `lease` for `lease_secs` at a time.
    pub fn start(store: DynStore, lease: Lease, lease_secs: i64) -> Heartbeat {
        let (tx, lost) = watch::channel(false);
        let every = Duration::from_millis(
            u64::try_from(lease_secs.saturating_mul(1000) / 3).unwrap_or(1).clamp(1, 1000),
        );
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.renew_lease(&lease, time::now_secs() + lease_secs).await {
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = tx.send(true);
                        return;
                    }
                    // The database is unreachable: keep trying; if it stays so past the lease,
                    // another node takes the job and this holder's result is dropped.
                    Err(e) => {
                        tracing::warn!(error = %e, job = %lease.id, "could not renew a lease")
                    }
                }
            }
        });
        Heartbeat { task, lost }
    }

    /// Becomes `true` once the lease is lost: the job was cancelled, ended elsewhere or taken
    /// over.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
