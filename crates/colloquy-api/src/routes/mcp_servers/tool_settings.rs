//! Per-tool settings of an MCP server: approvals (`tool-approvals`) and config overrides
//! (`tool-configs`).

use axum::extract::Path;
use colloquy_core::mcp_servers::{self, ToolConfigError};
use serde_json::Value;

use super::crud::{EnvironmentParams, modify};
use super::view;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};

fn tool_config_error(e: ToolConfigError, tool: &str) -> ApiError {
    match e {
        ToolConfigError::Invalid(violations) => ApiError::Invalid(violations),
        ToolConfigError::Exists => ApiError::Conflict {
            status: "tool_config_exists",
            message: format!("Tool {tool} already has a config override; update it instead"),
        },
        ToolConfigError::Missing => ApiError::NotFound("MCP tool config"),
    }
}

#[utoipa::path(post, path = "/v1/convai/mcp-servers/{mcp_server_id}/tool-approvals", params(("mcp_server_id" = String, Path)), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn add_tool_approval(
    cx: Ctx, Path(id): Path<String>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    modify(&cx, &id, |config| {
        mcp_servers::add_tool_approval(config, body.clone()).map_err(ApiError::Invalid)?;
        Ok(None)
    })
    .await
}

#[utoipa::path(delete, path = "/v1/convai/mcp-servers/{mcp_server_id}/tool-approvals/{tool_name}", params(("mcp_server_id" = String, Path), ("tool_name" = String, Path)), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn remove_tool_approval(
    cx: Ctx, Path((id, tool_name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    modify(&cx, &id, |config| {
        if mcp_servers::remove_tool_approval(config, &tool_name) {
            Ok(None)
        } else {
            Err(ApiError::NotFound("MCP tool approval"))
        }
    })
    .await
}

#[utoipa::path(post, path = "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs", params(("mcp_server_id" = String, Path), EnvironmentParams), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn add_tool_config(
    cx: Ctx, Path(id): Path<String>, Query(_): Query<EnvironmentParams>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let tool = body.get("tool_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    modify(&cx, &id, |config| {
        mcp_servers::add_tool_config(config, body.clone())
            .map_err(|e| tool_config_error(e, &tool))?;
        Ok(None)
    })
    .await
}

#[utoipa::path(get, path = "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs/{tool_name}", params(("mcp_server_id" = String, Path), ("tool_name" = String, Path)), security(("api_key" = ["mcp_servers:read"])))]
pub(super) async fn get_tool_config(
    cx: Ctx, Path((id, tool_name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let row = cx.mcp_server(&id).await?;
    let config = view::config(&row)?;
    mcp_servers::tool_config(&config, &tool_name)
        .cloned()
        .map(Json)
        .ok_or(ApiError::NotFound("MCP tool config"))
}

#[utoipa::path(patch, path = "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs/{tool_name}", params(("mcp_server_id" = String, Path), ("tool_name" = String, Path), EnvironmentParams), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn update_tool_config(
    cx: Ctx, Path((id, tool_name)): Path<(String, String)>, Query(_): Query<EnvironmentParams>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    modify(&cx, &id, |config| {
        mcp_servers::update_tool_config(config, &tool_name, body.clone())
            .map_err(|e| tool_config_error(e, &tool_name))?;
        Ok(None)
    })
    .await
}

#[utoipa::path(delete, path = "/v1/convai/mcp-servers/{mcp_server_id}/tool-configs/{tool_name}", params(("mcp_server_id" = String, Path), ("tool_name" = String, Path)), security(("api_key" = ["mcp_servers:write"])))]
pub(super) async fn remove_tool_config(
    cx: Ctx, Path((id, tool_name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    modify(&cx, &id, |config| {
        if mcp_servers::remove_tool_config(config, &tool_name) {
            Ok(None)
        } else {
            Err(ApiError::NotFound("MCP tool config"))
        }
    })
    .await
}
