//! Every successful JSON answer checked against the reference's response model of its
//! operation (`COLLOQUY_CHECK_RESPONSES`, on in the integration tests).
//!
//! Strict clients (the official SDKs' generated models) reject a field their model does not
//! have, so a stray field is a defect even when nothing here reads it. Checking each answer
//! where it is produced makes the test that produced it fail, with the field named, instead of
//! relying on someone to compare shapes by hand. An answer that does not match becomes a 500
//! whose message lists what is wrong; operations the reference does not have (Colloquy's own
//! `/api/...` and `/healthz`) and non-JSON answers pass as they are.

use std::sync::LazyLock;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use colloquy_core::schema::{Extras, REFERENCE_JSON, Spec};
use colloquy_core::validation::LocItem;
use serde::Deserialize;
use serde_json::{Value, json};

/// The largest answer buffered for the check; larger ones (audio, files) are not JSON models.
const MAX_CHECKED_BYTES: usize = 64 * 1024 * 1024;

/// One operation of the reference: its path split into segments (`None` for a parameter) and
/// the schema of each successful status it declares.
struct Operation {
    method: Method,
    segments: Vec<Option<String>>,
    responses: Vec<(u16, Value)>,
}

#[derive(Deserialize)]
struct Document {
    paths: serde_json::Map<String, Value>,
}

static OPERATIONS: LazyLock<Vec<Operation>> = LazyLock::new(|| {
    // The embedded document parses (a unit test of `schema` proves it).
    let doc: Document =
        serde_json::from_str(REFERENCE_JSON).unwrap_or(Document { paths: serde_json::Map::new() });
    let mut out = Vec::new();
    for (path, item) in doc.paths {
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
            .collect::<Vec<_>>();
        let Value::Object(item) = item else { continue };
        for (method, op) in item {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let responses = op
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(status, r)| {
                    let status: u16 = status.parse().ok().filter(|s| (200..300).contains(s))?;
                    let schema = r.pointer("/content/application~1json/schema")?;
                    Some((status, schema.clone()))
                })
                .collect();
            out.push(Operation { method, segments: segments.clone(), responses });
        }
    }
    out
});

/// The reference's operation for a request: of the templates that match, the one with the
/// most literal segments (`/agents/summaries` before `/agents/{agent_id}`).
fn operation(method: &Method, path: &str) -> Option<&'static Operation> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    OPERATIONS
        .iter()
        .filter(|op| op.method == *method && op.segments.len() == parts.len())
        .filter(|op| {
            op.segments
                .iter()
                .zip(&parts)
                .all(|(seg, part)| seg.as_deref().is_none_or(|s| s == *part))
        })
        .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
}

/// The middleware: passes the request on, then checks the answer.
pub async fn check(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(schema) = operation(&method, &path)
        .and_then(|op| op.responses.iter().find(|(s, _)| *s == status))
        .map(|(_, schema)| schema)
    else {
        return response;
    };
    if !json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_CHECKED_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => return mismatch(&method, &path, format!("the body could not be read: {e}")),
    };
    let mut value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(e) => return mismatch(&method, &path, format!("the body is not JSON: {e}")),
    };
    if let Err(violations) =
        Spec::reference().check_with(schema, Extras::Forbid, &mut value, &["response".into()])
    {
        let list = violations
            .iter()
            .map(|v| {
                let at = v
                    .loc
                    .iter()
                    .map(|l| match l {
                        LocItem::Key(k) => k.clone(),
                        LocItem::Index(i) => i.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                format!("{at} ({}: {})", v.kind, v.msg)
            })
            .collect::<Vec<_>>()
            .join("; ");
        return mismatch(&method, &path, list);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A 500 that says what is wrong: this check runs where the server is under test, so the
/// message goes to the test that made the request rather than only to the log.
fn mismatch(method: &Method, path: &str, what: String) -> Response {
    let message =
        format!("{method} {path}: the answer does not match the reference's model: {what}");
    tracing::error!("{message}");
    let body = json!({"detail": {"status": "response_mismatch", "message": message}});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}
