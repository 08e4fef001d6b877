//! The MCP connections of one conversation: opened at its start (to list the tools the agent
//! offers), reused by every call, reopened once after a server went away, and closed at its
//! end. A server that is down or hangs costs at most its timeout, never a stuck turn.

use colloquy_core::ids::WorkspaceId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, Tool};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::{Connection, McpError, ResolveIn, ServerSpec, connect, resolve};
use crate::EngineDeps;

/// An MCP server an agent uses.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServerRef {
    /// `mcp_...`
    pub id: String,
    /// Its stored configuration.
    pub config: Map<String, Value>,
    /// Whether all its tools are offered (it is in the agent's `mcp_server_ids`), rather than
    /// only those named by the agent's `type: "mcp"` tools.
    pub offer_all: bool,
}

/// A server's state at the start of a conversation (`mcp_connection_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// `mcp_...`
    pub id: String,
    /// Whether it answered.
    pub connected: bool,
    /// Tools it offers.
    pub tool_count: usize,
}

/// How long a conversation's start waits for a server to list its tools: a server that is
/// down or slow is reported as not connected rather than holding up the greeting.
const START_BUDGET: Duration = Duration::from_secs(10);

struct Entry {
    spec: Result<ServerSpec, McpError>,
    connection: Mutex<Option<Arc<Connection>>>,
}

/// The connections of one conversation.
pub struct McpPool {
    deps: Arc<EngineDeps>,
    entries: HashMap<String, Entry>,
}

impl std::fmt::Debug for McpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpPool")
            .field("servers", &self.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What opening the pool found.
pub struct Opened {
    /// The pool.
    pub pool: McpPool,
    /// Each server offering all its tools, and whether it answered.
    pub status: Vec<ServerStatus>,
    /// The tools of those servers, with the server offering each.
    pub tools: Vec<(String, Tool)>,
    /// What those servers asked to tell the model, with the server saying it.
    pub instructions: Vec<(String, String)>,
}

impl McpPool {
    /// Resolves every server, and connects to those that offer all their tools (in parallel)
    /// to list them. The others connect on their first call.
    pub async fn open(
        deps: Arc<EngineDeps>, workspace_id: &WorkspaceId, servers: &[McpServerRef],
        within: ResolveIn<'_>,
    ) -> Opened {
        let mut entries = HashMap::new();
        for server in servers {
            let spec = resolve(&deps, workspace_id, &server.id, &server.config, within).await;
            if let Err(e) = &spec {
                tracing::warn!(server = %server.id, error = %e, "MCP server cannot be used");
            }
            entries.insert(server.id.clone(), Entry { spec, connection: Mutex::new(None) });
        }
        let pool = McpPool { deps, entries };
        let listings = servers.iter().filter(|s| s.offer_all).map(|server| {
            let pool = &pool;
            async move {
                let listing = async {
                    let (connection, timeout) = pool.connection(&server.id).await?;
                    let tools = connection.list_tools(timeout).await?;
                    Ok::<_, McpError>((tools, connection.instructions()))
                };
                let listed = tokio::time::timeout(START_BUDGET, listing)
                    .await
                    .unwrap_or(Err(McpError::Timeout(START_BUDGET)));
                if let Err(e) = &listed {
                    tracing::warn!(server = %server.id, error = %e, "MCP server did not list its tools");
                }
                (server.id.clone(), listed)
            }
        });
        let listed = futures_util::future::join_all(listings).await;
        let mut status = Vec::new();
        let mut tools = Vec::new();
        let mut instructions = Vec::new();
        for (id, result) in listed {
            let (connected, found) = match result {
                Ok((found, said)) => {
                    instructions.extend(said.map(|s| (id.clone(), s)));
                    (true, found)
                }
                Err(_) => (false, Vec::new()),
            };
            status.push(ServerStatus { id: id.clone(), connected, tool_count: found.len() });
            tools.extend(found.into_iter().map(|t| (id.clone(), t)));
        }
        Opened { pool, status, tools, instructions }
    }

    /// The resolved configuration of a server of this conversation.
    pub fn spec(&self, server_id: &str) -> Result<&ServerSpec, McpError> {
        match self.entries.get(server_id).map(|e| &e.spec) {
            Some(Ok(spec)) => Ok(spec),
            Some(Err(e)) => Err(e.clone()),
            None => Err(McpError::Config(format!(
                "the MCP server {server_id} is not one of this agent's"
            ))),
        }
    }

    /// Secret values this conversation's servers use, to scrub from what is recorded.
    pub fn secrets(&self) -> Vec<String> {
        self.entries
            .values()
            .filter_map(|e| e.spec.as_ref().ok())
            .flat_map(|s| s.secrets.iter().cloned())
            .collect()
    }

    /// The open connection to a server, opening it if there is none or the last one died.
    async fn connection(&self, server_id: &str) -> Result<(Arc<Connection>, Duration), McpError> {
        let spec = self.spec(server_id)?;
        let entry = &self.entries[server_id];
        let mut slot = entry.connection.lock().await;
        if let Some(open) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok((open.clone(), spec.timeout));
        }
        let open = Arc::new(connect(&self.deps, spec).await?);
        *slot = Some(open.clone());
        Ok((open, spec.timeout))
    }

    /// Calls a tool of a server, waiting at most `timeout` for its answer.
    pub async fn call(
        &self, server_id: &str, tool: &str, arguments: Map<String, Value>,
        meta: Option<Map<String, Value>>, timeout: Duration,
    ) -> Result<CallToolResult, McpError> {
        let (connection, _) = tokio::time::timeout(timeout, self.connection(server_id))
            .await
            .map_err(|_| McpError::Timeout(timeout))??;
        connection.call(tool, arguments, meta, timeout).await
    }

    /// Closes every connection (ending stdio servers' processes).
    pub async fn close(&self) {
        for entry in self.entries.values() {
            if let Some(connection) = entry.connection.lock().await.take() {
                connection.close().await;
            }
        }
    }
}
