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
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            public_url: None,
            max_body_bytes: 4 * 1024 * 1024,
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
    /// Required scope of every route.
    pub scopes: ScopeTable,
    /// Request counters and latency histograms.
    pub metrics: Metrics,
    /// The served OpenAPI document, rendered once.
    pub openapi_json: String,
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
