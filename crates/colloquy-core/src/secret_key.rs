//! The server's secret key, which seals workspace secrets at rest.
//!
//! Sealing is ChaCha20-Poly1305 (through `ring`, already linked for TLS). A sealed value is the
//! text `v1.<key id>.<base64url(nonce | ciphertext | tag)>`: the key id says which key sealed it,
//! so values sealed before a rotation (`COLLOQUY_SECRET_KEY_PREVIOUS`) stay readable until they
//! are re-sealed. Callers pass an associated context (workspace and secret id) that is
//! authenticated but not stored, so a sealed value copied to another row does not open.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::digest;

use crate::ids::WorkspaceId;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const FORMAT: &str = "v1";

/// Why a key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretKeyError {
    /// The key text is neither 64 hex characters nor base64 of 32 bytes.
    #[error("a secret key must be 32 bytes written as 64 hex characters or as base64")]
    BadKey,
    /// The sealed value is not in the `v1.<kid>.<data>` format.
    #[error("the sealed value is malformed")]
    Malformed,
    /// No configured key has the id the value was sealed with.
    #[error("the value was sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    /// The value or its context was altered, or the key is wrong.
    #[error("the sealed value does not open with its key")]
    Tampered,
}

/// One 256-bit key.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; KEY_LEN],
    id: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> SecretKey {
        SecretKey::from_bytes(crate::random::bytes::<KEY_LEN>())
    }

    /// Parses a key written as 64 hex characters or as base64 (standard or url-safe).
    pub fn parse(text: &str) -> Result<SecretKey, SecretKeyError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..KEY_LEN)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SecretKeyError::BadKey)?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| SecretKeyError::BadKey)?
        };
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| SecretKeyError::BadKey)?;
        Ok(SecretKey::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; KEY_LEN]) -> SecretKey {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"colloquy secret key id\0");
        ctx.update(&bytes);
        let id = ctx.finish().as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        SecretKey { bytes, id }
    }

    /// The key written as 64 hex characters (how a generated key file stores it).
    pub fn to_hex(&self) -> String {
        crate::keys::hex(&self.bytes)
    }

    /// A short public identifier of the key, derived from it; safe to log.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead_key(&self) -> LessSafeKey {
        // Only fails for a wrong key length, which the type rules out.
        LessSafeKey::new(
            UnboundKey::new(&aead::CHACHA20_POLY1305, &self.bytes).expect("32-byte key"),
        )
    }
}

/// The current key, plus the previous one during a rotation.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: SecretKey,
    previous: Option<SecretKey>,
}

impl Keyring {
    /// A keyring that seals with `current` and also opens values sealed with `previous`.
    pub fn new(current: SecretKey, previous: Option<SecretKey>) -> Keyring {
        Keyring { current, previous }
    }

    /// The key new values are sealed with.
    pub fn current(&self) -> &SecretKey {
        &self.current
    }

    /// Seals `plaintext`, binding it to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> String {
        let nonce_bytes = crate::random::bytes::<NONCE_LEN>();
        let mut buf = plaintext.to_vec();
        // Sealing only fails for inputs larger than the AEAD's ~256 GiB limit.
        self.current
            .aead_key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut buf,
            )
            .expect("value within AEAD limits");
        let mut data = nonce_bytes.to_vec();
        data.extend_from_slice(&buf);
        format!("{FORMAT}.{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(data))
    }

    /// Opens a value made by [`Keyring::seal`] with the same `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, SecretKeyError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(FORMAT), Some(kid), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretKeyError::Malformed);
        };
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == kid)
            .ok_or_else(|| SecretKeyError::UnknownKey(kid.to_owned()))?;
        let data = URL_SAFE_NO_PAD.decode(data).map_err(|_| SecretKeyError::Malformed)?;
        if data.len() < NONCE_LEN {
            return Err(SecretKeyError::Malformed);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretKeyError::Malformed)?;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .aead_key()
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| SecretKeyError::Tampered)?;
        Ok(plain.to_vec())
    }

    /// Whether `sealed` was sealed with the current key (so a rekey can skip it).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) == Some(self.current.id.as_str())
    }
}

/// The associated data a workspace secret's value is sealed with: it binds the value to its
/// row, so a sealed value copied to another workspace or secret does not open.
pub fn secret_context(workspace_id: &WorkspaceId, secret_id: &str) -> Vec<u8> {
    format!("secret:{workspace_id}/{secret_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_context() {
        let ring = Keyring::new(SecretKey::generate(), None);
        let sealed = ring.seal(b"hunter2", b"ws_1/secret_1");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(ring.open(&sealed, b"ws_1/secret_1").unwrap(), b"hunter2");
        assert_eq!(ring.open(&sealed, b"ws_2/secret_1"), Err(SecretKeyError::Tampered));
        assert_ne!(sealed, ring.seal(b"hunter2", b"ws_1/secret_1"), "nonces differ");
    }

    #[test]
    fn rotation_opens_old_values() {
        let old = SecretKey::generate();
        let sealed = Keyring::new(old.clone(), None).seal(b"v", b"c");
        let new = SecretKey::generate();
        assert!(matches!(
            Keyring::new(new.clone(), None).open(&sealed, b"c"),
            Err(SecretKeyError::UnknownKey(_))
        ));
        let rotated = Keyring::new(new, Some(old));
        assert_eq!(rotated.open(&sealed, b"c").unwrap(), b"v");
        assert!(!rotated.is_current(&sealed));
    }

    #[test]
    fn parses_hex_and_base64() {
        let k = SecretKey::generate();
        assert_eq!(SecretKey::parse(&k.to_hex()).unwrap().id(), k.id());
        let b64 = STANDARD.encode(k.bytes);
        assert_eq!(SecretKey::parse(&b64).unwrap().id(), k.id());
        assert_eq!(SecretKey::parse("short").unwrap_err(), SecretKeyError::BadKey);
        assert!(!format!("{k:?}").contains(&k.to_hex()));
    }

    #[test]
    fn malformed_values_fail_cleanly() {
        let ring = Keyring::new(SecretKey::generate(), None);
        for bad in ["", "v1", "v1.x", "v2.a.b", "v1.zz.!!"] {
            assert!(ring.open(bad, b"").is_err());
        }
    }
}
