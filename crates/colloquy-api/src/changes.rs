//! Recording the change log: every successful create, update and delete of agents, tools,
//! tests and their folders, MCP servers, secrets and webhooks, with who made it and which JSON paths
//! the request wrote.
//!
//! One layer around the routes does it, from a table of the write routes, rather than a line
//! in each handler: a handler added to the table is logged, and one cannot forget to. The
//! caller is learnt from the [`auth::Caller`](crate::auth::Caller) extractor through an
//! [`ActorSlot`] the layer puts in the request, so the key is looked up once. Paths, never
//! values, are kept: a secret's value cannot reach the log.

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts as _, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use colloquy_store::ChangeRow;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// Who made the request, filled in by the `Caller` extractor.
#[derive(Debug, Clone, Default)]
pub struct ActorSlot(Arc<OnceLock<Actor>>);

/// The key and user behind a request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The API key's id.
    pub key_id: String,
    /// The key's user.
    pub user_id: String,
    /// The key's workspace.
    pub workspace_id: String,
}

impl ActorSlot {
    /// Records the request's caller (the first call wins).
    pub fn fill(&self, actor: Actor) {
        let _ = self.0.set(actor);
    }
}

/// Where the id of the changed resource is.
#[derive(Clone, Copy)]
enum IdFrom {
    /// A path parameter.
    Path(&'static str),
    /// A field of the answer (creates).
    Answer(&'static str),
    /// Each string of a list in the request (bulk operations).
    BodyList(&'static str),
}

/// One logged write route: method, route template, resource type, operation, id.
type Logged = (Method, &'static str, &'static str, &'static str, IdFrom);

/// The logged write routes.
const LOGGED: &[Logged] = &[
    (Method::POST, "/v1/convai/agents/create", "agent", "create", IdFrom::Answer("agent_id")),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/duplicate",
        "agent",
        "create",
        IdFrom::Answer("agent_id"),
    ),
    (Method::PATCH, "/v1/convai/agents/{agent_id}", "agent", "update", IdFrom::Path("agent_id")),
    (Method::DELETE, "/v1/convai/agents/{agent_id}", "agent", "delete", IdFrom::Path("agent_id")),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/branches",
        "agent_branch",
        "create",
        IdFrom::Answer("created_branch_id"),
    ),
    (
        Method::PATCH,
        "/v1/convai/agents/{agent_id}/branches/{branch_id}",
        "agent_branch",
        "update",
        IdFrom::Path("branch_id"),
    ),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/branches/{source_branch_id}/merge",
        "agent",
        "update",
        IdFrom::Path("agent_id"),
    ),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/branches/{branch_id}/rebase",
        "agent_branch",
        "update",
        IdFrom::Path("branch_id"),
    ),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/deployments",
        "agent",
        "update",
        IdFrom::Path("agent_id"),
    ),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/drafts",
        "agent",
        "update",
        IdFrom::Path("agent_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/agents/{agent_id}/drafts",
        "agent",
        "update",
        IdFrom::Path("agent_id"),
    ),
    (
        Method::POST,
        "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures",
        "procedure",
        "create",
        IdFrom::Answer("procedure_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}",
        "procedure",
        "delete",
        IdFrom::Path("procedure_id"),
    ),
    (
        Method::PATCH,
        "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}/draft",
        "procedure",
        "update",
        IdFrom::Path("procedure_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}/draft",
        "procedure",
        "update",
        IdFrom::Path("procedure_id"),
    ),
    (Method::POST, "/v1/convai/tools", "tool", "create", IdFrom::Answer("id")),
    (Method::PATCH, "/v1/convai/tools/{tool_id}", "tool", "update", IdFrom::Path("tool_id")),
    (Method::DELETE, "/v1/convai/tools/{tool_id}", "tool", "delete", IdFrom::Path("tool_id")),
    (Method::POST, "/v1/convai/agent-testing/create", "test", "create", IdFrom::Answer("id")),
    (Method::PUT, "/v1/convai/agent-testing/{test_id}", "test", "update", IdFrom::Path("test_id")),
    (
        Method::DELETE,
        "/v1/convai/agent-testing/{test_id}",
        "test",
        "delete",
        IdFrom::Path("test_id"),
    ),
    (
        Method::POST,
        "/v1/convai/agent-testing/bulk-move",
        "test",
        "update",
        IdFrom::BodyList("entity_ids"),
    ),
    (
        Method::POST,
        "/v1/convai/agent-testing/folders",
        "test_folder",
        "create",
        IdFrom::Answer("id"),
    ),
    (
        Method::PATCH,
        "/v1/convai/agent-testing/folders/{folder_id}",
        "test_folder",
        "update",
        IdFrom::Path("folder_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/agent-testing/folders/{folder_id}",
        "test_folder",
        "delete",
        IdFrom::Path("folder_id"),
    ),
    (Method::POST, "/v1/convai/mcp-servers", "mcp_server", "create", IdFrom::Answer("id")),
    (
        Method::PATCH,
        "/v1/convai/mcp-servers/{mcp_server_id}",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/mcp-servers/{mcp_server_id}",
        "mcp_server",
        "delete",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::PATCH,
        "/v1/convai/mcp-servers/{mcp_server_id}/approval-policy",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::POST,
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-approvals",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-approvals/{tool_name}",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::POST,
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::PATCH,
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs/{tool_name}",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs/{tool_name}",
        "mcp_server",
        "update",
        IdFrom::Path("mcp_server_id"),
    ),
    (Method::POST, "/v1/convai/secrets", "secret", "create", IdFrom::Answer("secret_id")),
    (
        Method::PATCH,
        "/v1/convai/secrets/{secret_id}",
        "secret",
        "update",
        IdFrom::Path("secret_id"),
    ),
    (
        Method::DELETE,
        "/v1/convai/secrets/{secret_id}",
        "secret",
        "delete",
        IdFrom::Path("secret_id"),
    ),
    (Method::POST, "/v1/workspace/webhooks", "webhook", "create", IdFrom::Answer("webhook_id")),
    (
        Method::PATCH,
        "/v1/workspace/webhooks/{webhook_id}",
        "webhook",
        "update",
        IdFrom::Path("webhook_id"),
    ),
    (
        Method::DELETE,
        "/v1/workspace/webhooks/{webhook_id}",
        "webhook",
        "delete",
        IdFrom::Path("webhook_id"),
    ),
];

/// The largest answer read to learn a created resource's id; answers to writes are far
/// smaller.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Most paths kept per change, and how deep they go: enough to say what changed.
const MAX_PATHS: usize = 200;
const MAX_DEPTH: usize = 8;

/// The layer: runs the request and, when it changed a logged resource, records the change.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let entry = request.extensions().get::<MatchedPath>().and_then(|route| {
        LOGGED.iter().find(|(m, r, ..)| m == request.method() && *r == route.as_str())
    });
    let Some((_, _, resource_type, operation, id_from)) = entry else {
        return next.run(request).await;
    };
    let slot = ActorSlot::default();
    let (mut parts, body) = request.into_parts();
    let params: Vec<(String, String)> = RawPathParams::from_request_parts(&mut parts, &state)
        .await
        .map(|p| p.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();
    parts.extensions.insert(slot.clone());
    let Ok(body) = to_bytes(body, state.settings.max_body_bytes).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let written: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let Some(actor) = slot.0.get().cloned().filter(|_| response.status().is_success()) else {
        return response;
    };
    let (response, ids) = match id_from {
        IdFrom::Path(name) => {
            let id = params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            (response, id.into_iter().collect())
        }
        IdFrom::BodyList(field) => {
            let ids = written[*field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            (response, ids)
        }
        IdFrom::Answer(field) => {
            let (parts, body) = response.into_parts();
            let bytes = to_bytes(body, MAX_ANSWER).await.unwrap_or_else(|_| Bytes::new());
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let id = answer[*field].as_str().map(str::to_owned);
            (Response::from_parts(parts, Body::from(bytes)), id.into_iter().collect::<Vec<_>>())
        }
    };
    let paths = Value::from(paths_of(&written)).to_string();
    for resource_id in ids {
        let change = ChangeRow {
            id: colloquy_core::ids::new_id(colloquy_core::ids::prefix::CHANGE),
            workspace_id: actor.workspace_id.clone(),
            at_ms: colloquy_core::time::now_ms(),
            actor_key_id: actor.key_id.clone(),
            actor_user_id: actor.user_id.clone(),
            resource_type: (*resource_type).to_owned(),
            resource_id,
            operation: (*operation).to_owned(),
            paths: paths.clone(),
        };
        if let Err(e) = state.store.record_change(&change).await {
            tracing::error!(error = %e, "the change could not be logged");
        }
    }
    response
}

/// The JSON paths a request body writes: each leaf (and each array, as a whole) as
/// dot-separated keys, values left out.
fn paths_of(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(body, &mut String::new(), 0, &mut out);
    out.sort();
    out
}

fn walk(value: &Value, at: &mut String, depth: usize, out: &mut Vec<String>) {
    if out.len() >= MAX_PATHS {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() && depth < MAX_DEPTH => {
            for (key, v) in map {
                let len = at.len();
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(key);
                walk(v, at, depth + 1, out);
                at.truncate(len);
            }
        }
        _ if !at.is_empty() => out.push(at.clone()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_name_every_leaf_and_no_value() {
        let body = json!({"name": "n", "value": "s3cret", "conversation_config": {"agent": {"prompt": {"prompt": "p", "tools": [{"a": 1}]}}}, "tags": []});
        let paths = paths_of(&body);
        assert_eq!(
            paths,
            [
                "conversation_config.agent.prompt.prompt",
                "conversation_config.agent.prompt.tools",
                "name",
                "tags",
                "value"
            ]
        );
        assert!(!Value::from(paths).to_string().contains("s3cret"));
    }
}
