//! At most so many calls in flight to one host, so a host that hangs holds only its own share
//! of connections and sockets: calls to every other host go on as if it were not there. A call
//! beyond the limit waits for a slot within its own timeout, then fails as a timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots per host (scheme, host and port).
pub struct HostLimits {
    per_host: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Hosts remembered before idle ones are forgotten.
const REMEMBERED: usize = 4096;

impl HostLimits {
    /// `per_host` calls at once to each host (at least one).
    pub fn new(per_host: usize) -> HostLimits {
        HostLimits { per_host: per_host.max(1), hosts: Mutex::default() }
    }

    /// A slot for a call to `url`'s host, once one is free; held until dropped.
    pub async fn slot(&self, url: &reqwest::Url) -> OwnedSemaphorePermit {
        let host = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let semaphore = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            if hosts.len() >= REMEMBERED {
                // Forget hosts with no call in flight; they start afresh when called again.
                let per_host = self.per_host;
                hosts.retain(|_, s| s.available_permits() < per_host);
            }
            hosts.entry(host).or_insert_with(|| Arc::new(Semaphore::new(self.per_host))).clone()
        };
        // The semaphore is never closed, so acquiring cannot fail.
        semaphore.acquire_owned().await.unwrap_or_else(|_| unreachable!("semaphores stay open"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_host_full_leaves_the_others_free() {
        let limits = HostLimits::new(2);
        let slow: reqwest::Url = "http://slow.example/a".parse().unwrap();
        let fast: reqwest::Url = "http://fast.example/b".parse().unwrap();
        let held = [limits.slot(&slow).await, limits.slot(&slow).await];
        let third = tokio::time::timeout(Duration::from_millis(50), limits.slot(&slow)).await;
        assert!(third.is_err(), "a third call to the full host waits");
        let other = tokio::time::timeout(Duration::from_millis(50), limits.slot(&fast)).await;
        assert!(other.is_ok(), "another host is not held up");
        drop(held);
        assert!(tokio::time::timeout(Duration::from_millis(50), limits.slot(&slow)).await.is_ok());
    }
}
