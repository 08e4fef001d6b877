//! API keys recently found valid, so a busy key is not read from the database (and its scopes
//! parsed) on every request: that read was a tenth of a GET's cost (see `FINDINGS.md`, [G2]).
//!
//! Keys are revoked by another process (`colloquy keys revoke`), possibly against another node,
//! so no message tells this one. An entry is therefore trusted for [`TTL`] only and then read
//! again: a revoked key stops working on every node within that time. Only valid keys are kept;
//! an unknown or revoked token is read from the database each time, as before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use colloquy_core::ids::WorkspaceId;
use colloquy_core::scope::Scopes;

/// How long a key found valid is trusted without reading it again.
pub const TTL: Duration = Duration::from_millis(500);

/// Most keys held; past it, stale entries are dropped, and if none are stale, all of them.
const CAPACITY: usize = 4096;

/// A valid key, as the request path needs it: who calls, for [`crate::auth::Caller`].
#[derive(Debug)]
pub struct ValidKey {
    /// The key's id.
    pub key_id: String,
    /// The caller's workspace; every query is scoped to it.
    pub workspace_id: WorkspaceId,
    /// The caller's user (`created_by_user_id` of what they create).
    pub user_id: String,
    /// What the key may do, parsed.
    pub scopes: Scopes,
}

/// Valid keys by token hash, each with the time it was read.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: RwLock<HashMap<String, (Arc<ValidKey>, Instant)>>,
}

impl KeyCache {
    /// The key with this token hash, if it was read less than [`TTL`] ago.
    pub fn get(&self, token_hash: &str) -> Option<Arc<ValidKey>> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (key, read_at) = entries.get(token_hash)?;
        (read_at.elapsed() < TTL).then(|| Arc::clone(key))
    }

    /// Remembers a key just read from the database and found valid.
    pub fn put(&self, token_hash: String, key: Arc<ValidKey>) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(&token_hash) {
            entries.retain(|_, (_, read_at)| read_at.elapsed() < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token_hash, (key, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Arc<ValidKey> {
        Arc::new(ValidKey {
            key_id: id.to_owned(),
            workspace_id: WorkspaceId::generate(),
            user_id: "u".to_owned(),
            scopes: Scopes::default(),
        })
    }

    #[test]
    fn an_entry_is_trusted_for_the_ttl_only() {
        let cache = KeyCache::default();
        assert!(cache.get("h").is_none());
        cache.put("h".to_owned(), key("k1"));
        assert_eq!(cache.get("h").unwrap().key_id, "k1");
        std::thread::sleep(TTL + Duration::from_millis(20));
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn a_full_cache_drops_stale_entries_before_fresh_ones() {
        let cache = KeyCache::default();
        for i in 0..CAPACITY {
            cache.put(format!("h{i}"), key("k"));
        }
        cache.put("new".to_owned(), key("n"));
        assert!(cache.get("new").is_some());
        assert!(cache.entries.read().unwrap().len() <= CAPACITY);
    }
}
