//! The conversation engine of Colloquy (DESIGN.md §3.3): the conversation loop
//! ([`conversation`], its turn in [`turn`]) shared by live conversations, simulations and test
//! runs; LLM providers ([`llm`]); tool executors ([`tools`]) and MCP clients ([`mcp`]); the
//! egress guard ([`egress`]); the judge ([`judge`]) that test runs ([`testing`]) and
//! simulations ([`simulation`]) share; documents read into the knowledge base and retrieved
//! from it ([`knowledge`]); speech in and out ([`voice`]). It knows nothing of HTTP servers; it reads and writes
//! through the store's trait.

pub mod agent;
pub mod analysis;
pub mod conversation;
mod deps;
pub mod egress;
mod error;
pub mod host_limits;
pub mod judge;
pub mod knowledge;
pub mod lease;
pub mod live;
pub mod llm;
pub mod mcp;
mod secrets;
pub mod simulation;
pub mod telemetry;
pub mod testing;
pub mod tickets;
pub mod tls;
pub mod tools;
pub mod topics;
pub mod turn;
pub mod voice;
pub mod webhooks;
mod workflow;

pub use agent::{AgentSnapshot, LoadError, Pick};
pub use conversation::{Conversation, Ending, Source, StartOptions};
pub use deps::{EngineDeps, EngineLimits};
pub use error::EngineError;
pub use turn::{TurnEvent, TurnResult};

/// Installs rustls' ring provider, once per process, before any HTTPS client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
