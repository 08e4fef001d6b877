//! The HTTP and WebSocket surface of Colloquy: routers per resource under [`routes`], the
//! authenticated [`auth::Caller`], request extractors that reject in the reference's shape,
//! the one [`error::ApiError`], metrics and the served OpenAPI document.
//!
//! This crate knows nothing of SQL; it talks to `colloquy-store` through its trait.

pub mod auth;
mod changes;
mod conformance;
mod contention;
pub mod error;
pub mod extract;
pub mod key_cache;
pub mod limits;
mod lookup;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod routes;
pub mod state;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use colloquy_core::secret_key::Keyring;
use colloquy_store::DynStore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::ScopeTable;
use crate::error::ApiError;
use crate::state::{App, AppState};

pub use crate::state::{ApiSettings, Limits};

/// The whole HTTP application, ready to serve.
pub fn router(
    store: DynStore, keyring: Keyring, engine: Arc<colloquy_engine::EngineDeps>,
    settings: ApiSettings,
) -> anyhow::Result<Router> {
    let (api, doc) = routes::api().split_for_parts();
    let doc = serde_json::to_value(doc)?;
    let scopes = ScopeTable::from_openapi(&doc)?;
    let max_body = settings.max_body_bytes;
    let check_responses = settings.check_responses;
    let state = AppState(Arc::new(App {
        store,
        keyring,
        engine,
        rate: limits::RequestRate::new(settings.limits.rate_limit_per_minute),
        conversations: limits::ConversationSlots::new(
            settings.limits.max_conversations_per_workspace,
        ),
        settings,
        scopes,
        keys: key_cache::KeyCache::default(),
        metrics: metrics::Metrics::default(),
        openapi: openapi::ServedDoc::new(&doc),
    }));
    let routes = api
        .merge(routes::ops::router())
        .merge(routes::conversation_ws::socket_router())
        .merge(routes::knowledge_base::file_router())
        .route_layer(middleware::from_fn_with_state(state.clone(), changes::record))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state);
    let routes = if check_responses {
        routes.layer(middleware::from_fn(conformance::check))
    } else {
        routes
    };
    Ok(harden(routes, max_body))
}

/// The layers every request passes through, whatever its route: reference-shaped 404/405, the
/// body limit, panic containment and request tracing.
fn harden(routes: Router, max_body: usize) -> Router {
    routes
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// Every request's span: its method and path (which hold the ids of what it addresses), and
/// the caller's workspace and key, recorded by the [`auth::Caller`] extractor once known.
/// Secrets never go in: the key is its public id, not the token.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        workspace = tracing::field::Empty,
        key = tracing::field::Empty,
    )
}

/// A handler panicked: log it and answer 500 in the usual shape. The connection and the server
/// carry on.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    async fn boom() -> &'static str {
        panic!("kaboom")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_in_the_usual_shape() {
        let app = harden(Router::new().route("/boom", get(boom)), 1024);
        let response =
            app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 500);
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["detail"]["status"], "internal_error");
        assert!(!body.to_string().contains("kaboom"), "the panic message stays in the log");

        let after = app.oneshot(Request::get("/nope").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(after.status(), 404, "the service keeps serving");
    }
}
