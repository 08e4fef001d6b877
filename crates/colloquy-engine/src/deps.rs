//! What every part of the engine runs with, built once at start: the store and the audit
//! writer, LLM routing, the outbound HTTP client behind the egress guard, the keyring that
//! opens secrets, the operator's MCP servers, and the limits.

use std::sync::Arc;

use colloquy_core::secret_key::Keyring;
use colloquy_store::{AuditWriter, DynStore};

use crate::{egress, llm, mcp};

/// Limits of the engine.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// LLM rounds (each may call tools) in one agent turn.
    pub max_tool_rounds: usize,
    /// Largest webhook response read.
    pub webhook_max_response_bytes: usize,
    /// Most bytes of vectors a workspace's embedding indexes may hold.
    pub kb_max_index_bytes: i64,
    /// Seconds a job's lease (test run, embedding index, crawl) lasts; its holder renews it
    /// while it works, so this is how long a dead node's jobs wait before another takes them.
    pub job_lease_secs: i64,
    /// Tries a post-call webhook delivery gets (the first and its retries).
    pub webhook_tries: i64,
    /// Seconds before the first retry of a delivery; each later one waits twice as long.
    pub webhook_first_retry_secs: i64,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_tool_rounds: 8,
            webhook_max_response_bytes: 1024 * 1024,
            kb_max_index_bytes: 1 << 30,
            job_lease_secs: 15,
            webhook_tries: 10,
            webhook_first_retry_secs: 10,
        }
    }
}

/// What the engine needs, built once at start.
pub struct EngineDeps {
    /// This node's id: what its job leases and its live conversations are held under.
    pub node_id: String,
    /// Persistence.
    pub store: DynStore,
    /// The audit log writer.
    pub audit: AuditWriter,
    /// The writer of live conversations' progress after each turn.
    pub progress: crate::conversation::ProgressWriter,
    /// The agent configurations running conversations share.
    pub configs: crate::conversation::SharedConfigs,
    /// LLM routing.
    pub llm: llm::router::LlmRouter,
    /// HTTP client behind the egress guard (webhooks).
    pub http: reqwest::Client,
    /// Webhook calls in flight per host.
    pub webhook_hosts: crate::host_limits::HostLimits,
    /// The egress guard itself (IP-literal URLs).
    pub egress: Arc<egress::EgressGuard>,
    /// Opens secrets referred to by tools and custom LLMs.
    pub keyring: Keyring,
    /// Limits.
    pub limits: EngineLimits,
    /// Operator-declared MCP servers.
    pub mcp: mcp::McpConfig,
    /// Speech recognition and synthesis providers.
    pub voice: crate::voice::VoiceRouter,
    /// Embedding models for knowledge-base indexes.
    pub embeddings: crate::knowledge::embeddings::Embeddings,
    /// Woken when this node queues an embedding index or a crawl, so its knowledge-base worker
    /// takes it at once.
    pub knowledge_queued: tokio::sync::Notify,
    /// Woken when this node queues test runs, so its worker leases them at once instead of at
    /// its next poll (runs queued by other nodes are found by polling).
    pub runs_queued: tokio::sync::Notify,
    /// Woken when this node queues a webhook delivery, so its webhook worker sends it at once.
    pub webhooks_queued: tokio::sync::Notify,
    /// Woken when this node queues a conversation's analysis, so its analyser takes it at once.
    pub analyses_queued: tokio::sync::Notify,
}
