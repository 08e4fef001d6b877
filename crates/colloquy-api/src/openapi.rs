//! The served `/openapi.json`.
//!
//! Routes and their path/query parameters come from the code (utoipa annotations on each
//! handler, so the document lists exactly what is served). Request and response bodies come
//! from the reference (the official convai OpenAPI, embedded): every operation whose method
//! and path the reference also has gets the reference's `requestBody`, `responses`,
//! `operationId` and summary, plus the component schemas they reach. A response that strays
//! from the reference's schema is therefore a visible defect, and new routes get their bodies
//! documented by being added with the reference's path.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::body::Bytes;
use serde_json::{Map, Value};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use crate::auth::SECURITY_SCHEME;

/// The document's skeleton; routes are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Colloquy",
        description = "Self-hosted, ElevenLabs-compatible API for conversational AI agents."
    ),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "xi-api-key",
                "An API key created with `colloquy keys create` (or the bootstrap key). \
                 `Authorization: Bearer <key>` is accepted too.",
            ))),
        );
    }
}

/// The served document, built the first time it is asked for: attaching the reference's bodies
/// parses the whole reference (megabytes while it lasts), which most servers never need.
pub struct ServedDoc {
    /// The generated document (routes, parameters, security), as JSON text.
    generated: String,
    rendered: OnceLock<Bytes>,
}

impl ServedDoc {
    /// Keeps the generated document until the served one is first asked for.
    pub fn new(generated: &Value) -> ServedDoc {
        ServedDoc { generated: generated.to_string(), rendered: OnceLock::new() }
    }

    /// The served document as JSON text.
    pub fn json(&self) -> anyhow::Result<Bytes> {
        if let Some(rendered) = self.rendered.get() {
            return Ok(rendered.clone());
        }
        let doc = finish(serde_json::from_str(&self.generated)?)?;
        Ok(self.rendered.get_or_init(|| Bytes::from(doc.to_string())).clone())
    }
}

/// Turns the generated document into the served one: reference bodies attached.
fn finish(mut doc: Value) -> anyhow::Result<Value> {
    let reference: Value = serde_json::from_str(colloquy_core::schema::REFERENCE_JSON)?;
    let mut wanted = BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for (method, op) in item.as_object_mut().into_iter().flatten() {
                let Some(ref_op) = reference.pointer(&format!("/paths/{}/{method}", escape(path)))
                else {
                    continue;
                };
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                for key in ["requestBody", "responses", "operationId", "summary", "description"] {
                    if let Some(v) = ref_op.get(key) {
                        op.insert(key.to_owned(), v.clone());
                    }
                }
                collect_refs(ref_op, &mut wanted);
            }
        }
    }
    let empty = Map::new();
    let ref_schemas =
        reference.pointer("/components/schemas").and_then(Value::as_object).unwrap_or(&empty);
    let mut schemas = Map::new();
    let mut queue: Vec<String> = wanted.into_iter().collect();
    while let Some(name) = queue.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        if let Some(schema) = ref_schemas.get(&name) {
            let mut reached = BTreeSet::new();
            collect_refs(schema, &mut reached);
            queue.extend(reached);
            schemas.insert(name, schema.clone());
        }
    }
    let components = doc
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("document is not an object"))?
        .entry("components")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(components) = components.as_object_mut() {
        let target = components.entry("schemas").or_insert_with(|| Value::Object(Map::new()));
        if let Some(target) = target.as_object_mut() {
            target.extend(schemas);
        }
    }
    Ok(doc)
}

/// JSON-pointer escaping of one path segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Names of the component schemas `value` refers to.
fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.insert(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
