//! The rules of MCP server configurations (`/v1/convai/mcp-servers`): the reference schemas,
//! plus what they cannot say — where a server may be reached, which secrets it refers to, that
//! no API request may ask for a process to be started, and how a tool call is approved.
//!
//! A server's `url` is an `http(s)://` URL (or a secret holding one), or `stdio:NAME`, which
//! names a server the operator declared in `colloquy.toml`: commands come only from there.

use serde_json::{Map, Value, json};

use crate::ids::{self, ToolId};
use crate::keys::hex;
use crate::schema::Spec;
use crate::validation::{LocItem, Violation};

/// Schema of create bodies (`{config}`).
pub const CREATE_SCHEMA: &str = "MCPServerRequestModel";
/// Schema of PATCH bodies.
pub const UPDATE_SCHEMA: &str = "MCPServerConfigUpdateRequestModel";
/// Schema of approval-policy bodies.
pub const APPROVAL_POLICY_SCHEMA: &str = "MCPApprovalPolicyUpdateRequestModel";
/// Schema of tool-approval bodies.
pub const TOOL_APPROVAL_SCHEMA: &str = "MCPToolAddApprovalRequestModel";
/// Schema of tool-config create bodies.
pub const TOOL_CONFIG_CREATE_SCHEMA: &str = "MCPToolConfigOverrideCreateRequestModel";
/// Schema of tool-config update bodies.
pub const TOOL_CONFIG_UPDATE_SCHEMA: &str = "MCPToolConfigOverrideUpdateRequestModel";

/// Prefix of `url`s naming an operator-declared stdio server.
pub const STDIO_SCHEME: &str = "stdio:";

/// Keys that would ask for a process to be run; refused wherever a client sends them.
const COMMAND_KEYS: [&str; 5] = ["command", "args", "env", "cwd", "stdio"];

/// Where a server is reached, as its configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// An `http://` or `https://` URL.
    Http(String),
    /// A workspace secret holding the URL.
    Secret(String),
    /// An operator-declared stdio server, by name.
    Stdio(String),
}

impl ServerUrl {
    /// The `url` of a stored configuration.
    pub fn of(config: &Map<String, Value>) -> Option<ServerUrl> {
        match config.get("url")? {
            Value::String(text) => match text.strip_prefix(STDIO_SCHEME) {
                Some(name) => Some(ServerUrl::Stdio(name.to_owned())),
                None => Some(ServerUrl::Http(text.clone())),
            },
            other => other
                .get("secret_id")
                .and_then(Value::as_str)
                .map(|s| ServerUrl::Secret(s.to_owned())),
        }
    }
}

/// The host of an `http(s)://` URL, and whether it is `https`; `None` if it is not one.
pub fn http_host(url: &str) -> Option<(&str, bool)> {
    let (rest, https) = match url.strip_prefix("https://") {
        Some(rest) => (rest, true),
        None => (url.strip_prefix("http://")?, false),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    (!host.is_empty() && !host.contains(char::is_whitespace)).then_some((host, https))
}

/// A validated configuration and what is derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerDoc {
    /// `config.name`.
    pub name: String,
    /// Where the server is reached.
    pub url: ServerUrl,
    /// Secrets the configuration refers to, with where.
    pub secret_refs: Vec<(Vec<LocItem>, String)>,
    /// The configuration, defaults filled.
    pub config: Map<String, Value>,
}

fn at(base: &[LocItem], keys: &[&str]) -> Vec<LocItem> {
    let mut loc = base.to_vec();
    loc.extend(keys.iter().map(|k| LocItem::from(*k)));
    loc
}

fn refuse_commands(object: Option<&Map<String, Value>>, base: &[LocItem]) -> Vec<Violation> {
    let Some(object) = object else {
        return Vec::new();
    };
    COMMAND_KEYS
        .iter()
        .filter(|k| object.contains_key(**k))
        .map(|k| {
            Violation::new(
                at(base, &[k]),
                "value_error",
                "MCP servers that run a command are declared by the operator in colloquy.toml \
                 ([mcp.stdio.NAME]) and referred to with url \"stdio:NAME\"; the API never starts processes",
            )
        })
        .collect()
}

/// Validates a create body (`{config}`) and fills its defaults.
pub fn prepare_create(mut body: Value) -> Result<McpServerDoc, Vec<Violation>> {
    let body_loc = vec![LocItem::from("body")];
    let mut errors = refuse_commands(body.as_object(), &body_loc);
    errors.extend(refuse_commands(
        body.get("config").and_then(Value::as_object),
        &at(&body_loc, &["config"]),
    ));
    if !errors.is_empty() {
        return Err(errors);
    }
    Spec::reference().check(CREATE_SCHEMA, &mut body, &body_loc)?;
    let config = body.get("config").and_then(Value::as_object).cloned().unwrap_or_default();
    finish(config, &at(&body_loc, &["config"]))
}

/// Applies a PATCH body to a stored configuration: every field it sets (not `null`) replaces
/// the stored one. The result is checked as a whole.
pub fn apply_update(
    current: &Map<String, Value>, mut patch: Value,
) -> Result<McpServerDoc, Vec<Violation>> {
    let body_loc = vec![LocItem::from("body")];
    let errors = refuse_commands(patch.as_object(), &body_loc);
    if !errors.is_empty() {
        return Err(errors);
    }
    let spec = Spec::reference();
    spec.check(UPDATE_SCHEMA, &mut patch, &body_loc)?;
    let fields = spec.property_names(UPDATE_SCHEMA);
    let mut config = current.clone();
    if let Value::Object(patch) = patch {
        for (key, value) in patch {
            if !value.is_null() && fields.contains(&key) {
                config.insert(key, value);
            }
        }
    }
    finish(config, &body_loc)
}

/// Re-checks a configuration changed by one of the narrower routes (approvals, tool configs).
pub fn recheck(config: Map<String, Value>) -> Result<McpServerDoc, Vec<Violation>> {
    finish(config, &[LocItem::from("body")])
}

/// The checks of a whole configuration, its defaults, and what is derived from it.
fn finish(
    mut config: Map<String, Value>, base: &[LocItem],
) -> Result<McpServerDoc, Vec<Violation>> {
    let name = config.get("name").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    let url = ServerUrl::of(&config);
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push(Violation::new(
            at(base, &["name"]),
            "string_too_short",
            "The MCP server needs a name",
        ));
    }
    errors.extend(check_url(url.as_ref(), base));
    let secret_refs = secret_refs(&config, url.as_ref(), base, &mut errors);
    if config.get("auth_connection").is_some_and(|a| !a.is_null()) {
        errors.push(Violation::new(
            at(base, &["auth_connection"]),
            "value_error",
            "Auth connections are not supported; send the token as secret_token or a request header",
        ));
    }
    errors.extend(duplicate_overrides(&config, base));
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Some(overrides) = config.get_mut("tool_config_overrides").and_then(Value::as_array_mut) {
        overrides.iter_mut().for_each(normalize_override);
    }
    for (key, empty) in [
        ("tool_approval_hashes", json!([])),
        ("tool_config_overrides", json!([])),
        ("request_headers", json!({})),
    ] {
        if config.get(key).is_none_or(Value::is_null) {
            config.insert(key.into(), empty);
        }
    }
    config.insert("name".into(), Value::String(name.clone()));
    Ok(McpServerDoc {
        name,
        url: url.unwrap_or(ServerUrl::Http(String::new())),
        secret_refs,
        config,
    })
}

/// The URL must be an http(s) URL with a host, a secret, or `stdio:NAME`.
fn check_url(url: Option<&ServerUrl>, base: &[LocItem]) -> Option<Violation> {
    let (kind, message) = match url {
        Some(ServerUrl::Http(text)) if http_host(text).is_none() => (
            "url_parsing",
            "Input should be an http(s) URL with a host, or stdio:NAME for a server declared in colloquy.toml",
        ),
        Some(ServerUrl::Stdio(n)) if n.is_empty() => (
            "url_parsing",
            "stdio: must be followed by the name of a server declared in colloquy.toml",
        ),
        None => ("missing", "Field required"),
        _ => return None,
    };
    Some(Violation::new(at(base, &["url"]), kind, message))
}

/// The workspace secrets the configuration refers to, with where (URL, token, headers,
/// `_meta`). A value that cannot be a secret here (an inline encrypted token) is reported in
/// `errors`.
fn secret_refs(
    config: &Map<String, Value>, url: Option<&ServerUrl>, base: &[LocItem],
    errors: &mut Vec<Violation>,
) -> Vec<(Vec<LocItem>, String)> {
    let mut refs = Vec::new();
    if let Some(ServerUrl::Secret(id)) = url {
        refs.push((at(base, &["url", "secret_id"]), id.clone()));
    }
    match config.get("secret_token") {
        Some(token) if token.get("encrypted_value").is_some() => errors.push(Violation::new(
            at(base, &["secret_token"]),
            "value_error",
            "Store the token as a workspace secret and refer to it as {\"secret_id\": ...}",
        )),
        Some(token) => {
            if let Some(id) = token.get("secret_id").and_then(Value::as_str) {
                refs.push((at(base, &["secret_token", "secret_id"]), id.to_owned()));
            }
        }
        None => {}
    }
    for field in ["request_headers", "request_meta"] {
        for (key, value) in config.get(field).and_then(Value::as_object).into_iter().flatten() {
            if let Some(id) = value.get("secret_id").and_then(Value::as_str) {
                refs.push((at(base, &[field, key, "secret_id"]), id.to_owned()));
            }
        }
    }
    refs
}

/// Each tool has at most one config override.
fn duplicate_overrides(config: &Map<String, Value>, base: &[LocItem]) -> Vec<Violation> {
    let mut seen = std::collections::BTreeSet::new();
    let overrides = config.get("tool_config_overrides").and_then(Value::as_array);
    overrides
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, o)| {
            let tool = o.get("tool_name").and_then(Value::as_str).unwrap_or_default();
            if seen.insert(tool.to_owned()) {
                return None;
            }
            let mut loc = at(base, &["tool_config_overrides"]);
            loc.extend([LocItem::Index(i), "tool_name".into()]);
            Some(Violation::new(
                loc,
                "value_error",
                format!("Tool {tool:?} has two config overrides"),
            ))
        })
        .collect()
}

/// Schema of a stored tool config override, as responses show it.
const TOOL_CONFIG_OUTPUT_SCHEMA: &str = "MCPToolConfigOverride-Output";

/// A tool config override as stored, in the response model's shape: request fields sent as
/// `null` ("not overridden") are filled the way the response model fills absent ones (it does
/// not take `null` everywhere the request does, e.g. `assignments`).
fn normalize_override(entry: &mut Value) {
    if let Some(fields) = entry.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    let mut filled = entry.clone();
    if Spec::reference().check(TOOL_CONFIG_OUTPUT_SCHEMA, &mut filled, &[]).is_ok() {
        *entry = filled;
    }
}

/// Sets the server-wide approval policy from an approval-policy body.
pub fn set_approval_policy(
    config: &mut Map<String, Value>, mut body: Value,
) -> Result<(), Vec<Violation>> {
    Spec::reference().check(APPROVAL_POLICY_SCHEMA, &mut body, &["body".into()])?;
    config.insert("approval_policy".into(), body["approval_policy"].clone());
    Ok(())
}

/// Adds (or replaces, by tool name) a per-tool approval from a tool-approval body.
pub fn add_tool_approval(
    config: &mut Map<String, Value>, mut body: Value,
) -> Result<(), Vec<Violation>> {
    Spec::reference().check(TOOL_APPROVAL_SCHEMA, &mut body, &["body".into()])?;
    let name = body["tool_name"].as_str().unwrap_or_default().to_owned();
    let description = body["tool_description"].as_str().unwrap_or_default();
    let schema = body.get("input_schema").cloned().unwrap_or_else(|| json!({}));
    let entry = json!({
        "tool_name": name,
        "tool_hash": tool_hash(description, &schema),
        "approval_policy": body.get("approval_policy").cloned().unwrap_or_else(|| json!("requires_approval")),
    });
    let list = array_mut(config, "tool_approval_hashes");
    list.retain(|e| e.get("tool_name").and_then(Value::as_str) != Some(&name));
    list.push(entry);
    Ok(())
}

/// Removes a per-tool approval; false when there was none for that tool.
pub fn remove_tool_approval(config: &mut Map<String, Value>, tool_name: &str) -> bool {
    remove_named(config, "tool_approval_hashes", tool_name)
}

/// Why a tool config could not be added or changed.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolConfigError {
    /// The body is invalid.
    Invalid(Vec<Violation>),
    /// The tool already has a config (create).
    Exists,
    /// The tool has no config (update).
    Missing,
}

/// Adds the config override of one tool from a create body.
pub fn add_tool_config(
    config: &mut Map<String, Value>, mut body: Value,
) -> Result<(), ToolConfigError> {
    Spec::reference()
        .check(TOOL_CONFIG_CREATE_SCHEMA, &mut body, &["body".into()])
        .map_err(ToolConfigError::Invalid)?;
    let name = body["tool_name"].as_str().unwrap_or_default().to_owned();
    if tool_config(config, &name).is_some() {
        return Err(ToolConfigError::Exists);
    }
    array_mut(config, "tool_config_overrides").push(body);
    Ok(())
}

/// Changes the config override of one tool: the fields the body sets replace the stored ones.
pub fn update_tool_config(
    config: &mut Map<String, Value>, tool_name: &str, mut body: Value,
) -> Result<(), ToolConfigError> {
    let spec = Spec::reference();
    spec.check(TOOL_CONFIG_UPDATE_SCHEMA, &mut body, &["body".into()])
        .map_err(ToolConfigError::Invalid)?;
    let fields = spec.property_names(TOOL_CONFIG_UPDATE_SCHEMA);
    let entry = array_mut(config, "tool_config_overrides")
        .iter_mut()
        .find(|o| o.get("tool_name").and_then(Value::as_str) == Some(tool_name))
        .and_then(Value::as_object_mut)
        .ok_or(ToolConfigError::Missing)?;
    if let Value::Object(body) = body {
        for (key, value) in body {
            if !value.is_null() && fields.contains(&key) {
                entry.insert(key, value);
            }
        }
    }
    Ok(())
}

/// The config override of one tool.
pub fn tool_config<'a>(config: &'a Map<String, Value>, tool_name: &str) -> Option<&'a Value> {
    config
        .get("tool_config_overrides")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.get("tool_name").and_then(Value::as_str) == Some(tool_name))
}

/// Removes the config override of one tool; false when it had none.
pub fn remove_tool_config(config: &mut Map<String, Value>, tool_name: &str) -> bool {
    remove_named(config, "tool_config_overrides", tool_name)
}

fn array_mut<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = config.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

fn remove_named(config: &mut Map<String, Value>, key: &str, tool_name: &str) -> bool {
    let list = array_mut(config, key);
    let before = list.len();
    list.retain(|e| e.get("tool_name").and_then(Value::as_str) != Some(tool_name));
    list.len() != before
}

/// The approval hash of a tool: SHA-256 over its description and input schema (keys sorted),
/// so an approval given to one version of a tool does not carry over to a changed one.
pub fn tool_hash(description: &str, input_schema: &Value) -> String {
    let canonical = json!({"description": description, "input_schema": sorted(input_schema)});
    hex(ring::digest::digest(&ring::digest::SHA256, canonical.to_string().as_bytes()).as_ref())
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The id an MCP tool without a tool record has in the audit log (DESIGN.md §4.1).
pub fn derived_tool_id(server_id: &str, tool_name: &str) -> ToolId {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{server_id}\u{0}{tool_name}").as_bytes(),
    );
    ToolId::from(format!("{}{}", ids::prefix::MCP_TOOL, &hex(digest.as_ref())[..24]))
}

/// Whether a call needs the user's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// It runs at once.
    Auto,
    /// The user must approve it first.
    Required,
}

/// How a call of `tool_name` (whose current definition hashes to `hash`) is approved under
/// `policy` and the server's per-tool approvals. Under the per-tool policy a tool runs at once
/// only when it was approved as `auto_approved` in its current definition.
pub fn approval_for(
    policy: &str, server_config: &Map<String, Value>, tool_name: &str, hash: &str,
) -> Approval {
    match policy {
        "auto_approve_all" => Approval::Auto,
        "require_approval_per_tool" => {
            let auto = server_config
                .get("tool_approval_hashes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|e| {
                    e.get("tool_name").and_then(Value::as_str) == Some(tool_name)
                        && e.get("tool_hash").and_then(Value::as_str) == Some(hash)
                        && e.get("approval_policy").and_then(Value::as_str) == Some("auto_approved")
                });
            if auto { Approval::Auto } else { Approval::Required }
        }
        _ => Approval::Required,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(config: Value) -> Result<McpServerDoc, Vec<Violation>> {
        prepare_create(json!({ "config": config }))
    }

    #[test]
    fn fills_reference_defaults_and_finds_secrets() {
        let doc = create(json!({
            "name": "files", "url": {"secret_id": "s1"},
            "request_headers": {"X-Key": {"secret_id": "s2"}, "X-Plain": "v", "X-User": {"variable_name": "user"}},
            "secret_token": {"secret_id": "s3"}
        }))
        .unwrap();
        assert_eq!(doc.url, ServerUrl::Secret("s1".into()));
        assert_eq!(doc.config["transport"], "SSE");
        assert_eq!(doc.config["approval_policy"], "require_approval_all");
        assert_eq!(doc.config["response_timeout_secs"], 30);
        let ids: Vec<&str> = doc.secret_refs.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(ids, ["s1", "s3", "s2"]);
    }

    #[test]
    fn refuses_commands_bad_urls_and_unsupported_sources() {
        let cases = [
            (json!({"name": "x", "url": "https://h", "command": "rm"}), "command"),
            (json!({"name": "x", "url": "ftp://h"}), "url"),
            (json!({"name": "x", "url": "stdio:"}), "url"),
            (json!({"name": "x", "url": "https://h", "transport": "STDIO"}), "transport"),
            (json!({"name": " ", "url": "https://h"}), "name"),
            (
                json!({"name": "x", "url": "https://h", "response_timeout_secs": 1}),
                "response_timeout_secs",
            ),
        ];
        for (config, field) in cases {
            let err = create(config.clone()).unwrap_err();
            assert!(err.iter().any(|v| v.loc.contains(&LocItem::from(field))), "{config}: {err:?}");
        }
        let err =
            prepare_create(json!({"config": {"name": "x", "url": "https://h"}, "args": ["-c"]}))
                .unwrap_err();
        assert_eq!(err[0].loc, vec![LocItem::from("body"), "args".into()]);
    }

    #[test]
    fn patch_replaces_set_fields_only() {
        let doc = create(json!({"name": "x", "url": "https://h"})).unwrap();
        let updated = apply_update(
            &doc.config,
            json!({"approval_policy": "auto_approve_all", "response_timeout_secs": null, "url": "https://other"}),
        )
        .unwrap();
        assert_eq!(updated.config["approval_policy"], "auto_approve_all");
        assert_eq!(updated.config["response_timeout_secs"], 30);
        assert_eq!(updated.url, ServerUrl::Http("https://h".into()), "url is not patchable");
    }

    #[test]
    fn per_tool_approval_follows_the_tool_definition() {
        let mut config = create(json!({"name": "x", "url": "https://h"})).unwrap().config;
        let schema = json!({"type": "object", "properties": {"b": {}, "a": {}}});
        add_tool_approval(
            &mut config,
            json!({"tool_name": "add", "tool_description": "Adds", "input_schema": schema, "approval_policy": "auto_approved"}),
        )
        .unwrap();
        let reordered = json!({"properties": {"a": {}, "b": {}}, "type": "object"});
        let hash = tool_hash("Adds", &reordered);
        let policy = "require_approval_per_tool";
        assert_eq!(approval_for(policy, &config, "add", &hash), Approval::Auto);
        assert_eq!(
            approval_for(policy, &config, "add", &tool_hash("Adds more", &schema)),
            Approval::Required,
            "a changed tool needs approval again"
        );
        assert_eq!(approval_for(policy, &config, "other", &hash), Approval::Required);
        assert_eq!(approval_for("auto_approve_all", &config, "x", ""), Approval::Auto);
        assert_eq!(approval_for("require_approval_all", &config, "add", &hash), Approval::Required);
        assert!(remove_tool_approval(&mut config, "add"));
        assert!(!remove_tool_approval(&mut config, "add"));
    }

    #[test]
    fn tool_configs_are_unique_per_tool() {
        let mut config = create(json!({"name": "x", "url": "https://h"})).unwrap().config;
        add_tool_config(&mut config, json!({"tool_name": "add", "response_timeout_secs": 10}))
            .unwrap();
        assert_eq!(
            add_tool_config(&mut config, json!({"tool_name": "add"})),
            Err(ToolConfigError::Exists)
        );
        update_tool_config(&mut config, "add", json!({"response_timeout_secs": 20})).unwrap();
        assert_eq!(tool_config(&config, "add").unwrap()["response_timeout_secs"], 20);
        assert_eq!(
            update_tool_config(&mut config, "nope", json!({})),
            Err(ToolConfigError::Missing)
        );
        assert!(matches!(
            update_tool_config(&mut config, "add", json!({"response_timeout_secs": 1})),
            Err(ToolConfigError::Invalid(_))
        ));
        assert!(remove_tool_config(&mut config, "add"));
        add_tool_config(
            &mut config,
            json!({"tool_name": "echo", "assignments": null, "pre_tool_speech": null}),
        )
        .unwrap();
        let stored = recheck(config).unwrap().config;
        let echo = tool_config(&stored, "echo").unwrap();
        assert_eq!(echo["assignments"], json!([]), "the response model's shape: {echo}");
        assert!(echo["pre_tool_speech"].is_null(), "not overridden: {echo}");
    }

    #[test]
    fn hosts_and_derived_ids() {
        assert_eq!(http_host("https://a.b:8/x"), Some(("a.b", true)));
        assert_eq!(http_host("http://u:p@[::1]:9/"), Some(("::1", false)));
        assert_eq!(http_host("http:///x"), None);
        let id = derived_tool_id("mcp_1", "add");
        assert!(id.as_str().starts_with("tool_mcp_") && id.as_str().len() == 33);
        assert_eq!(id, derived_tool_id("mcp_1", "add"));
        assert_ne!(id, derived_tool_id("mcp_2", "add"));
    }
}
