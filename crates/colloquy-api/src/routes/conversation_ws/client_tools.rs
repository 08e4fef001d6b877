//! Client tools and MCP approvals over the socket: a call goes out as `client_tool_call` (an
//! approval request as `mcp_tool_call` awaiting approval), and the client's answer, read by
//! the session's reading task, completes the call waiting for it by its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::protocol::{self, ServerEvent};
use colloquy_engine::tools::{
    ClientToolCall, ClientToolResult, ClientTools, McpCallEvent, McpCallState,
};
use serde_json::Value;
use tokio::sync::oneshot;

use super::outbox::Outbox;

/// Calls waiting for the client, by call id.
type Waiting<T> = Arc<Mutex<HashMap<String, oneshot::Sender<T>>>>;

/// Where the client's answers go: client tool results and MCP approvals, by call id.
#[derive(Clone, Default)]
pub(super) struct Replies {
    results: Waiting<(String, bool)>,
    approvals: Waiting<bool>,
}

impl Replies {
    /// A `client_tool_result`: its result (text, or JSON passed on as text).
    pub(super) fn tool_result(&self, tool_call_id: &str, result: Option<Value>, is_error: bool) {
        let result = match result {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        if let Some(waiter) = take(&self.results, tool_call_id) {
            let _ = waiter.send((result, is_error));
        }
    }

    /// An `mcp_tool_approval_result`.
    pub(super) fn approval(&self, tool_call_id: &str, approved: bool) {
        if let Some(waiter) = take(&self.approvals, tool_call_id) {
            let _ = waiter.send(approved);
        }
    }
}

fn take<T>(waiting: &Waiting<T>, id: &str) -> Option<oneshot::Sender<T>> {
    waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(id)
}

fn wait<T>(waiting: &Waiting<T>, id: &str) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), tx);
    rx
}

/// The engine's [`ClientTools`] over this socket.
pub(super) struct SocketClientTools {
    pub(super) outbox: Outbox,
    pub(super) replies: Replies,
}

#[async_trait]
impl ClientTools for SocketClientTools {
    async fn call(&self, call: ClientToolCall) -> ClientToolResult {
        let answer = call.expects_response.then(|| wait(&self.replies.results, &call.tool_call_id));
        self.outbox
            .send(ServerEvent::ClientToolCall {
                client_tool_call: protocol::ClientToolCall {
                    tool_name: call.tool_name,
                    tool_call_id: call.tool_call_id.clone(),
                    parameters: call.parameters,
                    event_id: self.outbox.event_id(),
                },
            })
            .await;
        let Some(answer) = answer else {
            return ClientToolResult::Sent;
        };
        let answer = tokio::time::timeout(call.timeout, answer).await;
        take(&self.replies.results, &call.tool_call_id);
        match answer {
            Ok(Ok((result, is_error))) => ClientToolResult::Answered { result, is_error },
            Ok(Err(_)) => ClientToolResult::Disconnected,
            Err(_) => ClientToolResult::TimedOut,
        }
    }

    async fn mcp_progress(&self, event: McpCallEvent) {
        self.outbox.send(mcp_tool_call(event)).await;
    }

    async fn approve_mcp(&self, event: McpCallEvent, timeout: Duration) -> Option<bool> {
        let id = event.tool_call_id.clone();
        let answer = wait(&self.replies.approvals, &id);
        self.outbox.send(mcp_tool_call(event)).await;
        let answer = tokio::time::timeout(timeout, answer).await;
        take(&self.replies.approvals, &id);
        answer.ok().and_then(Result::ok)
    }
}

/// The `mcp_tool_call` event of an MCP call's progress.
fn mcp_tool_call(event: McpCallEvent) -> ServerEvent {
    let mut call = protocol::McpToolCall {
        service_id: event.server_id,
        tool_call_id: event.tool_call_id,
        tool_name: event.tool_name,
        tool_description: event.tool_description,
        parameters: event.parameters,
        timestamp: colloquy_core::time::rfc3339_ms(colloquy_core::time::now_ms()),
        state: String::new(),
        approval_timeout_secs: None,
        result: None,
        error_message: None,
    };
    call.state = match event.state {
        McpCallState::Loading => "loading",
        McpCallState::AwaitingApproval(secs) => {
            call.approval_timeout_secs = Some(secs);
            "awaiting_approval"
        }
        McpCallState::Success(result) => {
            call.result = Some(result);
            "success"
        }
        McpCallState::Failure(message) => {
            call.error_message = Some(message);
            "failure"
        }
    }
    .to_owned();
    ServerEvent::McpToolCall { mcp_tool_call: call }
}
