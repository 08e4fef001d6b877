//! The conversation engine of Colloquy (DESIGN.md §3.3): LLM providers ([`llm`]), tool
//! executors ([`tools`]), the egress guard ([`egress`]) and the conversation loop
//! ([`conversation`]) shared by live conversations, simulations and test runs. It knows nothing
//! of HTTP servers; it reads and writes through the store's trait.

pub mod conversation;
pub mod egress;
pub mod llm;
pub mod mcp;
mod saver;
pub mod simulation;
pub mod testing;
pub mod tools;

use std::sync::Arc;

use colloquy_core::ids::{AgentId, ToolId, WorkspaceId};
use colloquy_core::secret_key::{Keyring, secret_context};
use colloquy_store::{DynStore, StoreError};
use serde_json::Value;

pub use conversation::{
    Conversation, Ending, EngineError, Source, StartOptions, TurnEvent, TurnResult,
};

/// Installs rustls' ring provider, once per process, before any HTTPS client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Limits of the engine.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// LLM rounds (each may call tools) in one agent turn.
    pub max_tool_rounds: usize,
    /// Largest webhook response read.
    pub webhook_max_response_bytes: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_tool_rounds: 8,
            webhook_max_response_bytes: 1024 * 1024,
        }
    }
}

/// What the engine needs, built once at start.
pub struct EngineDeps {
    /// Persistence.
    pub store: DynStore,
    /// The audit log writer.
    pub audit: colloquy_store::AuditWriter,
    /// LLM routing.
    pub llm: llm::router::LlmRouter,
    /// HTTP client behind the egress guard (webhooks).
    pub http: reqwest::Client,
    /// The egress guard itself (IP-literal URLs).
    pub egress: Arc<egress::EgressGuard>,
    /// Opens secrets referred to by tools and custom LLMs.
    pub keyring: Keyring,
    /// Limits.
    pub limits: EngineLimits,
    /// Operator-declared MCP servers.
    pub mcp: mcp::McpConfig,
    /// Woken when this node queues test runs, so its worker leases them at once instead of at
    /// its next poll (runs queued by other nodes are found by polling).
    pub runs_queued: tokio::sync::Notify,
}

/// An agent as a conversation sees it: its config (overrides applied) and its tools.
#[derive(Debug, Clone)]
pub struct AgentSnapshot {
    /// The agent.
    pub agent_id: AgentId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Its branch.
    pub branch_id: Option<String>,
    /// Its name.
    pub name: String,
    /// `conversation_config`.
    pub conversation_config: Value,
    /// `platform_settings`.
    pub platform_settings: Value,
    /// Tools offered to the LLM.
    pub tools: Vec<tools::AgentTool>,
    /// The opened API key of the agent's `custom_llm`, if it has one.
    pub custom_llm_api_key: Option<String>,
    /// MCP servers the agent uses: its `mcp_server_ids` and those its `type: "mcp"` tools call.
    pub mcp_servers: Vec<mcp::pool::McpServerRef>,
    /// The workspace's `type: "mcp"` tool records as (server, MCP tool name, tool id): a call
    /// of a listed tool is recorded under its record's id when it has one (DESIGN.md §4.1).
    pub mcp_tool_records: Vec<(String, String, ToolId)>,
}

impl AgentSnapshot {
    /// Loads an agent of the workspace with its tools.
    pub async fn load(
        deps: &EngineDeps,
        workspace_id: &WorkspaceId,
        agent_id: &AgentId,
    ) -> Result<AgentSnapshot, StoreError> {
        let row = deps.store.get_agent(workspace_id, agent_id).await?;
        let document: Value = serde_json::from_str(&row.document)
            .map_err(|e| StoreError::Config(format!("agent document: {e}")))?;
        let conversation_config = document
            .get("conversation_config")
            .cloned()
            .unwrap_or(Value::Null);
        let prompt = conversation_config
            .pointer("/agent/prompt")
            .cloned()
            .unwrap_or(Value::Null);
        let ids: Vec<ToolId> = string_list(prompt.get("tool_ids"))
            .into_iter()
            .map(ToolId::from)
            .collect();
        let rows = deps.store.get_tools(workspace_id, &ids).await?;
        let mut agent_tools: Vec<tools::AgentTool> =
            rows.iter().filter_map(tools::AgentTool::from_row).collect();
        for inline in prompt
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            agent_tools.extend(tools::AgentTool::inline(inline.clone()));
        }
        for (key, builtin) in prompt
            .get("built_in_tools")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if builtin.is_object() {
                let mut config = builtin.clone();
                if config
                    .get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    config["name"] = Value::String(key.clone());
                }
                config["type"] = Value::String("system".into());
                agent_tools.extend(tools::AgentTool::inline(config));
            }
        }
        let (mcp_servers, mcp_tool_records) =
            load_mcp_servers(deps, workspace_id, &prompt, &agent_tools).await?;
        let custom_llm_api_key = match prompt
            .pointer("/custom_llm/api_key/secret_id")
            .and_then(Value::as_str)
        {
            Some(secret_id) => {
                let secret = deps.store.get_secret(workspace_id, secret_id).await?;
                let plain = deps
                    .keyring
                    .open(
                        &secret.sealed_value,
                        &secret_context(workspace_id, secret_id),
                    )
                    .map_err(|e| StoreError::Config(format!("custom_llm api key: {e}")))?;
                Some(String::from_utf8_lossy(&plain).into_owned())
            }
            None => None,
        };
        Ok(AgentSnapshot {
            agent_id: row.summary.id,
            workspace_id: workspace_id.clone(),
            branch_id: Some(row.main_branch_id),
            name: row.summary.name,
            conversation_config,
            platform_settings: document
                .get("platform_settings")
                .cloned()
                .unwrap_or(Value::Null),
            tools: agent_tools,
            custom_llm_api_key,
            mcp_servers,
            mcp_tool_records,
        })
    }

    /// Loads the MCP servers again after an override changed which ones the agent uses.
    pub async fn reload_mcp_servers(&mut self, deps: &EngineDeps) -> Result<(), StoreError> {
        let prompt = self
            .conversation_config
            .pointer("/agent/prompt")
            .cloned()
            .unwrap_or(Value::Null);
        let (servers, records) =
            load_mcp_servers(deps, &self.workspace_id, &prompt, &self.tools).await?;
        self.mcp_servers = servers;
        self.mcp_tool_records = records;
        Ok(())
    }

    /// Applies a client's `conversation_config_override` (already checked against what the
    /// agent allows): objects merge, values replace.
    pub fn apply_override(&mut self, conversation_config_override: Value) {
        colloquy_core::agents::merge(&mut self.conversation_config, conversation_config_override);
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

type McpServers = (Vec<mcp::pool::McpServerRef>, Vec<(String, String, ToolId)>);

/// The agent's MCP servers (`mcp_server_ids`, `native_mcp_server_ids`, and those its
/// `type: "mcp"` tools call) and the workspace's MCP tool records.
async fn load_mcp_servers(
    deps: &EngineDeps,
    workspace_id: &WorkspaceId,
    prompt: &Value,
    tools: &[tools::AgentTool],
) -> Result<McpServers, StoreError> {
    let mut offered = string_list(prompt.get("mcp_server_ids"));
    offered.extend(string_list(prompt.get("native_mcp_server_ids")));
    let mut ids = offered.clone();
    ids.extend(
        tools
            .iter()
            .filter(|t| t.kind == "mcp")
            .filter_map(|t| t.config.get("mcp_server_id").and_then(Value::as_str))
            .map(str::to_owned),
    );
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows = deps.store.get_mcp_servers(workspace_id, &ids).await?;
    let servers = rows
        .into_iter()
        .map(|row| mcp::pool::McpServerRef {
            offer_all: offered.contains(&row.id),
            config: serde_json::from_str(&row.document).unwrap_or_default(),
            id: row.id,
        })
        .collect();
    let filter = colloquy_store::ToolFilter {
        types: vec![colloquy_core::tools::ToolKind::Mcp],
        ..Default::default()
    };
    let page = colloquy_store::ToolPage {
        by_name: false,
        descending: false,
        after: None,
        limit: 1000,
    };
    let records = deps
        .store
        .list_tools(workspace_id, &filter, &page)
        .await?
        .iter()
        .filter_map(tools::AgentTool::from_row)
        .filter_map(|t| {
            let server = t.config.get("mcp_server_id")?.as_str()?.to_owned();
            let name = t.config.get("mcp_tool_name")?.as_str()?.to_owned();
            Some((server, name, t.id))
        })
        .collect();
    Ok((servers, records))
}
