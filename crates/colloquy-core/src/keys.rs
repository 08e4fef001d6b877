//! API key tokens. A token is 256 random bits shown once at creation; only its SHA-256 is
//! stored. Tokens are random, not passwords, so a fast hash is enough: nobody can brute-force
//! 2^256 candidates, and the lookup by hash stays a single indexed query per request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;

/// Prefix of every token, so leaked keys are easy to recognise in logs and scanners.
pub const TOKEN_PREFIX: &str = "sk_";

/// A new random token: `sk_` + 43 base64url characters (32 bytes).
pub fn generate_token() -> String {
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(crate::random::bytes::<32>()))
}

/// The stored form of a token: lowercase hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// Bytes as lowercase hex, the way digests, keys and webhook secrets are written.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// The part of a token safe to show in listings: its first 7 characters.
pub fn token_hint(token: &str) -> String {
    token.chars().take(7).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate_token();
        assert!(a.starts_with("sk_"));
        assert_eq!(a.len(), 3 + 43);
        assert_ne!(a, generate_token());
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
        // Stored hashes must not change: SHA-256 of "abc" in lower-case hex.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_hint(&a).len(), 7);
    }
}
