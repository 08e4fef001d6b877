//! Cryptographically secure randomness from the operating system, through `ring` (already in
//! the tree for rustls), so ids, API keys and nonces share one audited source.

use ring::rand::{SecureRandom, SystemRandom};

/// Fills `buf` with random bytes.
///
/// The OS generator failing is not something a server can recover from, so it panics rather
/// than hand back predictable bytes.
pub fn fill(buf: &mut [u8]) {
    SystemRandom::new().fill(buf).expect("the operating system's random generator failed");
}

/// `N` fresh random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    fill(&mut buf);
    buf
}
