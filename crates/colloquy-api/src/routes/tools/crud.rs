//! Create, get, update and delete tools.

use axum::extract::{Path, State};
use colloquy_core::ids::ToolId;
use colloquy_core::time;
use colloquy_core::tools::{self, ToolDoc, ToolKind};
use colloquy_core::validation::Violation;
use colloquy_store::{NewTool, StoreError, ToolContent};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::view;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::routes::agents;
use crate::state::AppState;

/// Validates a body and checks the secrets it refers to exist in the caller's workspace.
async fn prepare(
    state: &AppState,
    caller: &Caller,
    body: Value,
) -> ApiResult<(ToolDoc, ToolContent)> {
    let doc = tools::prepare(body).map_err(ApiError::Invalid)?;
    let mut violations = Vec::new();
    for (loc, secret_id) in &doc.secret_refs {
        match state
            .store
            .get_secret(&caller.workspace_id, secret_id)
            .await
        {
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
        .then(|| {
            doc.document["tool_config"]["mcp_server_id"]
                .as_str()
                .map(str::to_owned)
        })
        .flatten();
    if let Some(server) = &mcp_server_id {
        match state
            .store
            .get_mcp_server(&caller.workspace_id, server)
            .await
        {
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

async fn respond(state: &AppState, caller: &Caller, tool_id: &ToolId) -> ApiResult<Json<Value>> {
    let row = state
        .store
        .get_tool(&caller.workspace_id, tool_id)
        .await
        .or_not_found("tool")?;
    let usage = state
        .store
        .tool_usage(&caller.workspace_id, std::slice::from_ref(&row.id))
        .await?;
    Ok(Json(view::full(
        &row,
        usage.first().map(|(_, u)| *u),
        caller,
    )?))
}

#[utoipa::path(post, path = "/v1/convai/tools", security(("api_key" = ["tools:write"])))]
pub(super) async fn create_tool(
    caller: Caller,
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let (_, content) = prepare(&state, &caller, body).await?;
    let tool = NewTool {
        id: ToolId::generate(),
        workspace_id: caller.workspace_id.clone(),
        created_by: caller.user_id.clone(),
        created_at: time::now_secs(),
        content,
    };
    state.store.insert_tool(&tool).await?;
    respond(&state, &caller, &tool.id).await
}

#[utoipa::path(get, path = "/v1/convai/tools/{tool_id}", params(("tool_id" = String, Path)), security(("api_key" = ["tools:read"])))]
pub(super) async fn get_tool(
    caller: Caller,
    State(state): State<AppState>,
    Path(tool_id): Path<ToolId>,
) -> ApiResult<Json<Value>> {
    respond(&state, &caller, &tool_id).await
}

#[utoipa::path(patch, path = "/v1/convai/tools/{tool_id}", params(("tool_id" = String, Path)), security(("api_key" = ["tools:write"])))]
pub(super) async fn update_tool(
    caller: Caller,
    State(state): State<AppState>,
    Path(tool_id): Path<ToolId>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    state
        .store
        .get_tool(&caller.workspace_id, &tool_id)
        .await
        .or_not_found("tool")?;
    let (_, content) = prepare(&state, &caller, body).await?;
    state
        .store
        .update_tool(&caller.workspace_id, &tool_id, &content, time::now_secs())
        .await
        .or_not_found("tool")?;
    respond(&state, &caller, &tool_id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteParams {
    /// Delete even while agents use the tool, removing it from them.
    force: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/convai/tools/{tool_id}", params(("tool_id" = String, Path), DeleteParams), security(("api_key" = ["tools:write"])))]
pub(super) async fn delete_tool(
    caller: Caller,
    State(state): State<AppState>,
    Path(tool_id): Path<ToolId>,
    Query(params): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    state
        .store
        .get_tool(&caller.workspace_id, &tool_id)
        .await
        .or_not_found("tool")?;
    if params.force == Some(true) {
        detach_everywhere(&state, &caller, &tool_id).await?;
    }
    match state
        .store
        .delete_tool(&caller.workspace_id, &tool_id)
        .await
    {
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
async fn detach_everywhere(state: &AppState, caller: &Caller, tool_id: &ToolId) -> ApiResult<()> {
    // Each pass detaches every dependent it sees; only agents updated concurrently remain.
    for _ in 0..10 {
        let dependents = state
            .store
            .tool_dependents(&caller.workspace_id, tool_id, None, 100)
            .await?;
        if dependents.is_empty() {
            return Ok(());
        }
        for dependent in dependents {
            let row = agents::load(state, caller, &dependent.id).await?;
            let mut doc = agents::stored_doc(&row)?;
            doc.detach_tool(tool_id);
            let content = agents::content(&doc)?;
            match state
                .store
                .update_agent(
                    &caller.workspace_id,
                    &row.summary.id,
                    &content,
                    time::now_secs(),
                    &row.version_id,
                )
                .await
            {
                // A concurrent update: the next pass sees the new version.
                Ok(()) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Err(ApiError::Conflict {
        status: "concurrent_update",
        message: "Agents using the tool kept changing while it was being removed from them; retry."
            .into(),
    })
}
