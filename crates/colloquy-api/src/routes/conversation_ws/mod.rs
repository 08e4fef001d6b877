//! Live conversations: `GET /v1/convai/conversation` (WebSocket), and the signed URLs that let
//! a browser open one for a private agent without holding an API key.
//!
//! Who may connect (DESIGN.md §4.1): the agent's `platform_settings.auth` origin rules always
//! apply; with `enable_auth` the client also needs a signed-URL signature (single use,
//! expiring, checked in the database so any node accepts it), the agent's share-link token, or
//! an API key of the agent's workspace. A refused client is still upgraded and then closed with
//! 1008 and the reason, which the official clients show.

mod client_tools;
mod fillers;
mod hearing;
mod hold_audio;
mod outbox;
mod overrides;
mod session;
mod voice;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query as AxumQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use colloquy_core::environments::PRODUCTION;
use colloquy_core::ids::AgentId;
use colloquy_core::{keys, time};
use colloquy_engine::{AgentSnapshot, LoadError, Pick};
use colloquy_store::StoreError;
use futures_util::future::Either;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::routes::agents::{self, given};
use crate::routes::environments;
use crate::state::AppState;

/// Per-connection buffers: small, so idle conversations cost little memory (DESIGN.md §6).
const BUFFER_BYTES: usize = 8 * 1024;
/// The outgoing buffer holds at least this much, whatever the incoming limit.
const MIN_WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// How long a signed URL stays valid.
const SIGNATURE_TTL_SECS: i64 = 15 * 60;

/// The WebSocket route (outside the OpenAPI document: it is not a REST operation).
pub fn socket_router() -> Router<AppState> {
    Router::new().route("/v1/convai/conversation", get(conversation))
}

/// The documented routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_signed_url)).routes(routes!(get_webrtc_token))
}

#[derive(Debug, Deserialize)]
struct SocketParams {
    agent_id: Option<String>,
    conversation_signature: Option<String>,
    conversation_token: Option<String>,
    token: Option<String>,
    branch_id: Option<String>,
    version_id: Option<String>,
    environment: Option<String>,
}

async fn conversation(
    ws: WebSocketUpgrade, State(state): State<AppState>,
    AxumQuery(params): AxumQuery<SocketParams>, headers: HeaderMap,
) -> Response {
    let max_message = state.settings.limits.ws_max_message_bytes;
    let upgrade = ws
        .protocols(["convai"])
        .read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
        .max_write_buffer_size(4 * max_message.max(MIN_WRITE_BUFFER_BYTES))
        .max_message_size(max_message)
        .max_frame_size(max_message);
    let decision = authorize(&state, &params, &headers).await;
    let slot = decision.as_ref().ok().map(|agent| state.conversations.take(&agent.workspace_id));
    let base = http_base(&state, &headers);
    // The future is chosen here rather than awaited in an `async` block of the closure, which
    // would keep its own copy of the agent and the socket beside the session's for the
    // conversation's life.
    upgrade.on_upgrade(move |socket| match (decision, slot) {
        (Ok(agent), Some(Some(slot))) => {
            Either::Left(session::run(socket, state, agent, base, slot))
        }
        (Ok(_), _) => Either::Right(outbox::refuse(
            socket,
            1013,
            "The workspace has as many live conversations as it may; try again later".into(),
        )),
        (Err(reason), _) => Either::Right(outbox::refuse(socket, 1008, reason)),
    })
}

/// The host part of an `Origin` header.
fn origin_host(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let rest = origin.split("://").nth(1).unwrap_or(origin);
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty() && host != "null").then(|| host.to_ascii_lowercase())
}

/// The API key offered on the upgrade request: `xi-api-key`, `Authorization: Bearer`, or the
/// `bearer.<key>` subprotocol of `@elevenlabs/client`.
fn offered_key(headers: &HeaderMap) -> Option<String> {
    if let Some(k) = headers.get("xi-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim().to_owned());
    }
    if let Some(k) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    {
        return Some(k.trim().to_owned());
    }
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())?
        .split(',')
        .find_map(|p| p.trim().strip_prefix("bearer.").map(str::to_owned))
}

/// The agent a socket may talk to, or why not (the close frame's reason): the agent must
/// exist, the origin pass its allowlist, and a private agent (`enable_auth`) needs a signature,
/// a link token or a key of its workspace (DESIGN.md §4.1).
async fn authorize(
    state: &AppState, params: &SocketParams, headers: &HeaderMap,
) -> Result<AgentSnapshot, String> {
    let agent_id = params
        .agent_id
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(AgentId::from)
        .ok_or("agent_id is required")?;
    let workspace =
        state.store.agent_workspace(&agent_id).await.map_err(internal)?.ok_or("Agent not found")?;
    let pick = Pick::of(params.branch_id.as_deref(), params.version_id.as_deref());
    let mut agent = match AgentSnapshot::load(&state.engine, &workspace, &agent_id, pick).await {
        Ok(agent) => agent,
        Err(LoadError::Store(StoreError::NotFound)) => {
            return Err(match pick {
                Pick::Version(_) => "Version not found".into(),
                _ => "Branch not found".into(),
            });
        }
        Err(e) => return Err(internal(e)),
    };
    if let Some(environment) = params.environment.as_deref().filter(|e| !e.is_empty()) {
        agent.set_environment(&state.engine, environment).await.map_err(environment_refused)?;
    }
    let auth = agent.platform_settings.get("auth").cloned().unwrap_or(Value::Null);
    check_origin(&auth, headers)?;
    if auth.get("enable_auth").and_then(Value::as_bool) != Some(true)
        || authenticated(state, params, headers, &agent).await?
    {
        Ok(agent)
    } else {
        Err("authentication required".into())
    }
}

/// Why a conversation cannot run in the environment it asks for: one the workspace does not
/// have is the client's mistake, anything else the server's.
pub(super) fn environment_refused(e: LoadError) -> String {
    match e {
        LoadError::NoEnvironment(_) => e.to_string(),
        other => internal(other),
    }
}

fn internal(e: impl std::fmt::Display) -> String {
    tracing::error!(error = %e, "conversation authorization failed");
    "internal error".to_owned()
}

/// `platform_settings.auth`'s origin rules: a required `Origin`, and its host allowlist.
fn check_origin(auth: &Value, headers: &HeaderMap) -> Result<(), String> {
    let origin = origin_host(headers);
    if auth.get("require_origin_header").and_then(Value::as_bool) == Some(true) && origin.is_none()
    {
        return Err("An Origin header is required".into());
    }
    let allowlist: Vec<String> = auth
        .get("allowlist")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("hostname").and_then(Value::as_str))
        .map(str::to_ascii_lowercase)
        .collect();
    match &origin {
        Some(host) if !allowlist.is_empty() && !allowlist.iter().any(|h| h == host) => {
            Err(format!("Origin {host} is not allowed for this agent"))
        }
        _ => Ok(()),
    }
}

/// Whether the upgrade carries what a private agent asks for: an unused signature of a signed
/// URL, the agent's link token, or an API key of its workspace.
async fn authenticated(
    state: &AppState, params: &SocketParams, headers: &HeaderMap, agent: &AgentSnapshot,
) -> Result<bool, String> {
    if let Some(signature) = params.conversation_signature.as_deref().filter(|s| !s.is_empty())
        && state
            .store
            .consume_signature(&keys::hash_token(signature), &agent.agent_id, time::now_secs())
            .await
            .map_err(internal)?
    {
        return Ok(true);
    }
    for token in
        [&params.conversation_token, &params.token].into_iter().flatten().filter(|t| !t.is_empty())
    {
        if state.store.check_link_token(&agent.agent_id, token).await.map_err(internal)? {
            return Ok(true);
        }
    }
    let Some(key) = offered_key(headers) else {
        return Ok(false);
    };
    let found = state.store.find_key(&keys::hash_token(&key)).await.map_err(internal)?;
    Ok(found.is_some_and(|k| k.revoked_at.is_none() && k.workspace_id == agent.workspace_id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SignedUrlParams {
    /// The agent to talk to.
    agent_id: Option<String>,
    /// Accepted; the conversation id is sent once the conversation starts.
    #[serde(rename = "include_conversation_id")]
    _include_conversation_id: Option<bool>,
    /// The agent's branch: the conversation runs its head (else the deployment picks one).
    branch_id: Option<String>,
    /// A version of the agent: the conversation runs exactly it.
    version_id: Option<String>,
    /// The environment whose values environment variables take (`production` by default).
    environment: Option<String>,
}

/// The WebSocket base clients reach this server at (see [`http_base`]).
fn socket_base(state: &AppState, headers: &HeaderMap) -> String {
    http_base(state, headers).replacen("https://", "wss://", 1).replacen("http://", "ws://", 1)
}

/// The base URL clients reach this server at: `COLLOQUY_PUBLIC_URL`, else the request's host
/// (and `X-Forwarded-Proto`, behind a TLS-terminating proxy).
pub(crate) fn http_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(public) = &state.settings.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:8950");
    let secure = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) == Some("https");
    format!("{}://{host}", if secure { "https" } else { "http" })
}

#[utoipa::path(get, path = "/v1/convai/conversation/get-signed-url", params(SignedUrlParams), security(("api_key" = ["agents:read"])))]
async fn get_signed_url(
    cx: Ctx, Query(params): Query<SignedUrlParams>, headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let agent_id =
        params.agent_id.filter(|a| !a.is_empty()).map(AgentId::from).ok_or_else(|| {
            ApiError::invalid(colloquy_core::validation::Violation::new(
                ["query", "agent_id"],
                "missing",
                "Field required",
            ))
        })?;
    let (branch, version) = (params.branch_id.as_deref(), params.version_id.as_deref());
    agents::at(&cx, &agent_id, branch, version).await?;
    let environment =
        environments::named(&cx, params.environment.as_deref(), ["query", "environment"]).await?;
    let token = URL_SAFE_NO_PAD.encode(colloquy_core::random::bytes::<32>());
    cx.app
        .store
        .insert_signature(
            &keys::hash_token(&token),
            &cx.workspace_id,
            &agent_id,
            time::now_secs() + SIGNATURE_TTL_SECS,
        )
        .await?;
    let mut url = format!(
        "{}/v1/convai/conversation?agent_id={agent_id}&conversation_signature={token}",
        socket_base(&cx.app, &headers)
    );
    // All exist (checked above), so they are ids and names: no character needs escaping.
    let environment = Some(environment.as_str()).filter(|e| *e != PRODUCTION);
    for (key, value) in
        [("branch_id", given(branch)), ("version_id", given(version)), ("environment", environment)]
    {
        if let Some(value) = value {
            url.push_str(&format!("&{key}={value}"));
        }
    }
    Ok(Json(json!({ "signed_url": url })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenParams {
    /// The agent to talk to.
    agent_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/conversation/token", params(TokenParams), security(("api_key" = ["agents:read"])))]
async fn get_webrtc_token(cx: Ctx, Query(params): Query<TokenParams>) -> ApiResult<Json<Value>> {
    if let Some(agent_id) = params.agent_id.filter(|a| !a.is_empty()) {
        cx.agent(&AgentId::from(agent_id)).await?;
    }
    Err(ApiError::BadRequest {
        status: "webrtc_not_supported",
        message: "This server holds text conversations over WebSocket only; WebRTC voice sessions are not supported. \
                  Connect with connectionType \"websocket\" (or textOnly) instead."
            .into(),
    })
}
