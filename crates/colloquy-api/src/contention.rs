//! Read-modify-write loops that lose a race to another writer (an agent PATCH, a branch merge
//! or rebase, a settings document, an MCP server) read again and retry, after a pause.
//!
//! Retrying at once lets writers that collided read the new head together and collide again:
//! eight PATCHes on two nodes did so in lockstep until three attempts were spent, and five
//! answered 409. A random pause doubled at each attempt spreads them out, and since a writer
//! loses only to another writer's commit, ten attempts see a burst of writers through.

/// Attempts at a write before the caller answers 409.
pub(crate) const ATTEMPTS: u32 = 10;

/// Waits before attempt `attempt` (counted from 0; the first does not wait): a random time up
/// to a millisecond doubled each attempt (at most 64 ms).
pub(crate) async fn pause(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let ceiling_us = 1_000u64 << attempt.min(6);
    let r = u64::from(u32::from_le_bytes(colloquy_core::random::bytes::<4>()));
    tokio::time::sleep(std::time::Duration::from_micros(r % ceiling_us)).await;
}
