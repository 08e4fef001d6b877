//! MCP clients: connecting to a workspace's MCP servers over streamable HTTP and stdio (the
//! official SDK, `rmcp`) or the legacy HTTP+SSE transport ([`sse`]), listing their tools and
//! calling them. HTTP servers are reached through the egress guard; stdio servers are
//! processes the operator declared in `colloquy.toml` ([`McpConfig`]), never commands an API
//! user sent. A conversation keeps its connections in a [`pool::McpPool`].

pub mod pool;
pub mod sse;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ids::WorkspaceId;
use colloquy_core::mcp_servers::{ServerUrl, http_host};
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::EngineDeps;

/// Operator-side MCP settings (`[mcp]` in `colloquy.toml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct McpConfig {
    /// stdio servers by name; MCP server configurations refer to them as `stdio:NAME`.
    pub stdio: BTreeMap<String, StdioServer>,
}

/// A server run as a child process, speaking MCP on its stdin and stdout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StdioServer {
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Names of the workspaces that may use it; every workspace when empty.
    pub workspaces: Vec<String>,
}

/// Why an MCP server could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    /// The configuration cannot be used (unknown stdio server, bad URL, missing secret, ...).
    #[error("{0}")]
    Config(String),
    /// Connecting or talking to the server failed.
    #[error("{0}")]
    Transport(String),
    /// The server did not answer in time.
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(Duration),
}

/// How a server is reached.
#[derive(Debug, Clone)]
pub enum Target {
    /// Legacy HTTP+SSE.
    Sse(String),
    /// Streamable HTTP.
    Streamable(String),
    /// A declared stdio server.
    Stdio(StdioServer),
}

/// A server configuration resolved for one conversation: URL and headers with secrets and
/// dynamic variables filled in.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// `mcp_...`
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it is.
    pub target: Target,
    /// Headers sent with every HTTP request.
    pub headers: Vec<(String, String)>,
    /// The `secret_token`, sent as a bearer token.
    pub token: Option<String>,
    /// Secret values in use, to scrub from what is recorded.
    pub secrets: Vec<String>,
    /// `request_meta`, resolved: sent as `_meta` of every call.
    pub meta: Option<Map<String, Value>>,
    /// `response_timeout_secs`: each call, and the connection's handshake.
    pub timeout: Duration,
    /// The stored configuration.
    pub config: Map<String, Value>,
}

/// A workspace secret's value, for the server's URL, token, headers or `_meta`.
async fn open_secret(
    deps: &EngineDeps, workspace_id: &WorkspaceId, secret_id: &str,
) -> Result<String, McpError> {
    crate::secrets::open(deps, workspace_id, secret_id)
        .await
        .map_err(|e| McpError::Config(e.to_string()))
}

/// Whether a declared stdio server may be used by the workspace.
pub async fn stdio_server(
    deps: &EngineDeps, name: &str, workspace_id: &WorkspaceId,
) -> Option<StdioServer> {
    let server = deps.mcp.stdio.get(name)?;
    if server.workspaces.is_empty() {
        return Some(server.clone());
    }
    for allowed in &server.workspaces {
        if let Ok(Some(ws)) = deps.store.get_workspace_by_name(allowed).await
            && &ws.id == workspace_id
        {
            return Some(server.clone());
        }
    }
    None
}

/// Whether a plain `http://` URL may be used: only for hosts the operator allowed
/// (`COLLOQUY_WEBHOOK_ALLOW`); every other server must use https.
pub fn check_scheme(deps: &EngineDeps, url: &str) -> Result<(), McpError> {
    match http_host(url) {
        Some((_, true)) => Ok(()),
        Some((host, false)) if deps.egress.allows_host(host) => Ok(()),
        Some((host, false)) => Err(McpError::Config(format!(
            "MCP server URLs must use https; plain http is allowed only for hosts in COLLOQUY_WEBHOOK_ALLOW ({host} is not)"
        ))),
        None => Err(McpError::Config("the MCP server URL is not an http(s) URL".into())),
    }
}

/// Where a server's configuration is resolved: the conversation's environment (for
/// environment variables) and dynamic variables.
#[derive(Debug, Clone, Copy)]
pub struct ResolveIn<'a> {
    /// The environment whose values environment variables take.
    pub environment: &'a str,
    /// The conversation's dynamic variables.
    pub vars: &'a Map<String, Value>,
}

/// The value of a header or `_meta` entry: itself, a workspace secret's value, an environment
/// variable's, or a dynamic variable's; `None` for kinds that are refused at write time.
async fn reference(
    deps: &EngineDeps, workspace_id: &WorkspaceId, value: &Value, within: ResolveIn<'_>,
    secrets: &mut Vec<String>,
) -> Result<Option<Value>, McpError> {
    if !value.is_object() {
        return Ok(Some(value.clone()));
    }
    let opened = crate::secrets::open_reference(deps, workspace_id, within.environment, value)
        .await
        .map_err(|e| McpError::Config(e.to_string()))?;
    if let Some(opened) = opened {
        if opened.secret {
            secrets.push(opened.value.clone());
        }
        return Ok(Some(Value::String(opened.value)));
    }
    let vars = within.vars;
    if let Some(var) = value.get("variable_name").and_then(Value::as_str) {
        return match vars.get(var) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(McpError::Config(format!(
                "the MCP server's configuration needs the dynamic variable {var}, which this conversation does not have"
            ))),
        };
    }
    Ok(None)
}

/// Resolves a stored configuration for a conversation.
pub async fn resolve(
    deps: &EngineDeps, workspace_id: &WorkspaceId, id: &str, config: &Map<String, Value>,
    within: ResolveIn<'_>,
) -> Result<ServerSpec, McpError> {
    let mut secrets = Vec::new();
    let url = match ServerUrl::of(config) {
        Some(ServerUrl::Http(url)) => url,
        Some(ServerUrl::Secret(secret_id)) => {
            let url = open_secret(deps, workspace_id, &secret_id).await?;
            secrets.push(url.clone());
            url
        }
        Some(ServerUrl::Stdio(name)) => String::from("stdio:") + &name,
        None => return Err(McpError::Config("the MCP server has no url".into())),
    };
    let target = target(deps, workspace_id, url, config).await?;
    let mut headers = Vec::new();
    for (name, value) in entries(config, "request_headers") {
        if let Some(value) = reference(deps, workspace_id, value, within, &mut secrets).await? {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            headers.push((name.clone(), text));
        }
    }
    let mut meta = Map::new();
    for (name, value) in entries(config, "request_meta") {
        if let Some(value) = reference(deps, workspace_id, value, within, &mut secrets).await? {
            meta.insert(name.clone(), value);
        }
    }
    let token = match config.get("secret_token").and_then(|t| t.get("secret_id")) {
        Some(Value::String(secret_id)) => {
            let token = open_secret(deps, workspace_id, secret_id).await?;
            secrets.push(token.clone());
            Some(token)
        }
        _ => None,
    };
    let timeout = config.get("response_timeout_secs").and_then(Value::as_u64).unwrap_or(30);
    Ok(ServerSpec {
        id: id.to_owned(),
        name: config.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
        target,
        headers,
        token,
        secrets,
        meta: (!meta.is_empty()).then_some(meta),
        timeout: Duration::from_secs(timeout),
        config: config.clone(),
    })
}

/// The entries of an object field of the configuration (`request_headers`, `request_meta`).
fn entries<'a>(
    config: &'a Map<String, Value>, field: &str,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    config.get(field).and_then(Value::as_object).into_iter().flatten()
}

/// How the server at `url` is reached: a declared stdio process, or HTTP (streamable or SSE,
/// as the configuration's `transport` says) at a URL the operator allows.
async fn target(
    deps: &EngineDeps, workspace_id: &WorkspaceId, url: String, config: &Map<String, Value>,
) -> Result<Target, McpError> {
    if let Some(name) = url.strip_prefix(colloquy_core::mcp_servers::STDIO_SCHEME) {
        return stdio_server(deps, name, workspace_id).await.map(Target::Stdio).ok_or_else(|| {
            McpError::Config(format!(
                "no stdio MCP server named {name:?} is declared in colloquy.toml for this workspace"
            ))
        });
    }
    check_scheme(deps, &url)?;
    Ok(match config.get("transport").and_then(Value::as_str) {
        Some("STREAMABLE_HTTP") => Target::Streamable(url),
        _ => Target::Sse(url),
    })
}

/// One open MCP session.
pub struct Connection {
    service: RunningService<RoleClient, ()>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("closed", &self.service.is_closed()).finish()
    }
}

fn transport_error(e: impl std::error::Error + 'static) -> McpError {
    McpError::Transport(crate::egress::explain(&e))
}

/// Headers rmcp sets itself and refuses to take from configuration.
const RESERVED_HEADERS: [&str; 4] =
    ["accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// Opens a session with a server: connect and the MCP handshake, within the spec's timeout.
pub async fn connect(deps: &EngineDeps, spec: &ServerSpec) -> Result<Connection, McpError> {
    let handshake = async {
        let service = match &spec.target {
            Target::Sse(url) => {
                let mut headers = spec.headers.clone();
                if let Some(token) = &spec.token {
                    headers.push(("authorization".into(), format!("Bearer {token}")));
                }
                let transport = sse::SseTransport::connect(
                    &deps.http,
                    &deps.egress,
                    url,
                    &headers,
                    spec.timeout,
                )
                .await?;
                ().serve(transport).await.map_err(transport_error)?
            }
            Target::Streamable(url) => {
                let parsed = reqwest::Url::parse(url).map_err(transport_error)?;
                deps.egress.precheck(&parsed).await.map_err(transport_error)?;
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                config.auth_header = spec.token.clone();
                for (name, value) in &spec.headers {
                    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                        continue;
                    }
                    let name =
                        http::HeaderName::try_from(name.as_str()).map_err(transport_error)?;
                    let value =
                        http::HeaderValue::try_from(value.as_str()).map_err(transport_error)?;
                    config.custom_headers.insert(name, value);
                }
                let transport =
                    StreamableHttpClientTransport::with_client(deps.http.clone(), config);
                ().serve(transport).await.map_err(transport_error)?
            }
            Target::Stdio(server) => {
                let mut command = tokio::process::Command::new(&server.command);
                command.args(&server.args).envs(&server.env).kill_on_drop(true);
                if let Some(cwd) = &server.cwd {
                    command.current_dir(cwd);
                }
                let (transport, _) = TokioChildProcess::builder(command)
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| {
                        McpError::Transport(format!("starting {}: {e}", server.command))
                    })?;
                ().serve(transport).await.map_err(transport_error)?
            }
        };
        Ok::<_, McpError>(service)
    };
    let service = tokio::time::timeout(spec.timeout, handshake)
        .await
        .map_err(|_| McpError::Timeout(spec.timeout))??;
    Ok(Connection { service })
}

impl Connection {
    /// What the server asked its clients to tell the model (`instructions` of its handshake).
    pub fn instructions(&self) -> Option<String> {
        let info = self.service.peer().peer_info()?;
        info.instructions.clone().filter(|i| !i.trim().is_empty())
    }

    /// Every tool the server offers.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<Tool>, McpError> {
        tokio::time::timeout(timeout, self.service.peer().list_all_tools())
            .await
            .map_err(|_| McpError::Timeout(timeout))?
            .map_err(transport_error)
    }

    /// Calls one tool. A result with `isError` is still a result: the tool ran and failed.
    pub async fn call(
        &self, name: &str, arguments: Map<String, Value>, meta: Option<Map<String, Value>>,
        timeout: Duration,
    ) -> Result<CallToolResult, McpError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = Some(arguments);
        if let Some(meta) = meta {
            params.meta = serde_json::from_value(Value::Object(meta)).ok();
        }
        tokio::time::timeout(timeout, self.service.peer().call_tool(params))
            .await
            .map_err(|_| McpError::Timeout(timeout))?
            .map_err(transport_error)
    }

    /// Whether the session has ended (the server went away).
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.is_transport_closed()
    }

    /// Ends the session (and a stdio server's process).
    pub async fn close(&self) {
        self.service.cancellation_token().cancel();
    }
}

/// Connects, lists the server's tools, and disconnects: `GET /mcp-servers/{id}/tools`.
pub async fn list_server_tools(
    deps: &Arc<EngineDeps>, workspace_id: &WorkspaceId, id: &str, config: &Map<String, Value>,
    environment: &str,
) -> Result<Vec<Tool>, McpError> {
    let within = ResolveIn { environment, vars: &Map::new() };
    let spec = resolve(deps, workspace_id, id, config, within).await?;
    let scrub = |e: McpError| match e {
        McpError::Transport(m) => {
            McpError::Transport(colloquy_core::redact::scrub(&m, &spec.secrets))
        }
        other => other,
    };
    let connection = connect(deps, &spec).await.map_err(scrub)?;
    let tools = connection.list_tools(spec.timeout).await.map_err(scrub);
    connection.close().await;
    tools
}
