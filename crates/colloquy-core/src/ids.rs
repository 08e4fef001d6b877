//! Server-generated identifiers.
//!
//! Resource ids follow the reference's look (`agent_3701k3ttaq12ewp8b7qv5rfyszkz`): a prefix and
//! 28 lowercase base32 characters. The first 8 characters encode the creation time so ids sort
//! roughly by age (kind to B-tree indexes); the other 20 carry 100 random bits, so ids cannot
//! be guessed or enumerated.

use crate::{random, time};

/// Crockford's base32 alphabet in lower case: no `i`, `l`, `o`, `u`, so ids read unambiguously.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Number of characters after the prefix.
pub const ID_BODY_LEN: usize = 28;

/// Id prefixes of the resources Colloquy creates.
pub mod prefix {
    /// Workspaces (internal, never on the convai wire).
    pub const WORKSPACE: &str = "ws_";
    /// Users (the `created_by_user_id` of resources).
    pub const USER: &str = "user_";
    /// API keys (the public handle of a key, not the secret token).
    pub const API_KEY: &str = "key_";
    /// Workspace secrets.
    pub const SECRET: &str = "secret_";
    /// Agents.
    pub const AGENT: &str = "agent_";
    /// Agent branches.
    pub const BRANCH: &str = "agtbrch_";
    /// Agent versions.
    pub const VERSION: &str = "agtvrsn_";
    /// Tools.
    pub const TOOL: &str = "tool_";
    /// MCP servers.
    pub const MCP_SERVER: &str = "mcp_";
}

/// A new id: `prefix` followed by 28 base32 characters (8 of time, 20 of randomness).
pub fn new_id(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + ID_BODY_LEN);
    out.push_str(prefix);
    // 40 bits of milliseconds cover ~34 years from the epoch wrap-around; only ordering of
    // nearby ids matters, so wrapping is harmless.
    let ms = u64::try_from(time::now_ms()).unwrap_or(0);
    for shift in (0..8).rev() {
        out.push(char::from(ALPHABET[((ms >> (shift * 5)) & 31) as usize]));
    }
    let rnd = random::bytes::<20>();
    out.extend(
        rnd.iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)])),
    );
    out
}

/// Whether `id` has the shape [`new_id`] produces for `prefix`; used to answer 404 early
/// for ids that cannot exist, without a query.
pub fn is_well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|body| {
        body.len() == ID_BODY_LEN && body.bytes().all(|b| ALPHABET.contains(&b))
    })
}

/// A new UUIDv7: time-ordered, used for conversations and audit records.
pub fn new_uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `s` is a UUID (any version), in its usual hyphenated form.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_reference_shape_and_differ() {
        let a = new_id("agent_");
        let b = new_id("agent_");
        assert_eq!(a.len(), "agent_".len() + 28);
        assert!(is_well_formed(&a, "agent_"));
        assert_ne!(a, b);
        assert!(!is_well_formed("agent_ABC", "agent_"));
        assert!(!is_well_formed(&a, "tool_"));
    }
}
