//! Tool calls: which tools an agent offers the LLM, and running one call — mocked or real —
//! with its record in the audit log made durable before the result is handed back.

pub mod assignments;
pub mod client;
mod knowledge;
pub(crate) mod mcp;
pub mod procedures;
mod system;
pub mod transfer;
mod webhook;

use std::time::Instant;

use colloquy_core::ids::{AgentId, ConversationId, ToolId, WorkspaceId};
use colloquy_core::tools::ToolKind;
use colloquy_core::{mocks, redact, time};
use colloquy_store::{StoreError, ToolExecution, ToolRow};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::llm::{ToolCall, ToolSpec};
use crate::{EngineDeps, judge};
pub use client::{ClientToolCall, ClientToolResult, ClientTools, McpCallEvent, McpCallState};

/// A tool as an agent offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentTool {
    /// The tool record's id, or a derived id for tools defined inside the agent.
    pub id: ToolId,
    /// Name the LLM calls it by.
    pub name: String,
    /// What it is.
    pub kind: ToolKind,
    /// The tool's `tool_config`.
    pub config: Value,
    /// The tool's own response mocks.
    pub response_mocks: Vec<Value>,
}

impl AgentTool {
    /// A workspace tool.
    pub fn from_row(row: &ToolRow) -> Option<AgentTool> {
        let doc: Value = serde_json::from_str(&row.document).ok()?;
        Some(AgentTool {
            id: row.id.clone(),
            name: row.name.clone(),
            kind: row.tool_type,
            config: doc.get("tool_config").cloned().unwrap_or(Value::Null),
            response_mocks: doc
                .get("response_mocks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// A tool defined inside the agent (`prompt.tools`, `built_in_tools`).
    pub fn inline(config: Value) -> Option<AgentTool> {
        let name = config.get("name")?.as_str()?.to_owned();
        let kind = match config.get("type").and_then(Value::as_str) {
            None => ToolKind::System,
            Some(kind) => ToolKind::parse(kind)?,
        };
        Some(AgentTool {
            id: ToolId::from(format!("tool_{kind}_{name}")),
            name,
            kind,
            config,
            response_mocks: Vec::new(),
        })
    }

    /// `params.system_tool_type` of a system tool (`""` for other kinds).
    pub fn system_type(&self) -> &str {
        if self.kind == ToolKind::System { system::system_type(&self.config) } else { "" }
    }

    /// How the tool is described to the LLM.
    pub fn spec(&self) -> ToolSpec {
        let description =
            self.config.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
        let parameters = match self.kind {
            ToolKind::Webhook => webhook::llm_parameters(&self.config),
            ToolKind::Client => self
                .config
                .get("parameters")
                .filter(|p| p.is_object())
                .cloned()
                .map(strip_internal)
                .unwrap_or_else(empty_object),
            ToolKind::System => system::parameters(&self.config),
            ToolKind::Mcp => mcp::llm_parameters(&self.config),
            ToolKind::ApiIntegrationWebhook => {
                self.config.get("parameters").cloned().unwrap_or_else(empty_object)
            }
        };
        ToolSpec { name: self.name.clone(), description, parameters }
    }
}

fn empty_object() -> Value {
    json!({"type": "object", "properties": {}})
}

/// Removes the keys of the reference's JSON-schema dialect that are not JSON schema
/// (`dynamic_variable`, `constant_value`, ...) and the properties filled by them.
pub(crate) fn strip_internal(mut schema: Value) -> Value {
    if let Some(obj) = schema.as_object_mut() {
        for key in [
            "dynamic_variable",
            "constant_value",
            "is_system_provided",
            "value_type",
            "allowed_values_dynamic_variable",
        ] {
            obj.remove(key);
        }
        if obj.get("enum").is_some_and(Value::is_null) {
            obj.remove("enum");
        }
        let mut filled = Vec::new();
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            props.retain(|name, p| {
                let auto = p
                    .get("dynamic_variable")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                    || p.get("constant_value").is_some_and(|c| !c.is_null() && c != "")
                    || p.get("is_system_provided").and_then(Value::as_bool) == Some(true);
                if auto {
                    filled.push(name.clone());
                }
                !auto
            });
            for p in props.values_mut() {
                *p = strip_internal(std::mem::take(p));
            }
        }
        if let Some(required) = obj.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| r.as_str().is_none_or(|r| !filled.iter().any(|f| f == r)));
        }
        if let Some(items) = obj.get_mut("items") {
            *items = strip_internal(std::mem::take(items));
        }
    }
    schema
}

/// Which calls are answered by mocks (`tool_mock_config`) and the run's own mocks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MockSettings {
    /// `none`, `all` or `selected`.
    pub mocking_strategy: String,
    /// Tools to mock under `selected`, by name.
    pub mocked_tool_names: Vec<String>,
    /// Tools to mock under `selected`, by id.
    pub mocked_tool_ids: Vec<String>,
    /// `raise_error` or `call_real_tool` when no mock matches.
    pub fallback_strategy: String,
    /// Mocks of this run, keyed by tool id or name, tried before the tool's own.
    #[serde(skip)]
    pub overrides: Option<Map<String, Value>>,
}

impl MockSettings {
    /// System tools act on the conversation itself and are never mocked.
    fn applies_to(&self, tool: &AgentTool) -> bool {
        if tool.kind == ToolKind::System {
            return false;
        }
        match self.mocking_strategy.as_str() {
            "all" => true,
            "selected" => {
                self.mocked_tool_names.contains(&tool.name)
                    || self.mocked_tool_ids.iter().any(|id| tool.id == id.as_str())
            }
            _ => false,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// The tool answered.
    Success,
    /// The tool failed or refused.
    Error,
    /// The tool did not answer in time.
    Timeout,
}

impl CallStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Success => "success",
            CallStatus::Error => "error",
            CallStatus::Timeout => "timeout",
        }
    }
}

/// What a system tool does to the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Effect {
    /// Nothing.
    #[default]
    None,
    /// End the conversation after this turn.
    EndCall,
    /// The agent stays silent this turn.
    SkipTurn,
    /// Switch to this language.
    Language(String),
    /// Hand over to another agent.
    Transfer(Box<transfer::Transfer>),
    /// Move to this node of the agent's workflow (an `llm` edge the LLM took).
    Node(String),
    /// Start or end a procedure.
    Procedure(procedures::Change),
}

/// The result of one call.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    /// What the LLM sees.
    pub result: String,
    /// What the audit log records as the response, when it is more than what the LLM sees
    /// (an MCP result's content blocks).
    pub payload: Option<String>,
    /// How it ended.
    pub status: CallStatus,
    /// Error category, if failed.
    pub error_type: Option<String>,
    /// What it does to the conversation.
    pub effect: Effect,
    /// Whether a mock answered.
    pub mocked: bool,
    /// `tool_call_details` (secrets redacted).
    pub details: Option<Value>,
    /// Secret values used by the call, scrubbed from what is recorded.
    pub(crate) secrets: Vec<String>,
    /// Duration in microseconds.
    pub latency_us: i64,
    /// Dynamic variables the response assigns (the tool's `assignments`).
    pub assigned: assignments::Assigned,
}

impl ToolOutcome {
    pub(crate) fn ok(result: impl Into<String>) -> ToolOutcome {
        ToolOutcome {
            result: result.into(),
            payload: None,
            status: CallStatus::Success,
            error_type: None,
            effect: Effect::None,
            mocked: false,
            details: None,
            secrets: Vec::new(),
            latency_us: 0,
            assigned: Vec::new(),
        }
    }

    pub(crate) fn error(
        status: CallStatus, error_type: &str, message: impl Into<String>,
    ) -> ToolOutcome {
        ToolOutcome { status, error_type: Some(error_type.into()), ..ToolOutcome::ok(message) }
    }

    /// Whether the call failed.
    pub fn is_error(&self) -> bool {
        self.status != CallStatus::Success
    }
}

/// Where a call happens.
pub struct CallScope<'a> {
    /// Engine dependencies.
    pub deps: &'a EngineDeps,
    /// The conversation's workspace.
    pub workspace_id: &'a WorkspaceId,
    /// The conversation.
    pub conversation_id: &'a ConversationId,
    /// The agent.
    pub agent_id: &'a AgentId,
    /// Its branch.
    pub branch_id: Option<&'a str>,
    /// The environment whose values environment variables take.
    pub environment: &'a str,
    /// The agent's model, for LLM-judged mock conditions.
    pub model: &'a str,
    /// Dynamic variables of the conversation.
    pub vars: &'a Map<String, Value>,
    /// Mocking of this run.
    pub mocks: &'a MockSettings,
    /// The live client, for client tools and MCP approvals.
    pub client: Option<&'a dyn ClientTools>,
    /// The conversation's MCP connections.
    pub mcp: Option<&'a crate::mcp::pool::McpPool>,
    /// The agent's knowledge-base documents, for its search tools.
    pub documents: &'a [colloquy_core::ids::DocumentId],
    /// The agent's procedures and the active ones, for the procedure tools.
    pub procedures: procedures::Procedures<'a>,
}

/// A call's arguments: a JSON object (nothing at all counts as none). Anything else is the
/// model's mistake, answered as a failed call that says what was wrong, so the model can try
/// again, instead of running the tool without its arguments.
fn arguments(call: &ToolCall) -> Result<Value, String> {
    if call.arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(args) if args.is_object() => Ok(args),
        Ok(_) => Err(format!(
            "The arguments of the call of {:?} are not a JSON object: {}",
            call.name, call.arguments
        )),
        Err(e) => {
            Err(format!("The call of {:?} is not valid JSON ({e}): {}", call.name, call.arguments))
        }
    }
}

/// Runs one call of `tool` (mocked or real; `None` when the agent has no tool of the called
/// name), records it durably, and returns its outcome; its span carries the audit record's id. An error means the record could not be
/// written: the caller must not report the call as done.
#[tracing::instrument(name = "tool.call", skip_all, fields(
    otel.name = %format!("execute_tool {}", call.name),
    gen_ai.operation.name = "execute_tool",
    gen_ai.tool.name = %call.name,
    gen_ai.tool.call.id = %call.id,
    conversation = %scope.conversation_id,
    colloquy.tool.type = tool.map_or("unknown", |t| t.kind.as_str()),
    colloquy.tool.status = tracing::field::Empty,
    colloquy.audit.id = tracing::field::Empty,
    otel.status_code = tracing::field::Empty,
))]
pub async fn execute(
    scope: &CallScope<'_>, tool: Option<&AgentTool>, call: &ToolCall,
) -> Result<ToolOutcome, StoreError> {
    let started_ms = time::now_ms();
    let started = Instant::now();
    let mut outcome = match (tool, arguments(call)) {
        (_, Err(message)) => ToolOutcome::error(CallStatus::Error, "llm_tool_call", message),
        (Some(tool), Ok(args)) => match mocked(scope, tool, &args).await {
            Some(outcome) => outcome,
            None => run(scope, tool, call, &args).await,
        },
        (None, Ok(_)) => ToolOutcome::error(
            CallStatus::Error,
            "customer_config",
            format!("This agent has no tool named {:?}", call.name),
        ),
    };
    outcome.latency_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
    if let Some(tool) = tool.filter(|_| !outcome.is_error()) {
        let (assigned, sanitized) = assignments::take(&tool.config, &outcome.result);
        outcome.assigned = assigned;
        if let Some(clean) = sanitized {
            // What was taken out is in neither what the LLM sees nor what the log records.
            outcome.result = clean;
            outcome.payload = None;
        }
    }
    let audit_id = record(scope, tool, call, &outcome, started_ms).await?;
    let span = tracing::Span::current();
    span.record("colloquy.tool.status", outcome.status.as_str());
    span.record("colloquy.audit.id", audit_id.as_str());
    if outcome.is_error() {
        span.record("otel.status_code", "ERROR");
    }
    Ok(outcome)
}

/// A call of a workspace tool made by hand, outside any conversation (the dashboard's "test
/// this tool"): run as a conversation would run it (the same egress guard, secrets, timeout
/// and response limit), with `environment`'s values, and recorded in the audit log like any
/// call, under a conversation id of its own and no agent, so it shows in the tool's log as a
/// test. Only webhooks can be called this way: a client tool runs in a live client, and an MCP
/// tool through a conversation's connection to its server.
pub async fn call_by_hand(
    deps: &EngineDeps, workspace_id: &WorkspaceId, row: &ToolRow, arguments: &Value,
    environment: &str,
) -> Result<(ToolOutcome, ConversationId), ByHandError> {
    let tool = AgentTool::from_row(row)
        .filter(|t| t.kind == ToolKind::Webhook)
        .ok_or(ByHandError::NotCallable(row.tool_type))?;
    let conversation_id = ConversationId::generate();
    let agent_id = AgentId::from(String::new());
    let vars = Map::new();
    let scope = CallScope {
        deps,
        workspace_id,
        conversation_id: &conversation_id,
        agent_id: &agent_id,
        branch_id: None,
        environment,
        model: "",
        vars: &vars,
        mocks: &MockSettings::default(),
        client: None,
        mcp: None,
        documents: &[],
        procedures: procedures::Procedures { available: &[], active: &[] },
    };
    let call = ToolCall {
        id: colloquy_core::ids::new_id("call_"),
        name: tool.name.clone(),
        arguments: arguments.to_string(),
    };
    let mut outcome = execute(&scope, Some(&tool), &call).await?;
    // What is shown is what the log holds: no secret the call used, even one echoed back.
    outcome.result = redact::scrub(&outcome.result, &outcome.secrets);
    outcome.payload = outcome.payload.map(|p| redact::scrub(&p, &outcome.secrets));
    Ok((outcome, conversation_id))
}

/// Why a call by hand was not made.
#[derive(Debug, thiserror::Error)]
pub enum ByHandError {
    /// Not a webhook.
    #[error("a {0} tool cannot be called outside a conversation: only webhooks can")]
    NotCallable(ToolKind),
    /// The record could not be written (the call's outcome is then unknown to the log).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The real call, by the tool's kind.
async fn run(
    scope: &CallScope<'_>, tool: &AgentTool, call: &ToolCall, args: &Value,
) -> ToolOutcome {
    match tool.kind {
        ToolKind::Webhook => webhook::call(scope, tool, args).await,
        ToolKind::Client => client::call(scope, tool, call, args).await,
        ToolKind::System => match system::system_type(&tool.config) {
            "knowledge_base_rag" => knowledge::call(scope, args, knowledge::RAG).await,
            "knowledge_base" => knowledge::call(scope, args, knowledge::SEARCH).await,
            "start_procedure" => procedures::start(tool, args, scope.procedures),
            "end_procedure" => procedures::end(tool, args, scope.procedures),
            "transfer_to_agent" => transfer::call(scope, tool, args).await,
            crate::workflow::TRANSITION => crate::workflow::transition(tool),
            _ => system::call(tool, args),
        },
        ToolKind::Mcp => mcp::call(scope, tool, call, args).await,
        ToolKind::ApiIntegrationWebhook => ToolOutcome::error(
            CallStatus::Error,
            "customer_config",
            "API integration webhooks cannot be called on this server",
        ),
    }
}

/// The mock answer, when this run mocks the tool; a mocked tool with no matching mock either
/// fails or falls through to the real tool, as `fallback_strategy` says.
async fn mocked(scope: &CallScope<'_>, tool: &AgentTool, args: &Value) -> Option<ToolOutcome> {
    if !scope.mocks.applies_to(tool) {
        return None;
    }
    let candidates = mocks::applicable(
        tool.id.as_str(),
        &tool.name,
        scope.mocks.overrides.as_ref(),
        &tool.response_mocks,
    );
    let parsed: Vec<mocks::Mock> =
        candidates.iter().filter_map(|m| mocks::Mock::parse(m, &[]).ok()).collect();
    let judge = |description: String, value: Value| async move {
        judge::holds(scope.deps, scope.model, &description, &value).await
    };
    match mocks::select(&parsed, args, judge).await {
        Some(mock) => {
            let status = if mock.is_error { CallStatus::Error } else { CallStatus::Success };
            Some(ToolOutcome {
                mocked: true,
                error_type: mock.is_error.then(|| "mocked".into()),
                ..ToolOutcome { status, ..ToolOutcome::ok(mock.result.clone()) }
            })
        }
        None if scope.mocks.fallback_strategy == "call_real_tool" => None,
        None => Some(ToolOutcome {
            mocked: true,
            ..ToolOutcome::error(
                CallStatus::Error,
                "mock_not_found",
                format!("No mock of tool {} matches these arguments", tool.name),
            )
        }),
    }
}

/// Writes the call's audit record and waits until it is durable.
async fn record(
    scope: &CallScope<'_>, tool: Option<&AgentTool>, call: &ToolCall, outcome: &ToolOutcome,
    started_ms: i64,
) -> Result<String, StoreError> {
    let scrub = |text: &str| redact::scrub(text, &outcome.secrets);
    let record = ToolExecution {
        id: colloquy_core::ids::new_uuid(),
        workspace_id: scope.workspace_id.clone(),
        tool_id: tool.map_or_else(|| ToolId::from("tool_unknown"), |t| t.id.clone()),
        tool_name: call.name.clone(),
        tool_type: tool.map_or("unknown", |t| t.kind.as_str()).to_owned(),
        tool_request_id: call.id.clone(),
        conversation_id: scope.conversation_id.clone(),
        agent_id: scope.agent_id.clone(),
        branch_id: scope.branch_id.map(str::to_owned),
        timestamp_ms: started_ms,
        latency_us: outcome.latency_us,
        status: outcome.status.as_str().to_owned(),
        is_error: outcome.is_error(),
        error_type: outcome.error_type.clone(),
        error_message: outcome.is_error().then(|| scrub(&outcome.result)),
        request_payload: Some(scrub(&call.arguments)),
        response_payload: Some(scrub(outcome.payload.as_deref().unwrap_or(&outcome.result))),
        tool_call_details: outcome.details.as_ref().map(|d| scrub(&d.to_string())),
    };
    let id = record.id.clone();
    scope.deps.audit.record(record).await.inspect_err(|e| {
        tracing::error!(error = %e, tool = %call.name, "could not record a tool call");
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(arguments: &str) -> ToolCall {
        ToolCall { id: "c".into(), name: "book".into(), arguments: arguments.into() }
    }

    #[test]
    fn arguments_must_be_an_object_or_nothing() {
        assert_eq!(arguments(&call("")), Ok(json!({})));
        assert_eq!(arguments(&call(r#"{"day": 2}"#)), Ok(json!({"day": 2})));
        let broken = arguments(&call(r#"{"day": "#)).unwrap_err();
        assert!(
            broken.contains("\"book\" is not valid JSON") && broken.contains(r#"{"day": "#),
            "{broken}"
        );
        let list = arguments(&call("[1, 2]")).unwrap_err();
        assert!(list.contains("not a JSON object"), "{list}");
    }
}
