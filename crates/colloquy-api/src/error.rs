//! The API's one error type and its mapping to HTTP, in the reference's shapes:
//! 422 `{"detail": [{"loc", "msg", "type"}]}` for invalid input (FastAPI), and
//! `{"detail": {"status": "<code>", "message": "<text>"}}` for everything else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use colloquy_core::validation::Violation;
use colloquy_store::StoreError;
use serde_json::json;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The input breaks the contract: 422 with where and why.
    #[error("invalid input")]
    Invalid(Vec<Violation>),
    /// No key was presented: 401.
    #[error("no API key")]
    MissingKey,
    /// The key is unknown or revoked: 401.
    #[error("invalid API key")]
    InvalidKey,
    /// The key lacks the route's scope: 403.
    #[error("missing scope {0}")]
    MissingScope(String),
    /// No such resource in the caller's workspace: 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No such route: 404.
    #[error("no such route")]
    NoRoute,
    /// The route exists but not with this method: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state: 409 with a snake_case status.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code, e.g. `tool_in_use`.
        status: &'static str,
        /// Human explanation.
        message: String,
    },
    /// The request cannot be served as asked: 400 with a snake_case status.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        status: &'static str,
        /// Human explanation.
        message: String,
    },
    /// A server this one called (an LLM) failed or broke its contract: 502 with a snake_case
    /// status.
    #[error("{message}")]
    BadGateway {
        /// Machine-readable code.
        status: &'static str,
        /// Human explanation.
        message: String,
    },
    /// Too many requests: 429, with `Retry-After` (seconds until the next is allowed).
    #[error("rate limited")]
    RateLimited(std::time::Duration),
    /// The body is larger than allowed: 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// The database cannot be reached just now: 503 with `Retry-After`; nothing was done.
    #[error("database unavailable")]
    Unavailable,
    /// The database's disk is full: 507; nothing was written.
    #[error("database full")]
    InsufficientStorage,
    /// Unexpected failure: 500, logged with its cause, never shown to the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single-violation 422.
    pub fn invalid(v: Violation) -> ApiError {
        ApiError::Invalid(vec![v])
    }

    fn status_and_body(&self) -> (StatusCode, serde_json::Value) {
        let detail =
            |status: &str, message: &str| json!({"detail": {"status": status, "message": message}});
        match self {
            ApiError::Invalid(violations) => {
                (StatusCode::UNPROCESSABLE_ENTITY, json!({ "detail": violations }))
            }
            ApiError::MissingKey => (
                StatusCode::UNAUTHORIZED,
                detail(
                    "needs_authorization",
                    "Neither authorization header nor xi-api-key received, please provide one.",
                ),
            ),
            ApiError::InvalidKey => {
                (StatusCode::UNAUTHORIZED, detail("invalid_api_key", "Invalid API key"))
            }
            ApiError::MissingScope(scope) => (
                StatusCode::FORBIDDEN,
                detail(
                    "missing_permissions",
                    &format!(
                        "The API key you used is missing the permission {scope} to execute this operation."
                    ),
                ),
            ),
            ApiError::NotFound(what) => {
                let code = format!("{}_not_found", what.replace(' ', "_"));
                (StatusCode::NOT_FOUND, detail(&code, &format!("The {what} was not found.")))
            }
            ApiError::NoRoute => (StatusCode::NOT_FOUND, detail("not_found", "Not Found")),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, detail("method_not_allowed", "Method Not Allowed"))
            }
            ApiError::Conflict { status, message } => {
                (StatusCode::CONFLICT, detail(status, message))
            }
            ApiError::BadRequest { status, message } => {
                (StatusCode::BAD_REQUEST, detail(status, message))
            }
            ApiError::BadGateway { status, message } => {
                (StatusCode::BAD_GATEWAY, detail(status, message))
            }
            ApiError::RateLimited(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                detail(
                    "rate_limited",
                    &format!(
                        "Too many requests with this API key; retry in {} s.",
                        retry_after(*wait)
                    ),
                ),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                detail("payload_too_large", "The request body is larger than this server accepts."),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                detail(
                    "service_unavailable",
                    "The database cannot be reached just now; retry shortly.",
                ),
            ),
            ApiError::InsufficientStorage => (
                StatusCode::INSUFFICIENT_STORAGE,
                detail("insufficient_storage", "The database is full; nothing was written."),
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                detail("internal_error", "An internal error occurred; it has been logged."),
            ),
        }
    }
}

/// A store failure a handler did not expect is the server's fault: 500, logged with its cause;
/// a database that cannot be reached is a 503 the client may retry, a full one a 507. Lookups
/// whose row may be absent say so with [`OrNotFound::or_not_found`].
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Full(cause) => {
                tracing::error!(error = %cause, "database full");
                ApiError::InsufficientStorage
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

/// Documents the server wrote itself failing to (de)serialize is the server's fault too.
impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

/// An agent that cannot be loaded for a conversation (its row was checked first) is the
/// server's fault.
impl From<colloquy_engine::LoadError> for ApiError {
    fn from(e: colloquy_engine::LoadError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Lookups by a client-given id: an absent row is the client's 404 (`{what}_not_found`),
/// anything else the server's 500.
pub trait OrNotFound<T> {
    /// Maps [`StoreError::NotFound`] to [`ApiError::NotFound`] of `what`.
    fn or_not_found(self, what: &'static str) -> ApiResult<T>;
}

impl<T> OrNotFound<T> for Result<T, StoreError> {
    fn or_not_found(self, what: &'static str) -> ApiResult<T> {
        self.map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(what),
            other => other.into(),
        })
    }
}

/// Whole seconds to wait, at least one.
fn retry_after(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "internal error");
        }
        let (status, body) = self.status_and_body();
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited(wait) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after(*wait)));
        }
        if let ApiError::Unavailable = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("xi-api-key"));
        }
        response
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
