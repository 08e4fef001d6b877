//! The web dashboard: agents, a live playground, conversations with their tool-call timeline,
//! tools with their execution log, test runs and MCP servers, the review of conversations
//! (search, tags, tickets, topics), served at `/` by the same binary.
//!
//! Every page is rendered on the server from the server's own API, called in process with the
//! signed-in key ([`api::Api`]). So the dashboard shows exactly what that key may see through the
//! API — its workspace, its scopes — and edits pass the API's own validation; it holds no query
//! of its own. The key lives only in a sealed, HttpOnly cookie ([`session`]); every state change
//! carries a CSRF token; pages are plain HTML with one small script, for the playground.

mod api;
mod assets;
mod charts;
mod error;
mod format;
mod forms;
mod layout;
mod pages;
mod security;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use colloquy_core::secret_key::Keyring;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// What every dashboard handler shares.
#[derive(Clone)]
pub(crate) struct Dash(Arc<Inner>);

pub(crate) struct Inner {
    api: api::Api,
    keyring: Keyring,
    /// What every page says first: the server cannot answer yet (no LLM is configured).
    notice: Option<Arc<str>>,
}

impl std::ops::Deref for Dash {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The dashboard's routes, rendering from `api` (the server's whole API router) and sealing
/// sessions with `keyring`. Merge it beside the API; it declares no fallback of its own.
pub fn router(api: Router, keyring: Keyring, notice: Option<&str>) -> Router {
    let notice = notice.map(Arc::from);
    let state = Dash(Arc::new(Inner { api: api::Api::new(api), keyring, notice }));
    Router::new()
        .route("/", get(pages::home::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .merge(pages::agents::routes())
        .merge(pages::agent_settings::routes())
        .merge(pages::playground::routes())
        .merge(pages::conversations::routes())
        .merge(pages::tools::routes())
        .merge(pages::tool_builder::routes())
        .merge(pages::tests::routes())
        .merge(pages::test_builder::routes())
        .merge(pages::mcp::routes())
        .merge(pages::knowledge_base::routes())
        .merge(pages::changes::routes())
        .merge(pages::webhooks::routes())
        .merge(pages::versions::routes())
        .merge(pages::review::routes())
        .layer(middleware::from_fn(security::guard))
        .layer(CatchPanicLayer::custom(error::panic_page))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
