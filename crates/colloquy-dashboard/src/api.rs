//! The server's own API, called in process with the signed-in key.
//!
//! Going through the router rather than the store means the dashboard cannot see or change more
//! than the key could over HTTP: the same authorization, scopes, workspace scoping, limits and
//! validation apply, and errors come back in the API's own words.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

use crate::error::{Error, Result};

/// Largest API answer the dashboard reads (a page of 100 executions with payloads fits).
const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;
/// Largest file (a conversation's recording) read from the API.
const MAX_FILE_BYTES: usize = 256 * 1024 * 1024;

/// Handle on the API router.
#[derive(Clone)]
pub struct Api {
    router: Router,
}

/// Who calls: the key, and the host the browser reached us at (links the API builds, like
/// signed WebSocket URLs, must point back there).
pub struct Credentials<'a> {
    pub token: &'a str,
    pub host: Option<&'a HeaderValue>,
}

impl Api {
    pub fn new(router: Router) -> Api {
        Api { router }
    }

    /// `GET uri`, the answer's JSON on 2xx.
    pub async fn get(&self, who: &Credentials<'_>, uri: &str) -> Result<Value> {
        self.call(who, Method::GET, uri, None).await
    }

    /// Calls the API; a non-2xx answer becomes [`Error::Api`] with the API's message, and a 401
    /// (a key revoked since sign-in) ends the session.
    pub async fn call(
        &self, who: &Credentials<'_>, method: Method, uri: &str, body: Option<&Value>,
    ) -> Result<Value> {
        let (status, body) = self.raw(who, method, uri, body).await?;
        answered(status, body)
    }

    /// Calls the API and returns its status and JSON body, whatever the status.
    pub async fn raw(
        &self, who: &Credentials<'_>, method: Method, uri: &str, body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        match body {
            Some(json) => {
                self.send(who, method, uri, Some("application/json"), Body::from(json.to_string()))
                    .await
            }
            None => self.send(who, method, uri, None, Body::empty()).await,
        }
    }

    /// `GET uri` of a file (a recording): its content type and bytes on 2xx.
    pub async fn file(&self, who: &Credentials<'_>, uri: &str) -> Result<(String, Vec<u8>)> {
        let response = self.respond(who, Method::GET, uri, None, Body::empty()).await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = to_bytes(response.into_body(), MAX_FILE_BYTES)
            .await
            .map_err(|e| Error::Internal(format!("reading {uri}: {e}")))?;
        if !status.is_success() {
            answered(status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))?;
        }
        Ok((content_type, bytes.to_vec()))
    }

    /// Sends a body of its own type (a multipart upload) with `POST` or `PATCH`; the answer's
    /// JSON on 2xx, as [`Api::call`] has it.
    pub async fn upload(
        &self, who: &Credentials<'_>, method: Method, uri: &str, content_type: &str, body: Vec<u8>,
    ) -> Result<Value> {
        let (status, body) =
            self.send(who, method, uri, Some(content_type), Body::from(body)).await?;
        answered(status, body)
    }

    async fn send(
        &self, who: &Credentials<'_>, method: Method, uri: &str, content_type: Option<&str>,
        body: Body,
    ) -> Result<(StatusCode, Value)> {
        let response = self.respond(who, method, uri, content_type, body).await?;
        let status = response.status();
        let bytes = to_bytes(response.into_body(), MAX_REPLY_BYTES)
            .await
            .map_err(|e| Error::Internal(format!("reading {uri}: {e}")))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::Internal(format!("{uri} answered non-JSON: {e}")))?
        };
        Ok((status, body))
    }

    async fn respond(
        &self, who: &Credentials<'_>, method: Method, uri: &str, content_type: Option<&str>,
        body: Body,
    ) -> Result<axum::response::Response> {
        let mut request =
            Request::builder().method(method).uri(uri).header("xi-api-key", who.token);
        if let Some(host) = who.host {
            request = request.header(header::HOST, host);
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request =
            request.body(body).map_err(|e| Error::Internal(format!("building {uri}: {e}")))?;
        self.router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| Error::Internal(format!("{uri}: {e}")))
    }
}

/// The body of a 2xx answer; otherwise [`Error::Api`] with the API's message, and for a 401 (a
/// key revoked since sign-in, or a sign-in check that raced it) the end of the session.
fn answered(status: StatusCode, body: Value) -> Result<Value> {
    if status.is_success() { Ok(body) } else { Err(refusal(status, &body)) }
}

/// The error of a non-2xx answer: the end of the session for a 401, else the API's message.
pub fn refusal(status: StatusCode, body: &Value) -> Error {
    if status == StatusCode::UNAUTHORIZED {
        Error::SignedOut { next: "/".into() }
    } else {
        Error::Api { status, message: message_of(body) }
    }
}

/// The human part of an API error body, in any of the shapes the API answers with:
/// `{"detail": {"message"}}`, `{"detail": [{"loc", "msg"}]}` (validation), `{"detail": "..."}`
/// or `{"error": "..."}` (the ohallo routes).
pub fn message_of(body: &Value) -> String {
    let detail = &body["detail"];
    if let Some(message) = detail["message"].as_str() {
        return message.to_owned();
    }
    if let Some(items) = detail.as_array() {
        let lines: Vec<String> = items
            .iter()
            .map(|item| {
                let loc: Vec<String> = item["loc"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| match p {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                let msg = item["msg"].as_str().unwrap_or("invalid");
                if loc.is_empty() { msg.to_owned() } else { format!("{}: {msg}", loc.join(".")) }
            })
            .collect();
        if !lines.is_empty() {
            return lines.join("; ");
        }
    }
    if let Some(text) = detail.as_str().or_else(|| body["error"].as_str()) {
        return text.to_owned();
    }
    "the API refused the request".to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_are_read_from_every_error_shape() {
        assert_eq!(
            message_of(&json!({"detail": {"status": "not_found", "message": "Agent not found"}})),
            "Agent not found"
        );
        assert_eq!(
            message_of(&json!({"detail": [{"loc": ["body", "name", 0], "msg": "Field required"}]})),
            "body.name.0: Field required"
        );
        assert_eq!(message_of(&json!({"error": "Not found"})), "Not found");
        assert_eq!(message_of(&json!(null)), "the API refused the request");
    }
}
