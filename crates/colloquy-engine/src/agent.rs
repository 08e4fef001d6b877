//! An agent as a conversation sees it ([`AgentSnapshot`]): its configuration with the
//! client's overrides applied, the tools it offers (tool records, inline tools, built-in system
//! tools, and the tools its MCP servers list), and what calling them needs.

use std::collections::BTreeSet;
use std::sync::Arc;

use colloquy_core::branches;
use colloquy_core::environments::PRODUCTION;
use colloquy_core::ids::{AgentId, ToolId, WorkspaceId};
use colloquy_core::tools::ToolKind;
use colloquy_store::{AgentAtRow, StoreError};
use serde_json::Value;

use crate::EngineDeps;
use crate::mcp::pool::{McpServerRef, Opened};
use crate::secrets::{self, SecretError};
use crate::tools::procedures::{self, Procedure};
use crate::tools::{self, AgentTool};

/// Why an agent could not be loaded for a conversation.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading it (or its tools, servers, secrets) failed, or it does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Its stored document is not JSON (never written so; a damaged row).
    #[error("the agent's stored document is not valid: {0}")]
    Document(#[from] serde_json::Error),
    /// Its `custom_llm` API key cannot be opened.
    #[error("the agent's custom LLM key: {0}")]
    CustomLlmKey(#[from] SecretError),
    /// The conversation asks for an environment the workspace does not have.
    #[error("the workspace has no environment {0:?}")]
    NoEnvironment(String),
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
    /// The version of that branch it runs.
    pub version_id: Option<String>,
    /// Whether the branch was drawn from a traffic split of several branches (so a user id
    /// learnt later may draw it again, see [`Pick::Live`]).
    pub drawn: bool,
    /// Its name.
    pub name: String,
    /// `conversation_config` (shared, once a conversation runs it, with the node's other
    /// conversations running an equal one: see `SharedConfigs`).
    pub conversation_config: Arc<Value>,
    /// `platform_settings`.
    pub platform_settings: Value,
    /// `workflow` (the stored graph; a conversation walks it, see `crate::workflow`).
    pub workflow: Value,
    /// The workflow node whose configuration this is, when the conversation is in one.
    pub workflow_node_id: Option<String>,
    /// Tools offered to the LLM.
    pub tools: Vec<AgentTool>,
    /// The environment whose values environment variables take (`production` unless the
    /// conversation asks for another, see [`AgentSnapshot::set_environment`]).
    pub environment: String,
    /// The opened API key of the agent's `custom_llm`, if it has one.
    pub custom_llm_api_key: Option<String>,
    /// MCP servers the agent uses: its `mcp_server_ids` and those its `type: "mcp"` tools call.
    pub mcp_servers: Vec<McpServerRef>,
    /// The workspace's `type: "mcp"` tool records as (server, MCP tool name, tool id): a call
    /// of a listed tool is recorded under its record's id when it has one (DESIGN.md §4.1).
    pub mcp_tool_records: Vec<(String, String, ToolId)>,
    /// The procedure versions its `procedures` map names.
    pub procedures: Vec<Procedure>,
}

/// Which configuration of an agent a conversation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick<'a> {
    /// The head of a branch drawn from the agent's deployment (the same branch for the same
    /// user while the split holds).
    Live {
        /// The user, when known.
        user_id: Option<&'a str>,
    },
    /// The head of this branch.
    Branch(&'a str),
    /// This version.
    Version(&'a str),
}

impl<'a> Pick<'a> {
    /// A version when one is named, else a branch when one is named, else the deployment's.
    pub fn of(branch_id: Option<&'a str>, version_id: Option<&'a str>) -> Pick<'a> {
        match (branch_id.filter(|b| !b.is_empty()), version_id.filter(|v| !v.is_empty())) {
            (_, Some(version)) => Pick::Version(version),
            (Some(branch), None) => Pick::Branch(branch),
            (None, None) => Pick::Live { user_id: None },
        }
    }
}

/// The agent's row at what `pick` names, and whether it was drawn from a split.
async fn pick_row(
    deps: &EngineDeps, workspace_id: &WorkspaceId, agent_id: &AgentId, pick: Pick<'_>,
) -> Result<(AgentAtRow, bool), StoreError> {
    let store = &deps.store;
    match pick {
        Pick::Version(version) => {
            Ok((store.agent_at_version(workspace_id, agent_id, version).await?, false))
        }
        Pick::Branch(branch) => {
            Ok((store.agent_at_branch(workspace_id, agent_id, branch).await?, false))
        }
        Pick::Live { user_id } => {
            let split = store.live_split(workspace_id, agent_id).await?;
            match branches::pick(&split, user_id) {
                Some(branch) => Ok((
                    store.agent_at_branch(workspace_id, agent_id, branch).await?,
                    split.len() > 1,
                )),
                None => {
                    let row = store.get_agent(workspace_id, agent_id).await?;
                    Ok((AgentAtRow { branch_id: row.main_branch_id.clone(), row }, false))
                }
            }
        }
    }
}

impl AgentSnapshot {
    /// Loads an agent of the workspace, as `pick` names it, with its tools.
    pub async fn load(
        deps: &EngineDeps, workspace_id: &WorkspaceId, agent_id: &AgentId, pick: Pick<'_>,
    ) -> Result<AgentSnapshot, LoadError> {
        let (AgentAtRow { row, branch_id }, drawn) =
            pick_row(deps, workspace_id, agent_id, pick).await?;
        let mut document: Value = serde_json::from_str(&row.document)?;
        let procedures = procedures::load(
            deps,
            workspace_id,
            document.get("procedures").unwrap_or(&Value::Null),
        )
        .await?;
        let mut part = |key: &str| document.get_mut(key).map(Value::take).unwrap_or_default();
        let conversation_config = part("conversation_config");
        let platform_settings = part("platform_settings");
        let workflow = part("workflow");
        let prompt = conversation_config.pointer("/agent/prompt").unwrap_or(&Value::Null);
        let tools = offered_tools(deps, workspace_id, prompt).await?;
        let (mcp_servers, mcp_tool_records) =
            load_mcp_servers(deps, workspace_id, prompt, &tools).await?;
        let custom_llm_api_key = custom_llm_key(deps, workspace_id, PRODUCTION, prompt).await?;
        Ok(AgentSnapshot {
            agent_id: row.summary.id,
            workspace_id: workspace_id.clone(),
            branch_id: Some(branch_id),
            version_id: Some(row.version_id),
            drawn,
            name: row.summary.name,
            conversation_config: Arc::new(conversation_config),
            platform_settings,
            workflow,
            workflow_node_id: None,
            tools,
            environment: PRODUCTION.to_owned(),
            custom_llm_api_key,
            mcp_servers,
            mcp_tool_records,
            procedures,
        })
    }

    /// Runs the agent in `environment`, which the workspace must have: environment variables
    /// take their values there, the custom LLM's key among them.
    pub async fn set_environment(
        &mut self, deps: &EngineDeps, environment: &str,
    ) -> Result<(), LoadError> {
        if environment == self.environment {
            return Ok(());
        }
        if environment != PRODUCTION
            && !deps
                .store
                .list_environments(&self.workspace_id)
                .await?
                .iter()
                .any(|e| e.name == environment)
        {
            return Err(LoadError::NoEnvironment(environment.to_owned()));
        }
        let prompt = self.conversation_config.pointer("/agent/prompt").unwrap_or(&Value::Null);
        self.custom_llm_api_key =
            custom_llm_key(deps, &self.workspace_id, environment, prompt).await?;
        self.environment = environment.to_owned();
        Ok(())
    }

    /// Loads the MCP servers again after an override changed which ones the agent uses.
    pub async fn reload_mcp_servers(&mut self, deps: &EngineDeps) -> Result<(), StoreError> {
        let prompt = self.conversation_config.pointer("/agent/prompt").unwrap_or(&Value::Null);
        let (servers, records) =
            load_mcp_servers(deps, &self.workspace_id, prompt, &self.tools).await?;
        self.mcp_servers = servers;
        self.mcp_tool_records = records;
        Ok(())
    }

    /// Applies a client's `conversation_config_override` (already checked against what the
    /// agent allows): objects merge, values replace.
    pub fn apply_override(&mut self, conversation_config_override: Value) {
        colloquy_core::agents::merge(
            Arc::make_mut(&mut self.conversation_config),
            conversation_config_override,
        );
    }

    /// The model the agent's configuration names (`prompt.llm`).
    pub fn llm(&self) -> &str {
        self.conversation_config
            .pointer("/agent/prompt/llm")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Offers the tools the agent's MCP servers listed (those a `type: "mcp"` tool of the
    /// agent already names stay as that tool), under names the LLM accepts, and applies each
    /// server's per-tool config overrides.
    pub fn offer_mcp_tools(&mut self, opened: &Opened) {
        let named: Vec<(String, String)> = self.tools.iter().filter_map(mcp_key).collect();
        let mut taken: BTreeSet<String> = self.tools.iter().map(|t| t.name.clone()).collect();
        for (server_id, tool) in &opened.tools {
            let key = (server_id.clone(), tool.name.to_string());
            if named.contains(&key) {
                continue;
            }
            let Ok(spec) = opened.pool.spec(server_id) else {
                continue;
            };
            let id = self
                .mcp_tool_records
                .iter()
                .find(|(s, n, _)| (s, n) == (&key.0, &key.1))
                .map(|(_, _, id)| id.clone())
                .unwrap_or_else(|| {
                    colloquy_core::mcp_servers::derived_tool_id(server_id, &tool.name)
                });
            let name = tools::mcp::llm_name(&tool.name, &spec.name, &taken);
            taken.insert(name.clone());
            self.tools.push(tools::mcp::offered(spec, tool, id, name));
        }
        for tool in self.tools.iter_mut().filter(|t| t.kind == ToolKind::Mcp) {
            let server = tool
                .config
                .get("mcp_server_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Ok(spec) = opened.pool.spec(&server) {
                tools::mcp::apply_server_overrides(tool, &spec.config);
            }
        }
    }
}

/// The key of the prompt's `custom_llm`, a secret's or an environment variable's.
async fn custom_llm_key(
    deps: &EngineDeps, workspace_id: &WorkspaceId, environment: &str, prompt: &Value,
) -> Result<Option<String>, SecretError> {
    match prompt.pointer("/custom_llm/api_key") {
        Some(key) => Ok(secrets::open_reference(deps, workspace_id, environment, key)
            .await?
            .map(|opened| opened.value)),
        None => Ok(None),
    }
}

/// The (server, MCP tool name) a `type: "mcp"` tool calls.
fn mcp_key(tool: &AgentTool) -> Option<(String, String)> {
    if tool.kind != ToolKind::Mcp {
        return None;
    }
    let server = tool.config.get("mcp_server_id")?.as_str()?.to_owned();
    let name = tool.config.get("mcp_tool_name")?.as_str()?.to_owned();
    Some((server, name))
}

/// The tools an agent's prompt offers: its tool records (`tool_ids`), its inline tools
/// (`tools`) and its built-in system tools (`built_in_tools`).
pub(crate) async fn offered_tools(
    deps: &EngineDeps, workspace_id: &WorkspaceId, prompt: &Value,
) -> Result<Vec<AgentTool>, StoreError> {
    let ids: Vec<ToolId> =
        string_list(prompt.get("tool_ids")).into_iter().map(ToolId::from).collect();
    let rows = deps.store.get_tools(workspace_id, &ids).await?;
    let mut tools: Vec<AgentTool> = rows.iter().filter_map(AgentTool::from_row).collect();
    for inline in prompt.get("tools").and_then(Value::as_array).into_iter().flatten() {
        tools.extend(AgentTool::inline(inline.clone()));
    }
    for (key, builtin) in prompt
        .get("built_in_tools")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, b)| b.is_object())
    {
        let mut config = builtin.clone();
        if config.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            config["name"] = Value::String(key.clone());
        }
        config["type"] = Value::String("system".into());
        tools.extend(AgentTool::inline(config));
    }
    Ok(tools)
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

type McpServers = (Vec<McpServerRef>, Vec<(String, String, ToolId)>);

/// The agent's MCP servers (`mcp_server_ids`, `native_mcp_server_ids`, and those its
/// `type: "mcp"` tools call) and the workspace's MCP tool records.
async fn load_mcp_servers(
    deps: &EngineDeps, workspace_id: &WorkspaceId, prompt: &Value, tools: &[AgentTool],
) -> Result<McpServers, StoreError> {
    let mut offered = string_list(prompt.get("mcp_server_ids"));
    offered.extend(string_list(prompt.get("native_mcp_server_ids")));
    let mut ids = offered.clone();
    ids.extend(
        tools
            .iter()
            .filter(|t| t.kind == ToolKind::Mcp)
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
        .map(|row| McpServerRef {
            offer_all: offered.contains(&row.id),
            config: serde_json::from_str(&row.document).unwrap_or_default(),
            id: row.id,
        })
        .collect();
    let filter = colloquy_store::ToolFilter { types: vec![ToolKind::Mcp], ..Default::default() };
    let page = colloquy_store::ToolPage {
        sort: colloquy_core::tools::ToolSort::CreatedAt,
        descending: false,
        after: None,
        limit: 1000,
    };
    let records = deps
        .store
        .list_tools(workspace_id, &filter, &page)
        .await?
        .iter()
        .filter_map(AgentTool::from_row)
        .filter_map(|t| {
            let (server, name) = mcp_key(&t)?;
            Some((server, name, t.id))
        })
        .collect();
    Ok((servers, records))
}
