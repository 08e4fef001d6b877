//! The one error type of the dashboard, and how each kind reaches the browser.

use std::any::Any;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;

use crate::layout;

/// Why a page could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No valid session: go and sign in, then come back to `next`.
    #[error("not signed in")]
    SignedOut { next: String },
    /// The API refused the call; its status and message are shown as they are.
    #[error("{status}: {message}")]
    Api { status: StatusCode, message: String },
    /// A form came without a valid CSRF token, or from another site.
    #[error("the form is stale or came from another site")]
    Forbidden,
    /// The input itself was unusable (say, a JSON document that does not parse).
    #[error("{0}")]
    BadInput(String),
    /// The API answered something the dashboard cannot read: a bug, logged.
    #[error("unexpected answer from the API: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::SignedOut { .. } => StatusCode::SEE_OTHER,
            Error::Api { status, .. } => *status,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::BadInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::SignedOut { next } = &self {
            let to = format!("/login?next={}", crate::format::encode(next));
            return Redirect::to(&to).into_response();
        }
        if let Error::Internal(detail) = &self {
            tracing::error!(%detail, "dashboard page failed");
        }
        let status = self.status();
        let message = match &self {
            Error::Internal(_) => {
                "Something went wrong on the server; it is in the log.".to_owned()
            }
            other => other.to_string(),
        };
        let body = layout::bare(
            status.canonical_reason().unwrap_or("Error"),
            html! {
                p role="alert" { (message) }
                p { a href="/" { "Back to the dashboard" } }
            },
        );
        (status, Html(body.into_string())).into_response()
    }
}

/// A handler panicked: answer a plain 500 page; the server carries on.
pub fn panic_page(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("dashboard handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Error</title><p>Something went wrong on the server.",
    )
        .into_response()
}
