//! Client tools run on the end user's device: the live connection (the WebSocket layer) sends
//! the call to the client and waits for its result. Without a client (simulations, tests) a
//! client tool can only be mocked.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{AgentTool, CallScope, CallStatus, ToolOutcome};
use crate::llm::ToolCall;

/// A call to hand to the client.
#[derive(Debug, Clone)]
pub struct ClientToolCall {
    /// Tool name.
    pub tool_name: String,
    /// The LLM's call id.
    pub tool_call_id: String,
    /// Arguments.
    pub parameters: Value,
    /// Whether the agent waits for a result.
    pub expects_response: bool,
    /// How long to wait.
    pub timeout: Duration,
}

/// What the client answered.
#[derive(Debug, Clone)]
pub enum ClientToolResult {
    /// A result (or a reported error).
    Answered {
        /// The result text.
        result: String,
        /// Whether the client reported an error.
        is_error: bool,
    },
    /// No answer in time.
    TimedOut,
    /// The call was sent and no answer is expected.
    Sent,
    /// The client is gone.
    Disconnected,
}

/// Where an MCP call stands, as the client's `mcp_tool_call` events show it.
#[derive(Debug, Clone, PartialEq)]
pub enum McpCallState {
    /// The call runs.
    Loading,
    /// The call waits for the user's approval, this many seconds at most.
    AwaitingApproval(u64),
    /// The call answered; its content blocks.
    Success(Value),
    /// The call failed, was denied or timed out.
    Failure(String),
}

/// One `mcp_tool_call` event.
#[derive(Debug, Clone, PartialEq)]
pub struct McpCallEvent {
    /// The MCP server (`service_id`).
    pub server_id: String,
    /// The LLM's call id.
    pub tool_call_id: String,
    /// The MCP tool's name.
    pub tool_name: String,
    /// Its description.
    pub tool_description: String,
    /// The arguments it is called with.
    pub parameters: Value,
    /// Where the call stands.
    pub state: McpCallState,
}

/// The live client of a conversation.
#[async_trait]
pub trait ClientTools: Send + Sync {
    /// Sends the call and, when a response is expected, waits for it.
    async fn call(&self, call: ClientToolCall) -> ClientToolResult;

    /// Shows the client how an MCP call is going.
    async fn mcp_progress(&self, event: McpCallEvent);

    /// Asks the user to approve an MCP call (`event` is in [`McpCallState::AwaitingApproval`])
    /// and waits for the answer; `None` when none came in time or the client left.
    async fn approve_mcp(&self, event: McpCallEvent, timeout: Duration) -> Option<bool>;
}

/// Runs a client tool through the conversation's client.
pub async fn call(
    scope: &CallScope<'_>, tool: &AgentTool, call: &ToolCall, args: &Value,
) -> ToolOutcome {
    let details = Some(json!({"type": "client", "parameters": args.to_string()}));
    let Some(client) = scope.client else {
        return ToolOutcome {
            details,
            ..ToolOutcome::error(
                CallStatus::Error,
                "customer_config",
                "No client is connected to run this client tool",
            )
        };
    };
    let expects_response =
        tool.config.get("expects_response").and_then(Value::as_bool).unwrap_or(false);
    let timeout = tool
        .config
        .get("response_timeout_secs")
        .and_then(Value::as_f64)
        .filter(|t| *t > 0.0)
        .map_or(Duration::from_secs(20), Duration::from_secs_f64);
    let request = ClientToolCall {
        tool_name: tool.name.clone(),
        tool_call_id: call.id.clone(),
        parameters: args.clone(),
        expects_response,
        timeout,
    };
    let outcome = match client.call(request).await {
        ClientToolResult::Answered { result, is_error: false } => ToolOutcome::ok(result),
        ClientToolResult::Answered { result, is_error: true } => {
            ToolOutcome::error(CallStatus::Error, "external_client", result)
        }
        ClientToolResult::Sent => ToolOutcome::ok("The client tool was called."),
        ClientToolResult::TimedOut => ToolOutcome::error(
            CallStatus::Timeout,
            "client_timeout",
            format!("The client did not answer within {timeout:?}"),
        ),
        ClientToolResult::Disconnected => {
            ToolOutcome::error(CallStatus::Error, "external_client", "The client disconnected")
        }
    };
    ToolOutcome { details, ..outcome }
}
