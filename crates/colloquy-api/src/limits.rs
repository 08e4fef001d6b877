//! Limits on what one client may take: requests per minute per API key, and live
//! conversations per workspace. Both are counted per node (DESIGN.md §3.5: nodes keep no shared
//! state in memory), so with N nodes behind a balancer a key gets up to N times the rate.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use colloquy_core::ids::WorkspaceId;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

type KeyedLimiter =
    RateLimiter<String, governor::state::keyed::DefaultKeyedStateStore<String>, DefaultClock>;

/// Requests per minute per key.
pub struct RequestRate {
    limiter: Option<KeyedLimiter>,
}

impl RequestRate {
    /// `per_minute` requests a minute for each key (bursts up to that many); 0 for none.
    pub fn new(per_minute: u32) -> RequestRate {
        RequestRate {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// Counts one request of `key_id`; when over the limit, how long until the next is allowed.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&key_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Live conversations per workspace.
#[derive(Clone)]
pub struct ConversationSlots {
    max: usize,
    open: Arc<Mutex<HashMap<WorkspaceId, usize>>>,
}

/// One open conversation; its slot frees when dropped.
pub struct Slot {
    workspace_id: WorkspaceId,
    open: Arc<Mutex<HashMap<WorkspaceId, usize>>>,
}

impl ConversationSlots {
    /// At most `max` at once per workspace.
    pub fn new(max: usize) -> ConversationSlots {
        ConversationSlots { max, open: Arc::default() }
    }

    /// A slot for one more conversation of the workspace, if it has one left.
    pub fn take(&self, workspace_id: &WorkspaceId) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(workspace_id.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { workspace_id: workspace_id.clone(), open: self.open.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.workspace_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.workspace_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_limited_apart() {
        let rate = RequestRate::new(2);
        assert!(rate.check("a").is_ok() && rate.check("a").is_ok());
        let wait = rate.check("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(rate.check("b").is_ok());
        assert!(RequestRate::new(0).check("a").is_ok());
    }

    #[test]
    fn slots_free_when_dropped() {
        let slots = ConversationSlots::new(2);
        let (w, other) = (WorkspaceId::from("w"), WorkspaceId::from("other"));
        let one = slots.take(&w).unwrap();
        let _two = slots.take(&w).unwrap();
        assert!(slots.take(&w).is_none());
        assert!(slots.take(&other).is_some());
        drop(one);
        assert!(slots.take(&w).is_some());
    }
}
