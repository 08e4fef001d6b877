//! Create, list, get, update and delete MCP servers; the approval policy; the live tool list.

use axum::extract::Path;
use colloquy_core::environments::PRODUCTION;
use colloquy_core::mcp_servers::{self, McpServerDoc, ServerUrl};
use colloquy_core::validation::{LocItem, Violation};
use colloquy_core::{ids, time};
use colloquy_store::{McpServerContent, StoreError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::Ctx;
use crate::contention;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};

/// The `environment` query parameter of the reference: whose values the server's environment
/// variables take when Colloquy connects to it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EnvironmentParams {
    /// `production` unless given.
    environment: Option<String>,
}

/// What the schema cannot check: the secrets exist in the workspace, an http URL is https
/// unless its host is allowed, a stdio server is declared for this workspace.
async fn check(cx: &Ctx, doc: &McpServerDoc, url_loc: &[&str]) -> ApiResult<()> {
    let mut violations = Vec::new();
    let loc = || url_loc.iter().map(|k| LocItem::from(*k)).collect::<Vec<_>>();
    match &doc.url {
        ServerUrl::Http(url) => {
            if let Err(why) = colloquy_engine::mcp::check_scheme(&cx.app.engine, url) {
                violations.push(Violation::new(loc(), "url_scheme", why.to_string()));
            }
        }
        ServerUrl::Stdio(name) => {
            if colloquy_engine::mcp::stdio_server(&cx.app.engine, name, &cx.workspace_id)
                .await
                .is_none()
            {
                violations.push(Violation::new(
                    loc(),
                    "value_error",
                    format!("No stdio MCP server named {name:?} is declared in colloquy.toml for this workspace"),
                ));
            }
        }
        ServerUrl::Secret(_) => {}
    }
    for (at, secret_id) in &doc.secret_refs {
        match cx.app.store.get_secret(&cx.workspace_id, secret_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => violations.push(Violation {
                loc: at.clone(),
                msg: format!("Secret {secret_id} does not exist"),
                kind: "value_error".into(),
            }),
            Err(e) => return Err(e.into()),
        }
    }
    if violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(violations)) }
}

fn content(doc: &McpServerDoc) -> ApiResult<McpServerContent> {
    Ok(McpServerContent {
        name: doc.name.clone(),
        document: serde_json::to_string(&doc.config)?,
        secret_ids: doc.secret_refs.iter().map(|(_, id)| id.clone()).collect(),
    })
}

/// The server's wire view.
pub(super) async fn respond(cx: &Ctx, id: &str) -> ApiResult<Json<Value>> {
    let row = cx.mcp_server(id).await?;
    let dependents = cx.app.store.mcp_server_dependents(&cx.workspace_id, id).await?;
    Ok(Json(view::full(&row, &dependents, cx)?))
}

/// Changes a stored configuration with `change`, re-checks it, and writes it if nobody wrote
/// meanwhile (else reads it again and retries).
pub(super) async fn modify(
    cx: &Ctx, id: &str, change: impl Fn(&mut Map<String, Value>) -> ApiResult<Option<McpServerDoc>>,
) -> ApiResult<Json<Value>> {
    for attempt in 0..contention::ATTEMPTS {
        contention::pause(attempt).await;
        let row = cx.mcp_server(id).await?;
        let mut config = view::config(&row)?;
        let doc = match change(&mut config)? {
            Some(doc) => doc,
            None => mcp_servers::recheck(config).map_err(ApiError::Invalid)?,
        };
        check(cx, &doc, &["body", "url"]).await?;
        match cx
            .app
            .store
            .update_mcp_server(&cx.workspace_id, id, &content(&doc)?, time::now_secs(), row.version)
            .await
        {
            Ok(()) => return respond(cx, id).await,
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e).or_not_found("MCP server"),
        }
    }
    Err(ApiError::Conflict {
        status: "concurrent_update",
        message: "The MCP server kept changing while this update was applied; retry.".into(),
    })
}

#[utoipa::path(post, path = "/v1/convai/mcp-servers", security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn create_mcp_server(cx: Ctx, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let doc = mcp_servers::prepare_create(body).map_err(ApiError::Invalid)?;
    check(&cx, &doc, &["body", "config", "url"]).await?;
    let id = ids::new_id(ids::prefix::MCP_SERVER);
    cx.app
        .store
        .insert_mcp_server(&cx.workspace_id, &id, &cx.user_id, time::now_secs(), &content(&doc)?)
        .await?;
    respond(&cx, &id).await
}

#[utoipa::path(get, path = "/v1/convai/mcp-servers", security(("api_key" = ["mcp_servers:read"])))]
pub(super) async fn list_mcp_servers(cx: Ctx) -> ApiResult<Json<Value>> {
    let rows = cx.app.store.list_mcp_servers(&cx.workspace_id).await?;
    let mut servers = Vec::with_capacity(rows.len());
    for row in &rows {
        let dependents = cx.app.store.mcp_server_dependents(&cx.workspace_id, &row.id).await?;
        servers.push(view::full(row, &dependents, &cx)?);
    }
    Ok(Json(json!({ "mcp_servers": servers })))
}

#[utoipa::path(get, path = "/v1/convai/mcp-servers/{mcp_server_id}", params(("mcp_server_id" = String, Path)), security(("api_key" = ["mcp_servers:read"])))]
pub(super) async fn get_mcp_server(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    respond(&cx, &id).await
}

#[utoipa::path(patch, path = "/v1/convai/mcp-servers/{mcp_server_id}", params(("mcp_server_id" = String, Path)), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn update_mcp_server(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    modify(&cx, &id, |config| {
        mcp_servers::apply_update(config, body.clone()).map(Some).map_err(ApiError::Invalid)
    })
    .await
}

#[utoipa::path(delete, path = "/v1/convai/mcp-servers/{mcp_server_id}", params(("mcp_server_id" = String, Path)), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn delete_mcp_server(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    match cx.app.store.delete_mcp_server(&cx.workspace_id, &id).await {
        Ok(()) => Ok(Json(json!({}))),
        Err(StoreError::Conflict(why)) => Err(ApiError::Conflict {
            status: "mcp_server_in_use",
            message: format!("The MCP server cannot be deleted: {why}. Remove it from them first."),
        }),
        Err(e) => Err(e).or_not_found("MCP server"),
    }
}

#[utoipa::path(patch, path = "/v1/convai/mcp-servers/{mcp_server_id}/approval-policy", params(("mcp_server_id" = String, Path)), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn update_approval_policy(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    modify(&cx, &id, |config| {
        mcp_servers::set_approval_policy(config, body.clone()).map_err(ApiError::Invalid)?;
        Ok(None)
    })
    .await
}

#[utoipa::path(get, path = "/v1/convai/mcp-servers/{mcp_server_id}/tools", params(("mcp_server_id" = String, Path), EnvironmentParams), security(("api_key" = ["mcp_servers:read"])))]
pub(super) async fn list_server_tools(
    cx: Ctx, Path(id): Path<String>, Query(params): Query<EnvironmentParams>,
) -> ApiResult<Json<Value>> {
    let row = cx.mcp_server(&id).await?;
    let config = view::config(&row)?;
    let environment = params.environment.as_deref().filter(|e| !e.is_empty()).unwrap_or(PRODUCTION);
    let listed = colloquy_engine::mcp::list_server_tools(
        &cx.app.engine,
        &cx.workspace_id,
        &id,
        &config,
        environment,
    )
    .await;
    Ok(Json(match listed {
        Ok(tools) => json!({"success": true, "tools": tools, "error_message": null}),
        Err(e) => json!({"success": false, "tools": [], "error_message": e.to_string()}),
    }))
}
