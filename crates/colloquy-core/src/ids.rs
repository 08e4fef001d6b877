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
    /// Environment variables.
    pub const ENV_VAR: &str = "envvar_";
    /// Conversation tags.
    pub const CONVERSATION_TAG: &str = "ctag_";
    /// Triage tickets.
    pub const TICKET: &str = "tkt_";
    /// A triage ticket's notes.
    pub const TICKET_NOTE: &str = "tnote_";
    /// Files attached to a conversation.
    pub const CONVERSATION_FILE: &str = "cfile_";
    /// Workspace webhooks.
    pub const WEBHOOK: &str = "webhook_";
    /// Agents.
    pub const AGENT: &str = "agent_";
    /// Agent branches.
    pub const BRANCH: &str = "agtbrch_";
    /// Agent versions.
    pub const VERSION: &str = "agtvrsn_";
    /// A traffic split set on an agent (its deployment history).
    pub const DEPLOYMENT: &str = "agtdpl_";
    /// Tools.
    pub const TOOL: &str = "tool_";
    /// MCP servers.
    pub const MCP_SERVER: &str = "mcp_";
    /// The derived id of an MCP server's tool that has no `type: "mcp"` tool record
    /// (DESIGN.md §4.1): this prefix and a hash of the server and tool name.
    pub const MCP_TOOL: &str = "tool_mcp_";
    /// Agent tests.
    pub const TEST: &str = "test_";
    /// Agent test folders.
    pub const TEST_FOLDER: &str = "tfld_";
    /// Test invocations (a suite of runs).
    pub const INVOCATION: &str = "suite_";
    /// Knowledge-base documents and folders.
    pub const DOCUMENT: &str = "kbdoc_";
    /// Embedding indexes of documents.
    pub const RAG_INDEX: &str = "ragidx_";
    /// Crawl jobs.
    pub const CRAWL_JOB: &str = "crawl_";
    /// Test runs.
    pub const RUN: &str = "run_";
    /// An entry of the change log.
    pub const CHANGE: &str = "chg_";
    /// Test-run workers (one per node process).
    pub const WORKER: &str = "worker_";
}

/// Declares an id type: a `String` that only converts to and from strings explicitly, so a
/// function taking two kinds of id cannot be called with them swapped. Serialized as the bare
/// string; never validated on the way in (a malformed id simply matches nothing: 404).
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

id_type!(
    /// A workspace (`ws_...`): every query is scoped by one.
    WorkspaceId
);
id_type!(
    /// An agent (`agent_...`).
    AgentId
);
id_type!(
    /// A tool (`tool_...`), or the derived id of an MCP server's tool (`tool_mcp_...`).
    ToolId
);
id_type!(
    /// A conversation: a UUIDv7, also the `executionId` of `/api/tool-calls`.
    ConversationId
);
id_type!(
    /// An agent test or test folder (`test_...`, `tfld_...`).
    TestId
);
id_type!(
    /// A test invocation (`suite_...`).
    InvocationId
);

id_type!(
    /// A knowledge-base document or folder (`kbdoc_...`).
    DocumentId
);

impl WorkspaceId {
    /// A new workspace id.
    pub fn generate() -> WorkspaceId {
        WorkspaceId(new_id(prefix::WORKSPACE))
    }
}

impl AgentId {
    /// A new agent id.
    pub fn generate() -> AgentId {
        AgentId(new_id(prefix::AGENT))
    }
}

impl ToolId {
    /// A new tool id.
    pub fn generate() -> ToolId {
        ToolId(new_id(prefix::TOOL))
    }

    /// Whether this is the derived id of an MCP server's tool rather than a tool record's.
    pub fn is_mcp_derived(&self) -> bool {
        self.0.starts_with(prefix::MCP_TOOL)
    }
}

impl ConversationId {
    /// A new conversation id (UUIDv7, so conversations sort by start).
    pub fn generate() -> ConversationId {
        ConversationId(new_uuid())
    }
}

impl TestId {
    /// A new test id.
    pub fn generate_test() -> TestId {
        TestId(new_id(prefix::TEST))
    }

    /// A new test folder id.
    pub fn generate_folder() -> TestId {
        TestId(new_id(prefix::TEST_FOLDER))
    }
}

impl DocumentId {
    /// A new document or folder id.
    pub fn generate() -> DocumentId {
        DocumentId(new_id(prefix::DOCUMENT))
    }
}

impl InvocationId {
    /// A new invocation id.
    pub fn generate() -> InvocationId {
        InvocationId(new_id(prefix::INVOCATION))
    }
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
    out.extend(rnd.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])));
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
