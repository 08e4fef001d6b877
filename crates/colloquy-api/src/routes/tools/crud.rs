//! Create, get, update and delete tools.

use axum::extract::Path;
use colloquy_core::ids::ToolId;
use colloquy_core::time;
use colloquy_core::tools::{self, ToolDoc, ToolKind};
use colloquy_core::validation::Violation;
use colloquy_store::{NewTool, OtherParents, StoreError, ToolContent};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::routes::agents::{self, CommitError};

/// Validates a body and checks the secrets it refers to exist in the caller's workspace.
async fn prepare(cx: &Ctx, body: Value) -> ApiResult<(ToolDoc, ToolContent)> {
    let doc = tools::prepare(body).map_err(ApiError::Invalid)?;
    let mut violations = Vec::new();
    for (loc, secret_id) in &doc.secret_refs {
        match cx.app.store.get_secret(&cx.workspace_id, secret_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                violations.push(Violation {
                    loc: loc.clone(),
                    msg: format!("Secret {secret_id} does not exist"),
                    kind: "value_error".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mcp_server_id = (doc.tool_type == ToolKind::Mcp)
        .then(|| doc.document["tool_config"]["mcp_server_id"].as_str().map(str::to_owned))
        .flatten();
    if let Some(server) = &mcp_server_id {
        match cx.app.store.get_mcp_server(&cx.workspace_id, server).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => violations.push(Violation::new(
                ["body", "tool_config", "mcp", "mcp_server_id"],
                "value_error",
                format!("MCP server {server} does not exist"),
            )),
            Err(e) => return Err(e.into()),
        }
    }
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    let content = ToolContent {
        name: doc.name.clone(),
        name_lower: doc.name.to_lowercase(),
        tool_type: doc.tool_type,
        document: serde_json::to_string(&doc.document)?,
        secret_ids: doc.secret_refs.iter().map(|(_, id)| id.clone()).collect(),
        mcp_server_id,
    };
    Ok((doc, content))
}

async fn respond(cx: &Ctx, tool_id: &ToolId) -> ApiResult<Json<Value>> {
    let row = cx.tool(tool_id).await?;
    let usage = cx.app.store.tool_usage(&cx.workspace_id, std::slice::from_ref(&row.id)).await?;
    Ok(Json(view::full(&row, usage.first().map(|(_, u)| *u), cx)?))
}

#[utoipa::path(post, path = "/v1/convai/tools", security(("api_key" = ["tools:write"])))]
pub(super) async fn create_tool(cx: Ctx, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let (_, content) = prepare(&cx, body).await?;
    let tool = NewTool {
        id: ToolId::generate(),
        workspace_id: cx.workspace_id.clone(),
        created_by: cx.user_id.clone(),
        created_at: time::now_secs(),
        content,
    };
    cx.app.store.insert_tool(&tool).await?;
    respond(&cx, &tool.id).await
}

#[utoipa::path(get, path = "/v1/convai/tools/{tool_id}", params(("tool_id" = String, Path)), security(("api_key" = ["tools:read"])))]
pub(super) async fn get_tool(cx: Ctx, Path(tool_id): Path<ToolId>) -> ApiResult<Json<Value>> {
    respond(&cx, &tool_id).await
}

#[utoipa::path(patch, path = "/v1/convai/tools/{tool_id}", params(("tool_id" = String, Path)), security(("api_key" = ["tools:write"])))]
pub(super) async fn update_tool(
    cx: Ctx, Path(tool_id): Path<ToolId>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    cx.tool(&tool_id).await?;
    let (_, content) = prepare(&cx, body).await?;
    cx.app
        .store
        .update_tool(&cx.workspace_id, &tool_id, &content, time::now_secs())
        .await
        .or_not_found("tool")?;
    respond(&cx, &tool_id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteParams {
    /// Delete even while agents use the tool, removing it from them.
    force: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/convai/tools/{tool_id}", params(("tool_id" = String, Path), DeleteParams), security(("api_key" = ["tools:write"])))]
pub(super) async fn delete_tool(
    cx: Ctx, Path(tool_id): Path<ToolId>, Query(params): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    cx.tool(&tool_id).await?;
    if params.force == Some(true) {
        detach_everywhere(&cx, &tool_id).await?;
    }
    match cx.app.store.delete_tool(&cx.workspace_id, &tool_id).await {
        Ok(()) => Ok(Json(json!({}))),
        Err(StoreError::Conflict(why)) => Err(ApiError::Conflict {
            status: "tool_in_use",
            message: format!(
                "The tool cannot be deleted: {why}. Remove it from them first, or delete with force=true."
            ),
        }),
        Err(e) => Err(e).or_not_found("tool"),
    }
}

/// Removes the tool from every agent that uses it.
async fn detach_everywhere(cx: &Ctx, tool_id: &ToolId) -> ApiResult<()> {
    // Each pass detaches every dependent it sees; only agents updated concurrently remain.
    for _ in 0..10 {
        let dependents = cx.app.store.tool_dependents(&cx.workspace_id, tool_id, None, 100).await?;
        if dependents.is_empty() {
            return Ok(());
        }
        for dependent in dependents {
            let head = agents::at(cx, &dependent.id, None, None).await?;
            let mut doc = agents::stored_doc(&head.row)?;
            doc.detach_tool(tool_id);
            let description = format!("Removed the deleted tool {tool_id}");
            match agents::commit(cx, &head, &doc, &description, OtherParents::default(), None).await
            {
                // A concurrent update: the next pass sees the new version.
                Ok(_) | Err(CommitError::Moved) | Err(CommitError::Api(ApiError::NotFound(_))) => {}
                Err(CommitError::Api(e)) => return Err(e),
            }
        }
    }
    Err(ApiError::Conflict {
        status: "concurrent_update",
        message: "Agents using the tool kept changing while it was being removed from them; retry."
            .into(),
    })
}
