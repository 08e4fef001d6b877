//! MCP tools: how a server's tools are offered to the LLM (with the server's per-tool config
//! overrides), and running one call — approval by the live client when the server's policy
//! asks for it, `mcp_tool_call` progress events, the call itself with its timeout.
//!
//! Where no client can approve (simulations, test runs), a call that needs approval is denied
//! and recorded as an error; mocked calls never get here (mocks answer first).

use std::collections::BTreeSet;
use std::time::Duration;

use colloquy_core::ids::ToolId;
use colloquy_core::mcp_servers::{self, Approval};
use colloquy_core::tools::ToolKind;
use rmcp::model::{CallToolResult, Tool};
use serde_json::{Map, Value, json};

use super::client::{McpCallEvent, McpCallState};
use super::{AgentTool, CallScope, CallStatus, ToolOutcome};
use crate::llm::ToolCall;
use crate::mcp::{McpError, ServerSpec};

fn text<'a>(config: &'a Value, key: &str) -> &'a str {
    config.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A tool a server listed, as the agent offers it: a `type: "mcp"` tool config in the
/// reference's shape, so listed tools and tool records run the same way.
pub fn offered(server: &ServerSpec, tool: &Tool, id: ToolId, llm_name: String) -> AgentTool {
    let schema = Value::Object((*tool.input_schema).clone());
    let description = tool.description.as_deref().unwrap_or_default().to_owned();
    AgentTool {
        id,
        name: llm_name,
        kind: ToolKind::Mcp,
        config: json!({
            "type": "mcp",
            "name": tool.name,
            "description": description,
            "parameters": schema,
            "integration_type": "mcp_server",
            "approval_policy": server.config.get("approval_policy").cloned().unwrap_or_else(|| json!("require_approval_all")),
            "mcp_tool_name": tool.name,
            "mcp_tool_description": description,
            "mcp_server_id": server.id,
            "mcp_server_name": server.name,
            "mcp_input_schema": schema,
            "response_timeout_secs": server.timeout.as_secs(),
        }),
        response_mocks: Vec::new(),
    }
}

/// Applies the server's config override for this tool (`tool_config_overrides`): timeout,
/// input overrides and response mocks.
pub fn apply_server_overrides(tool: &mut AgentTool, server_config: &Map<String, Value>) {
    let name = text(&tool.config, "mcp_tool_name").to_owned();
    let Some(o) = mcp_servers::tool_config(server_config, &name) else {
        return;
    };
    if let Some(secs) = o.get("response_timeout_secs").filter(|v| v.is_u64()) {
        tool.config["response_timeout_secs"] = secs.clone();
    }
    if let Some(inputs) = o.get("input_overrides").filter(|v| v.is_object()) {
        tool.config["input_overrides"] = inputs.clone();
    }
    if let Some(mocks) = o.get("response_mocks").and_then(Value::as_array) {
        let mut all = mocks.clone();
        all.append(&mut tool.response_mocks);
        tool.response_mocks = all;
    }
}

/// A name the LLM accepts (`[a-zA-Z0-9_-]{1,64}`) for an MCP tool, unique among `taken`.
pub fn llm_name(tool: &str, server: &str, taken: &BTreeSet<String>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect()
    };
    let mut name: String = clean(tool).chars().take(64).collect();
    if name.is_empty() {
        name = "tool".into();
    }
    if taken.contains(&name) {
        name = format!("{}_{}", clean(server), clean(tool)).chars().take(64).collect();
    }
    let base = name.clone();
    let mut n = 2;
    while taken.contains(&name) {
        let suffix = format!("_{n}");
        name = base.chars().take(64 - suffix.len()).collect::<String>() + &suffix;
        n += 1;
    }
    name
}

/// Where an input override applies: `a.b` is property `b` of property `a`.
fn path(key: &str) -> Vec<&str> {
    key.split('.').filter(|p| !p.is_empty()).collect()
}

/// The schema offered to the LLM: parameters filled by input overrides (constants, dynamic
/// variables, omitted) are not the LLM's to give.
pub fn llm_parameters(config: &Value) -> Value {
    let mut schema = config
        .get("parameters")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    for (key, o) in config.get("input_overrides").and_then(Value::as_object).into_iter().flatten() {
        let steps = path(key);
        let Some((last, parents)) = steps.split_last() else {
            continue;
        };
        let parent: String = parents
            .iter()
            .map(|p| format!("/properties/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect();
        let Some(node) = schema.pointer_mut(&parent) else {
            continue;
        };
        if o.get("source").and_then(Value::as_str) == Some("llm") {
            // The LLM fills it, told what to put there by the override's own prompt.
            let prompt = o.get("prompt").and_then(Value::as_str).filter(|p| !p.trim().is_empty());
            if let (Some(prompt), Some(property)) = (
                prompt,
                node.pointer_mut(&format!(
                    "/properties/{}",
                    last.replace('~', "~0").replace('/', "~1")
                )),
            ) && let Some(property) = property.as_object_mut()
            {
                property.insert("description".into(), Value::String(prompt.to_owned()));
            }
            continue;
        }
        if let Some(props) = node.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove(*last);
        }
        if let Some(required) = node.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| r.as_str() != Some(*last));
        }
    }
    super::strip_internal(schema)
}

/// The arguments sent to the server: the LLM's, with the input overrides applied.
fn arguments(args: &Value, config: &Value, vars: &Map<String, Value>) -> Map<String, Value> {
    let mut out = args.as_object().cloned().unwrap_or_default();
    for (key, o) in config.get("input_overrides").and_then(Value::as_object).into_iter().flatten() {
        let value = match o.get("source").and_then(Value::as_str) {
            Some("constant") => Some(o.get("constant_value").cloned().unwrap_or(Value::Null)),
            Some("dynamic_variable") => {
                let name = text(o, "dynamic_variable");
                match vars.get(name) {
                    Some(v) => Some(v.clone()),
                    None => continue,
                }
            }
            Some("omit") => None,
            _ => continue,
        };
        set_path(&mut out, &path(key), value);
    }
    out
}

/// Sets (or with `None` removes) the value at `steps`, creating objects on the way.
fn set_path(map: &mut Map<String, Value>, steps: &[&str], value: Option<Value>) {
    match steps {
        [] => {}
        [last] => match value {
            Some(v) => {
                map.insert((*last).to_owned(), v);
            }
            None => {
                map.remove(*last);
            }
        },
        [first, rest @ ..] => {
            let next = map.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Some(object) = next.as_object_mut() {
                set_path(object, rest, value);
            }
        }
    }
}

/// What the LLM reads of a result: its text blocks, else its structured content, else the
/// blocks as JSON.
fn result_text(result: &CallToolResult) -> String {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect();
    if !texts.is_empty() {
        return texts.join("\n");
    }
    match &result.structured_content {
        Some(structured) => structured.to_string(),
        None => serde_json::to_string(&result.content).unwrap_or_default(),
    }
}

/// One call of an MCP tool, as its config and the LLM's arguments make it.
struct McpCall<'a> {
    server_id: &'a str,
    mcp_name: &'a str,
    description: &'a str,
    policy: &'a str,
    arguments: Map<String, Value>,
    call_id: &'a str,
}

impl<'a> McpCall<'a> {
    fn of(scope: &CallScope<'_>, tool: &'a AgentTool, call: &'a ToolCall, args: &Value) -> Self {
        let config = &tool.config;
        let or =
            |value: &'a str, fallback: &'a str| if value.is_empty() { fallback } else { value };
        McpCall {
            server_id: text(config, "mcp_server_id"),
            mcp_name: or(text(config, "mcp_tool_name"), &tool.name),
            description: or(text(config, "mcp_tool_description"), text(config, "description")),
            policy: or(text(config, "approval_policy"), "require_approval_all"),
            arguments: arguments(args, config, scope.vars),
            call_id: &call.id,
        }
    }

    /// `tool_call_details` of the record (`requires_approval` is set once it is known).
    fn details(&self, config: &Value) -> Value {
        let parameters: Map<String, Value> = self
            .arguments
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), json!(text))
            })
            .collect();
        json!({
            "type": "mcp",
            "mcp_server_id": self.server_id,
            "mcp_server_name": text(config, "mcp_server_name"),
            "integration_type": "mcp_server",
            "parameters": parameters,
            "approval_policy": self.policy,
            "requires_approval": false,
            "mcp_tool_name": self.mcp_name,
            "mcp_tool_description": self.description,
        })
    }

    /// An `mcp_tool_call` event of this call.
    fn event(&self, state: McpCallState) -> McpCallEvent {
        McpCallEvent {
            server_id: self.server_id.to_owned(),
            tool_call_id: self.call_id.to_owned(),
            tool_name: self.mcp_name.to_owned(),
            tool_description: self.description.to_owned(),
            parameters: Value::Object(self.arguments.clone()),
            state,
        }
    }
}

/// Runs one call of an MCP tool.
pub async fn call(
    scope: &CallScope<'_>, tool: &AgentTool, call: &ToolCall, args: &Value,
) -> ToolOutcome {
    let mcp = McpCall::of(scope, tool, call, args);
    let mut details = mcp.details(&tool.config);
    let (outcome, secrets) = run(scope, &tool.config, &mcp, &mut details).await;
    ToolOutcome { details: Some(details), secrets, ..outcome }
}

/// The call through the conversation's pool, approved first where the policy asks; the
/// outcome and the secrets the server's configuration used.
async fn run(
    scope: &CallScope<'_>, config: &Value, mcp: &McpCall<'_>, details: &mut Value,
) -> (ToolOutcome, Vec<String>) {
    let failed = |message: String| ToolOutcome::error(CallStatus::Error, "mcp_tool_error", message);
    let Some(pool) = scope.mcp else {
        return (failed("This conversation has no MCP connections".into()), Vec::new());
    };
    let spec = match pool.spec(mcp.server_id) {
        Ok(spec) => spec,
        Err(e) => return (failed(e.to_string()), Vec::new()),
    };
    let secrets = spec.secrets.clone();
    let timeout = config
        .get("response_timeout_secs")
        .and_then(Value::as_u64)
        .map_or(spec.timeout, Duration::from_secs);
    let schema = config
        .get("mcp_input_schema")
        .filter(|s| s.is_object())
        .or_else(|| config.get("parameters"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let hash = mcp_servers::tool_hash(mcp.description, &schema);
    let needs_approval = mcp_servers::approval_for(mcp.policy, &spec.config, mcp.mcp_name, &hash)
        == Approval::Required;
    details["requires_approval"] = json!(needs_approval);
    if needs_approval && let Err(refused) = approve(scope, mcp, timeout).await {
        return (refused, secrets);
    }
    if let Some(client) = scope.client {
        client.mcp_progress(mcp.event(McpCallState::Loading)).await;
    }
    let result = pool
        .call(mcp.server_id, mcp.mcp_name, mcp.arguments.clone(), spec.meta.clone(), timeout)
        .await;
    let (outcome, state) = outcome_of(result, scope.deps.limits.webhook_max_response_bytes);
    if let Some(client) = scope.client {
        let state = match state {
            McpCallState::Failure(m) => {
                McpCallState::Failure(colloquy_core::redact::scrub(&m, &secrets))
            }
            other => other,
        };
        client.mcp_progress(mcp.event(state)).await;
    }
    (outcome, secrets)
}

/// Asks the live client to approve the call; the outcome to record when it is not approved
/// (denied, not answered in time, or no client to ask).
async fn approve(
    scope: &CallScope<'_>, mcp: &McpCall<'_>, timeout: Duration,
) -> Result<(), ToolOutcome> {
    let Some(client) = scope.client else {
        return Err(ToolOutcome::error(
            CallStatus::Error,
            "approval_required",
            "This MCP tool call needs the user's approval, and no client can give it in this conversation",
        ));
    };
    let waiting = mcp.event(McpCallState::AwaitingApproval(timeout.as_secs()));
    let refused = match client.approve_mcp(waiting, timeout).await {
        Some(true) => return Ok(()),
        Some(false) => ToolOutcome::error(
            CallStatus::Error,
            "approval_denied",
            "The user denied this MCP tool call",
        ),
        None => ToolOutcome::error(
            CallStatus::Timeout,
            "approval_timeout",
            format!("The user did not approve this MCP tool call within {timeout:?}"),
        ),
    };
    client.mcp_progress(mcp.event(McpCallState::Failure(refused.result.clone()))).await;
    Err(refused)
}

/// The outcome of the server's answer, and the state the client is told.
/// The call's outcome. An answer larger than `limit` bytes (the bound on webhook answers) is
/// an error, as a webhook's is: a server that floods must not fill the transcript, the audit
/// log and the LLM's context.
fn outcome_of(
    result: Result<CallToolResult, McpError>, limit: usize,
) -> (ToolOutcome, McpCallState) {
    match result {
        Ok(result) => {
            let payload = serde_json::to_string(&result).ok();
            if payload.as_ref().is_some_and(|p| p.len() > limit) {
                let message = format!("The MCP server's answer is larger than {limit} bytes");
                return (
                    ToolOutcome::error(
                        CallStatus::Error,
                        "mcp_response_too_large",
                        message.clone(),
                    ),
                    McpCallState::Failure(message),
                );
            }
            let text = result_text(&result);
            if result.is_error == Some(true) {
                let outcome = ToolOutcome::error(CallStatus::Error, "mcp_tool_error", text.clone());
                (ToolOutcome { payload, ..outcome }, McpCallState::Failure(text))
            } else {
                let content = serde_json::to_value(&result.content).unwrap_or_default();
                let outcome = ToolOutcome::ok(text);
                (ToolOutcome { payload, ..outcome }, McpCallState::Success(content))
            }
        }
        Err(McpError::Timeout(waited)) => {
            let message = format!("The MCP server did not answer within {waited:?}");
            (
                ToolOutcome::error(CallStatus::Timeout, "mcp_timeout", message.clone()),
                McpCallState::Failure(message),
            )
        }
        Err(e) => {
            let message = format!("The MCP server failed: {e}");
            (
                ToolOutcome::error(CallStatus::Error, "mcp_tool_error", message.clone()),
                McpCallState::Failure(message),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use colloquy_core::testing::arb_json;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    #[test]
    fn names_are_llm_safe_and_unique() {
        let taken: BTreeSet<String> = ["add".to_owned()].into();
        assert_eq!(llm_name("get.sum", "s", &taken), "get_sum");
        assert_eq!(llm_name("add", "my server", &taken), "my_server_add");
        let long = "x".repeat(100);
        assert_eq!(llm_name(&long, "s", &taken).len(), 64);
    }

    #[test]
    fn an_llm_override_tells_the_llm_its_own_prompt() {
        let config = json!({
            "parameters": {"type": "object", "properties": {
                "q": {"type": "string", "description": "query"},
                "opts": {"type": "object", "properties": {"lang": {"type": "string", "description": "language"}}},
                "k": {"type": "integer"}}},
            "input_overrides": {
                "q": {"source": "llm", "prompt": "The customer's question, in English"},
                "opts.lang": {"source": "llm", "prompt": "ISO 639-1 code"},
                "k": {"source": "llm"}}
        });
        let offered = llm_parameters(&config);
        assert_eq!(
            offered["properties"]["q"]["description"],
            "The customer's question, in English"
        );
        assert_eq!(
            offered["properties"]["opts"]["properties"]["lang"]["description"],
            "ISO 639-1 code"
        );
        assert_eq!(
            offered["properties"]["k"],
            json!({"type": "integer"}),
            "no prompt: as declared"
        );
    }

    proptest! {
        #[test]
        fn fuzz_input_overrides_never_panic(args in arb_json(), overrides in arb_json(), params in arb_json()) {
            let config = json!({"parameters": params, "input_overrides": overrides});
            let _ = llm_parameters(&config);
            let _ = arguments(&args, &config, &Map::new());
        }

        #[test]
        fn fuzz_constants_always_reach_the_server(args in arb_json(), key in "[a-z]{1,6}(\\.[a-z]{1,6})?", constant in arb_json()) {
            let config = json!({"input_overrides": {key.clone(): {"source": "constant", "constant_value": constant.clone()}}});
            let sent = Value::Object(arguments(&args, &config, &Map::new()));
            let pointer = format!("/{}", key.replace('.', "/"));
            let parent_is_object = match key.split_once('.') {
                Some((first, _)) => args.get(first).is_none_or(Value::is_object),
                None => true,
            };
            if parent_is_object {
                prop_assert_eq!(sent.pointer(&pointer), Some(&constant));
            }
        }

        #[test]
        fn fuzz_names_are_always_valid(tool in "\\PC{0,80}", server in "\\PC{0,20}") {
            let name = llm_name(&tool, &server, &BTreeSet::new());
            prop_assert!(!name.is_empty() && name.len() <= 64);
            prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }
}
