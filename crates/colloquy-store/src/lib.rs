//! Persistence of Colloquy behind one trait, [`Store`], on SQLite (embedded, one node) and
//! PostgreSQL (many nodes).
//!
//! There is a single implementation, [`SqlStore`]: each query is written once in SQL both
//! backends accept (`$1` placeholders, `RETURNING`, `ON CONFLICT`, TEXT ids, INTEGER/BIGINT
//! unix times, JSON as TEXT) and run on whichever pool is configured. Queries that must differ
//! per backend are marked where they are written. Schemas live in `migrations/{sqlite,postgres}`.

mod access;
mod agent_media;
mod agent_tests;
mod agent_versions;
mod agents;
mod analyses;
mod api_keys;
mod audit;
mod changes;
mod conversation_files;
mod conversations;
mod crawl_jobs;
mod db;
mod deliveries;
mod environments;
mod error;
mod inline;
mod jobs;
mod kb_sync;
mod knowledge_base;
mod mcp_servers;
mod messages;
mod page;
mod procedures;
mod query;
mod rag_indexes;
mod review;
mod secrets;
mod snapshot;
mod stats;
mod test_runs;
mod tickets;
mod tools;
pub mod transfer;
mod webhooks;
mod workspaces;

use std::sync::Arc;

use async_trait::async_trait;

pub use access::AccessStore;
pub use agent_media::{AgentMedia, AgentMediaStore};
pub use agent_tests::{
    NewTestEntity, ParentFilter, TestEntityRow, TestFilter, TestPage, TestStore,
};
pub use agent_versions::{
    ALL_TRAFFIC_PPM, AgentAtRow, AgentVersionStore, BranchChange, BranchRow, Commit, DeploymentRow,
    DraftRow, NewBranch, OtherParents, VersionMeta,
};
pub use agents::{
    AgentContent, AgentFilter, AgentPage, AgentRow, AgentStore, AgentSummary, AgentSummaryRow,
    MAIN_BRANCH_NAME, NewAgent, SummarySink,
};
pub use analyses::{
    AnalysedConversation, AnalysisJob, AnalysisOutcome, AnalysisStatus, AnalysisStore,
};
pub use api_keys::{ApiKeyRecord, AuthKey, KeyStore, NewApiKey};
pub use audit::{AuditStore, AuditWriter, ExecutionFilter, ToolExecution};
pub use changes::{ChangeFilter, ChangeRow, ChangeStore};
pub use conversation_files::{ConversationFile, ConversationFileStore};
pub use conversations::{
    ConversationAudio, ConversationFilter, ConversationProgress, ConversationRecord,
    ConversationRow, ConversationStore,
};
pub use crawl_jobs::{CrawlJobRow, CrawlPageRow, CrawlStore, NewCrawlJob, PageOutcome};
pub use db::{Backend, ConnectOptions, SqlStore, sqlite_file};
pub use deliveries::{
    ATTEMPT_PREFIX, AttemptFilter, AttemptRow, DELIVERY_PREFIX, DeliveryStore, DueDelivery,
    INITIATION_WEBHOOK, NewDelivery, TryOutcome,
};
pub use environments::{
    EnvValueRow, EnvVarFilter, EnvVarRow, EnvironmentRow, EnvironmentStore, ResolvedEnvVar,
};
pub use error::StoreError;
pub use jobs::{JobKind, Lease, LeaseStore};
pub use kb_sync::{AutoSync, DAY_SECS, DocumentSyncStore, DueSync};
pub use knowledge_base::{
    ChunkRow, DocumentBody, DocumentFilter, DocumentPage, DocumentRow, DocumentText,
    KnowledgeStore, NewDocument,
};
pub use mcp_servers::{McpServerContent, McpServerRow, McpServerStore};
pub use messages::{
    MessageHit, MessageSearch, MessageStore, MessageVector, UnembeddedConversation,
};
pub use page::{Page, SortValue};
pub use procedures::{DraftScope, ProcedureDraftRow, ProcedureStore, ProcedureVersionRow, Publish};
pub use rag_indexes::{RagIndexRow, RagIndexStore, VectorRow};
pub use review::{LastContactRow, ReviewStore, TagRow, UserFilter, UserRow};
pub use secrets::{SecretRecord, SecretStore};
pub use stats::{BUCKETS, ConversationDay, LATENCY_EDGES_US, RunCounts, StatsStore, ToolDays};
pub use test_runs::{InvocationFilter, InvocationRow, RunRow, TestRunStore};
pub use tickets::{
    TicketConversationRow, TicketFilter, TicketNoteRow, TicketRow, TicketSort, TicketStore,
};
pub use tools::{
    NewTool, SecretDependent, ToolContent, ToolFilter, ToolPage, ToolRow, ToolStore, ToolUsage,
};
pub use webhooks::{
    AgentDocumentRow, CONVAI_SETTINGS, SettingsRow, WebhookChange, WebhookRow, WebhookStore,
};
pub use workspaces::{User, Workspace, WorkspaceStore};

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the API and the engine persist. Each resource family has its own trait (one per
/// aggregate, in its own module); this one bundles them so callers hold a single
/// `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    WorkspaceStore
    + KeyStore
    + SecretStore
    + EnvironmentStore
    + AgentStore
    + AgentMediaStore
    + AgentVersionStore
    + ProcedureStore
    + ToolStore
    + McpServerStore
    + KnowledgeStore
    + DocumentSyncStore
    + RagIndexStore
    + CrawlStore
    + AuditStore
    + ChangeStore
    + ConversationStore
    + ReviewStore
    + TicketStore
    + MessageStore
    + ConversationFileStore
    + AnalysisStore
    + AccessStore
    + TestStore
    + TestRunStore
    + LeaseStore
    + WebhookStore
    + DeliveryStore
    + StatsStore
    + Send
    + Sync
    + 'static
{
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Answers when the database does: the readiness check.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes every connection, letting in-flight statements finish.
    async fn close(&self);
}

/// The store as the rest of the server holds it.
pub type DynStore = Arc<dyn Store>;
