//! The rules of tool documents (`{tool_config, response_mocks}`): the reference schema, plus
//! what the schema cannot say: webhook URLs and their path placeholders, JSON schemas whose
//! `required` names unknown properties, secrets referred to from headers, and response mocks
//! that can never match.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mocks::{self, Mock};
use crate::schema::Spec;
use crate::validation::{LocItem, Violation, body_fields};

/// What the tools list sorts by (`sort_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolSort {
    /// By name (byte order).
    Name,
    /// By creation time (the default).
    #[default]
    CreatedAt,
}

impl ToolSort {
    /// The wire name, which cursors carry too.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolSort::Name => "name",
            ToolSort::CreatedAt => "created_at",
        }
    }
}

/// What a tool is (`tool_config.type`): how it is offered to the LLM and how a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// An HTTP call to the tool's URL.
    Webhook,
    /// Run by the conversation's client (`client_tool_call` over the WebSocket).
    Client,
    /// Acts on the conversation itself (`end_call`, `language_detection`, ...).
    System,
    /// A tool of one of the agent's MCP servers.
    Mcp,
    /// A webhook of an API integration.
    ApiIntegrationWebhook,
}

impl ToolKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolKind::Webhook => "webhook",
            ToolKind::Client => "client",
            ToolKind::System => "system",
            ToolKind::Mcp => "mcp",
            ToolKind::ApiIntegrationWebhook => "api_integration_webhook",
        }
    }

    /// The kind called `name` on the wire, if there is one.
    pub fn parse(name: &str) -> Option<ToolKind> {
        Some(match name {
            "webhook" => ToolKind::Webhook,
            "client" => ToolKind::Client,
            "system" => ToolKind::System,
            "mcp" => ToolKind::Mcp,
            "api_integration_webhook" => ToolKind::ApiIntegrationWebhook,
            _ => return None,
        })
    }
}

/// A stored tool type this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tool type {0:?}")]
pub struct UnknownToolKind(pub String);

impl TryFrom<String> for ToolKind {
    type Error = UnknownToolKind;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        ToolKind::parse(&name).ok_or(UnknownToolKind(name))
    }
}

impl fmt::Display for ToolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Schema of create and update bodies.
pub const REQUEST_SCHEMA: &str = "ToolRequestModel";

/// Fields of a GET response that clients may send back; dropped on write.
const COMPUTED_FIELDS: [&str; 3] = ["id", "access_info", "usage_stats"];

/// A validated tool document and what is derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDoc {
    /// `tool_config.name`.
    pub name: String,
    /// `tool_config.type`.
    pub tool_type: ToolKind,
    /// Secrets referred to from `api_schema.request_headers`, with where.
    pub secret_refs: Vec<(Vec<LocItem>, String)>,
    /// `{tool_config, response_mocks}` with defaults filled.
    pub document: Map<String, Value>,
}

/// Validates a create or update body and fills its defaults.
pub fn prepare(mut body: Value) -> Result<ToolDoc, Vec<Violation>> {
    if let Some(obj) = body.as_object_mut() {
        for key in COMPUTED_FIELDS {
            obj.remove(key);
        }
    }
    let spec = Spec::reference();
    spec.check(REQUEST_SCHEMA, &mut body, &[LocItem::from("body")])?;
    let mut document = body_fields(body)?;
    let mut errors = Vec::new();
    let config = document.get_mut("tool_config").and_then(Value::as_object_mut);
    let Some(config) = config else {
        return Err(vec![Violation::new(["body", "tool_config"], "missing", "Field required")]);
    };
    // The schema's discriminated union admits only the kinds there are.
    let tool_type = config
        .get("type")
        .and_then(Value::as_str)
        .and_then(ToolKind::parse)
        .unwrap_or(ToolKind::Mcp);
    let name = config.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let output_schema = match tool_type {
        ToolKind::Webhook => "WebhookToolConfig-Output",
        ToolKind::Client => "ClientToolConfig-Output",
        ToolKind::System => "SystemToolConfig-Output",
        ToolKind::Mcp | ToolKind::ApiIntegrationWebhook => "MCPToolConfig-Output",
    };
    // Kept as the response model serves it: defaults filled, input-only fields
    // (`property_kind`) and keys the model does not declare dropped.
    let mut filled = Value::Object(config.clone());
    if spec.project(output_schema, &mut filled).is_ok()
        && let Value::Object(filled) = filled
    {
        *config = filled;
    }
    let base: Vec<LocItem> = vec!["body".into(), "tool_config".into()];
    let mut secret_refs = Vec::new();
    if tool_type == ToolKind::Webhook
        && let Some(api) = config.get("api_schema")
    {
        check_webhook(api, &base, &mut errors, &mut secret_refs);
    }
    for (key, schema) in parameter_schemas(config) {
        let mut at = base.clone();
        at.extend(key);
        check_json_schema(schema, &at, &mut errors);
    }
    let params = parameter_names(config);
    if let Some(list) = document.get("response_mocks").and_then(Value::as_array) {
        check_mocks(list, params.as_ref(), &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match document.get_mut("response_mocks") {
        Some(mocks) if !mocks.is_null() => {
            let mut shaped = mocks.clone();
            if spec.project_property("ToolResponseModel", "response_mocks", &mut shaped).is_ok() {
                *mocks = shaped;
            }
        }
        _ => {
            document.insert("response_mocks".into(), Value::Array(Vec::new()));
        }
    }
    Ok(ToolDoc { name, tool_type, secret_refs, document })
}

fn check_webhook(
    api: &Value, base: &[LocItem], errors: &mut Vec<Violation>,
    secrets: &mut Vec<(Vec<LocItem>, String)>,
) {
    let at = |keys: &[&str]| {
        let mut loc = base.to_vec();
        loc.push("api_schema".into());
        loc.extend(keys.iter().map(|k| LocItem::from(*k)));
        loc
    };
    let url = api.get("url").and_then(Value::as_str).unwrap_or_default();
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    if host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
        errors.push(Violation::new(
            at(&["url"]),
            "url_parsing",
            "Input should be a valid URL with an http or https scheme and a host",
        ));
    }
    let placeholders = placeholders(url);
    let declared: BTreeSet<String> = api
        .get("path_params_schema")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let resolved: BTreeSet<String> = api
        .get("auth_resolved_params")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    for p in placeholders.difference(&declared) {
        if !resolved.contains(p) {
            errors.push(Violation::new(
                at(&["path_params_schema"]),
                "value_error",
                format!(
                    "The URL has the placeholder {{{p}}} but path_params_schema does not define it"
                ),
            ));
        }
    }
    for p in declared.difference(&placeholders) {
        errors.push(Violation::new(
            at(&["path_params_schema", p]),
            "value_error",
            format!("path_params_schema defines {p}, which the URL does not contain as {{{p}}}"),
        ));
    }
    if let Some(headers) = api.get("request_headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let Some(secret) = value.get("secret_id").and_then(Value::as_str) {
                secrets.push((at(&["request_headers", name, "secret_id"]), secret.to_owned()));
            }
        }
    }
}

/// `{name}` placeholders of a URL.
fn placeholders(url: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = url;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start + 1..].find('}') else {
            break;
        };
        out.insert(rest[start + 1..start + 1 + len].to_owned());
        rest = &rest[start + 1 + len + 1..];
    }
    out
}

/// The JSON schemas of a tool's parameters, with their location under `tool_config`.
fn parameter_schemas(config: &Map<String, Value>) -> Vec<(Vec<LocItem>, &Value)> {
    let mut out = Vec::new();
    if let Some(api) = config.get("api_schema") {
        for key in ["request_body_schema", "query_params_schema"] {
            if let Some(s) = api.get(key).filter(|s| s.is_object()) {
                out.push((vec!["api_schema".into(), key.into()], s));
            }
        }
    }
    if let Some(s) = config.get("parameters").filter(|s| s.is_object()) {
        out.push((vec!["parameters".into()], s));
    }
    out
}

/// `required` entries must name declared properties, recursively.
fn check_json_schema(schema: &Value, loc: &[LocItem], errors: &mut Vec<Violation>) {
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for (i, r) in required.iter().enumerate() {
            let name = r.as_str().unwrap_or_default();
            if !props.is_some_and(|p| p.contains_key(name)) {
                let mut at = loc.to_vec();
                at.extend(["required".into(), LocItem::Index(i)]);
                errors.push(Violation::new(
                    at,
                    "value_error",
                    format!("required names {name:?}, which is not in properties"),
                ));
            }
        }
    }
    for (name, prop) in props.into_iter().flatten() {
        let mut at = loc.to_vec();
        at.extend(["properties".into(), LocItem::Key(name.clone())]);
        check_json_schema(prop, &at, errors);
    }
    if let Some(items) = schema.get("items") {
        let mut at = loc.to_vec();
        at.push("items".into());
        check_json_schema(items, &at, errors);
    }
}

/// Names of the top-level parameters the LLM fills, when the tool declares them (webhook and
/// client tools); `None` when unknown (system and MCP tools), which disables path checks.
pub fn parameter_names(config: &Map<String, Value>) -> Option<BTreeSet<String>> {
    let keys = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    };
    match config.get("type").and_then(Value::as_str) {
        Some("webhook") => {
            let api = config.get("api_schema")?;
            let mut names = keys(api.get("request_body_schema"));
            names.extend(keys(api.get("query_params_schema")));
            if let Some(path) = api.get("path_params_schema").and_then(Value::as_object) {
                names.extend(path.keys().cloned());
            }
            Some(names)
        }
        Some("client") => Some(keys(config.get("parameters"))),
        _ => None,
    }
}

/// Response mocks must be able to match: valid regexes, paths into declared parameters, and
/// no mock after one without conditions (which always answers first).
pub fn check_mocks(list: &[Value], params: Option<&BTreeSet<String>>, errors: &mut Vec<Violation>) {
    let mut default_at = None;
    for (i, value) in list.iter().enumerate() {
        let loc: Vec<LocItem> = vec!["body".into(), "response_mocks".into(), LocItem::Index(i)];
        if let Some(first) = default_at {
            errors.push(Violation::new(
                loc.clone(),
                "value_error",
                format!("This mock can never match: mock {first} has no conditions and always answers first"),
            ));
        }
        match Mock::parse(value, &loc) {
            Ok(mock) => {
                if mock.conditions.is_empty() && default_at.is_none() {
                    default_at = Some(i);
                }
                for (j, c) in mock.conditions.iter().enumerate() {
                    let root = mocks::root_parameter(&c.path);
                    if let Some(params) = params
                        && !params.contains(root)
                    {
                        let mut at = loc.clone();
                        at.extend([
                            "parameter_conditions".into(),
                            LocItem::Index(j),
                            "path".into(),
                        ]);
                        errors.push(Violation::new(
                            at,
                            "value_error",
                            format!("The tool has no parameter {root:?}, so this condition can never hold"),
                        ));
                    }
                }
            }
            Err(v) => errors.push(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn webhook(api: Value) -> Value {
        json!({"tool_config": {"type": "webhook", "name": "lookup", "description": "Looks up", "api_schema": api}})
    }

    #[test]
    fn accepts_a_full_webhook_and_finds_secrets() {
        let doc = prepare(webhook(json!({
            "url": "https://api.example.com/orders/{order_id}",
            "method": "POST",
            "path_params_schema": {"order_id": {"type": "string", "description": "Order"}},
            "request_body_schema": {"type": "object", "properties": {"note": {"type": "string", "description": "n"}}, "required": ["note"]},
            "request_headers": {"Authorization": {"secret_id": "secret_1"}, "X-Plain": "v"}
        })))
        .unwrap();
        assert_eq!(doc.name, "lookup");
        assert_eq!(doc.tool_type, ToolKind::Webhook);
        assert_eq!(doc.secret_refs.len(), 1);
        assert_eq!(doc.secret_refs[0].1, "secret_1");
        assert_eq!(doc.document["response_mocks"], json!([]));
        assert!(
            doc.document["tool_config"].get("response_timeout_secs").is_some(),
            "defaults filled"
        );
    }

    #[test]
    fn refuses_bad_webhooks_with_locations() {
        let cases = [
            (json!({"method": "GET"}), vec!["body", "tool_config", "webhook", "api_schema", "url"]),
            (json!({"url": "ftp://x"}), vec!["body", "tool_config", "api_schema", "url"]),
            (
                json!({"url": "https://x/{id}"}),
                vec!["body", "tool_config", "api_schema", "path_params_schema"],
            ),
            (
                json!({"url": "https://x", "method": "TRACE"}),
                vec!["body", "tool_config", "webhook", "api_schema", "method"],
            ),
            (
                json!({"url": "https://x", "method": "POST", "request_body_schema": {"type": "object", "properties": {}, "required": ["ghost"]}}),
                vec!["body", "tool_config", "api_schema", "request_body_schema", "required"],
            ),
        ];
        for (api, want) in cases {
            let err = prepare(webhook(api.clone())).unwrap_err();
            let got: Vec<String> = err[0]
                .loc
                .iter()
                .map(|l| match l {
                    LocItem::Key(k) => k.clone(),
                    LocItem::Index(i) => i.to_string(),
                })
                .collect();
            assert!(
                got.starts_with(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                "{api}: {err:?}"
            );
        }
    }

    #[test]
    fn refuses_mocks_that_cannot_match() {
        let mut body = webhook(json!({"url": "https://x", "method": "POST",
            "request_body_schema": {"type": "object", "properties": {"city": {"type": "string", "description": "c"}}}}));
        body["response_mocks"] = json!([
            {"mock_result": "a", "parameter_conditions": [{"path": "country", "eval": {"type": "anything"}}]},
            {"mock_result": "b", "parameter_conditions": [{"path": "city", "eval": {"type": "regex", "pattern": "("}}]},
            {"mock_result": "default"},
            {"mock_result": "never"}
        ]);
        let err = prepare(body).unwrap_err();
        let kinds: Vec<String> =
            err.iter().map(|v| format!("{:?}", v.loc.last().unwrap())).collect();
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(kinds[0].contains("path") && kinds[1].contains("pattern"), "{kinds:?}");
        assert_eq!(err[2].loc[2], LocItem::Index(3));
    }
}
