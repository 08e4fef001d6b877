//! Request extractors that reject in the reference's 422 shape, with a precise `loc`, instead
//! of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use colloquy_core::validation::{LocItem, Violation};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body, parsed into `T`. Wrong content type, malformed JSON and type errors become 422
/// located in `body`; a body over the size limit becomes 413.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        if !is_json {
            return Err(ApiError::invalid(Violation::new(
                ["body"],
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from \
                 (send the body as JSON with `Content-Type: application/json`)",
            )));
        }
        parse_json(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON response body serialized already: pages serialize views borrowed from their rows,
/// which cannot outlive the handler as a [`Json`] value would.
pub fn json_text(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// An optional JSON body: `None` when the request has no body at all (clients call some
/// endpoints, like duplicate, without one); otherwise exactly as [`Json`].
#[derive(Debug, Clone)]
pub struct MaybeJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) && (!has_type || bytes.is_empty()) {
            return Ok(MaybeJson(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Json::from_request(req, state).await.map(|Json(v)| MaybeJson(Some(v)))
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::invalid(Violation::new(["body"], "body_read", rejection.body_text()))
    }
}

/// Checks a request body against the reference model `model` (filling its defaults), answering
/// 422 with `loc` under `body` when it does not conform.
pub fn check_body(model: &str, body: &mut serde_json::Value) -> Result<(), ApiError> {
    colloquy_core::schema::Spec::reference()
        .check(model, body, &[LocItem::from("body")])
        .map_err(ApiError::Invalid)
}

/// A body already read as JSON, as `T`: for handlers that must find the resource in the path
/// (404) before they judge the body (422).
pub fn from_body<T: DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|err| rejection("body", &err))
}

/// Parses a JSON document into `T`, reporting the first problem where pydantic would.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(Violation::new(["body"], "missing", "Field required")));
    }
    // Syntax first (trailing characters included), then types: a malformed document is
    // `json_invalid` even when its prefix would also miss fields.
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| json_invalid(&e))?;
    serde_path_to_error::deserialize(document).map_err(|err| rejection("body", &err))
}

/// A deserialization failure as the 422 pydantic gives, located under `root` (`body`,
/// `query`) at the failing field.
fn rejection<E: std::fmt::Display>(root: &str, err: &serde_path_to_error::Error<E>) -> ApiError {
    let mut loc = vec![LocItem::from(root)];
    loc.extend(path_items(err.path()));
    let (kind, msg) = classify(&err.inner().to_string());
    if let Some(field) = msg.strip_prefix("missing field ") {
        loc.push(LocItem::Key(field.trim_matches('`').to_owned()));
        return ApiError::invalid(Violation {
            loc,
            msg: "Field required".into(),
            kind: "missing".into(),
        });
    }
    ApiError::invalid(Violation { loc, msg, kind: kind.into() })
}

fn json_invalid(e: &serde_json::Error) -> ApiError {
    ApiError::invalid(Violation::new(
        [LocItem::from("body"), LocItem::Index(e.column())],
        "json_invalid",
        format!("JSON decode error: {e}"),
    ))
}

fn path_items(path: &serde_path_to_error::Path) -> Vec<LocItem> {
    path.iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Seq { index } => Some(LocItem::Index(*index)),
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => {
                Some(LocItem::Key(key.clone()))
            }
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

/// Maps serde's message to pydantic's error type names where one fits.
fn classify(message: &str) -> (&'static str, String) {
    let msg = message.split(" at line ").next().unwrap_or(message).to_owned();
    if let Some(choices) = enum_choices(&msg) {
        return ("enum", format!("Input should be {choices}"));
    }
    let kind = if msg.starts_with("missing field") {
        "missing"
    } else if msg.contains("expected a string") || msg.contains("expected a borrowed string") {
        "string_type"
    } else if msg.contains("expected i64")
        || msg.contains("expected u32")
        || msg.contains("expected u64")
        || msg.contains("invalid digit")
    {
        "int_parsing"
    } else if msg.contains("expected a boolean")
        || msg.contains("provided string was not `true` or `false`")
    {
        "bool_parsing"
    } else if msg.contains("unknown variant") {
        "enum"
    } else if msg.contains("unknown field") {
        "extra_forbidden"
    } else {
        "value_error"
    };
    (kind, msg)
}

/// The choices of serde's "unknown variant `x`, expected `a`, `b` or `c`" (`expected one of`
/// for three and more) in pydantic's words: `'a', 'b' or 'c'`. Every enum of a request (query
/// parameters such as `sort_by`, body fields) is rejected in this one place.
fn enum_choices(message: &str) -> Option<String> {
    let expected = message.strip_prefix("unknown variant `")?.split_once("`, expected ")?.1;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let quoted: Vec<String> = expected
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|choice| format!("'{}'", choice.trim_matches('`')))
        .collect();
    Some(match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => return None,
    })
}

/// For query enums: an empty value (`?sort_by=`) is the same as none, as the reference treats
/// it; anything else must be one of the enum's values.
pub fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let raw: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(value) => {
            T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(value)).map(Some)
        }
    }
}

/// Query parameters parsed into `T`; repeated keys fill `Vec` fields (`?tags=a&tags=b`), as the
/// official SDKs send lists. Errors are 422 located at `query.<name>`.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_html_form::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(Query).map_err(|err| rejection("query", &err))
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// The file uploaded in the multipart form's `field`: its name and bytes, refused while it
/// streams past `limit` bytes (`what` names it in the refusal), without reading the rest.
pub(crate) async fn upload(
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
    field_name: &str, limit: usize, what: &str,
) -> Result<(String, Vec<u8>), ApiError> {
    let invalid =
        |message: String| ApiError::invalid(Violation::new(["body"], "value_error", message));
    let mut form = form.map_err(|e| invalid(e.body_text()))?;
    while let Some(mut field) = form.next_field().await.map_err(|e| invalid(e.body_text()))? {
        if field.name() != Some(field_name) {
            continue;
        }
        let filename = field.file_name().unwrap_or("upload").to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| invalid(e.body_text()))? {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::BadRequest {
                    status: "file_too_large",
                    message: format!("{what} may hold at most {limit} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok((filename, bytes));
    }
    Err(ApiError::invalid(Violation::new(["body", field_name], "missing", "Field required")))
}
