//! Domain types and rules of Colloquy that need no I/O: identifiers, API-key scopes, list
//! cursors and page sizes, the secret key that seals workspace secrets, and the shape of a
//! validation failure. Every other crate builds on these; none of them lives here twice.

pub mod agent_tests;
pub mod agents;
pub mod analysis;
pub mod branches;
pub mod chunking;
pub mod cursor;
pub mod environments;
pub mod ids;
pub mod keys;
pub mod knowledge;
pub mod llm_usage;
pub mod mcp_servers;
pub mod media;
pub mod merge;
pub mod mocks;
pub mod procedures;
pub mod protocol;
pub mod random;
pub mod redact;
pub mod references;
pub mod schema;
pub mod scope;
pub mod secret_key;
pub mod signature;
pub mod template;
pub mod test_runs;
#[cfg(any(test, feature = "proptest"))]
pub mod testing;
pub mod time;
pub mod tools;
pub mod validation;
pub mod workflow;

#[cfg(test)]
mod fuzz;
