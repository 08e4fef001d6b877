//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use colloquy_core::secret_key::Keyring;
use colloquy_store::DynStore;

use crate::auth::ScopeTable;
use crate::metrics::Metrics;

/// Settings of the HTTP surface, from the server's configuration.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Base URL clients reach this server at (`COLLOQUY_PUBLIC_URL`); when unset, links are
    /// derived from the request's `Host`.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// What one client may do.
    pub limits: Limits,
    /// Check every successful JSON answer against the reference's response model and answer
    /// 500 naming what differs (`COLLOQUY_CHECK_RESPONSES`; for tests and development).
    pub check_responses: bool,
}

/// Limits on what clients may send and hold, each from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per minute per API key on this node; 0 is no limit.
    pub rate_limit_per_minute: u32,
    /// Live conversations per workspace open on this node at once.
    pub max_conversations_per_workspace: usize,
    /// Largest WebSocket message or frame from a client.
    pub ws_max_message_bytes: usize,
    /// Time between the keep-alive pings of a live conversation.
    pub ws_ping_every: std::time::Duration,
    /// Most tools per agent (workspace and built-in).
    pub max_tools_per_agent: usize,
    /// Longest agent system prompt, in characters.
    pub max_prompt_chars: usize,
    /// Largest knowledge-base file upload or fetched page, in bytes.
    pub kb_max_file_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            rate_limit_per_minute: 6000,
            max_conversations_per_workspace: 1000,
            ws_max_message_bytes: 1024 * 1024,
            ws_ping_every: std::time::Duration::from_secs(20),
            max_tools_per_agent: 128,
            max_prompt_chars: 200_000,
            kb_max_file_bytes: 20 * 1024 * 1024,
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            public_url: None,
            max_body_bytes: 4 * 1024 * 1024,
            limits: Limits::default(),
            check_responses: false,
        }
    }
}

/// Everything built once at start and shared by all requests.
pub struct App {
    /// Persistence.
    pub store: DynStore,
    /// Seals and opens workspace secrets.
    pub keyring: Keyring,
    /// The conversation engine.
    pub engine: Arc<colloquy_engine::EngineDeps>,
    /// HTTP settings.
    pub settings: ApiSettings,
    /// Requests per minute per key.
    pub rate: crate::limits::RequestRate,
    /// Live conversations per workspace.
    pub conversations: crate::limits::ConversationSlots,
    /// Keys recently found valid.
    pub keys: crate::key_cache::KeyCache,
    /// Required scope of every route.
    pub scopes: ScopeTable,
    /// Request counters and latency histograms.
    pub metrics: Metrics,
    /// The served OpenAPI document.
    pub openapi: crate::openapi::ServedDoc,
}

/// Cheap-to-clone handle on [`App`], the axum state.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}
