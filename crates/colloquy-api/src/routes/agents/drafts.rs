//! Drafts (`/agents/{id}/drafts?branch_id=`): a user's unsaved changes kept beside a branch's
//! head. A draft is never served to conversations; the user's next PATCH of the branch commits
//! it (with the PATCH on top) as the branch's next version, and `DELETE` discards it.

use axum::extract::Path;
use axum::response::IntoResponse;
use colloquy_core::agents;
use colloquy_core::ids::AgentId;
use colloquy_core::time;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::branches::check_open;
use super::{check_tools, versions, view};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, from_body, json_text};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DraftParams {
    /// The branch the draft is of.
    #[param(required = true)]
    branch_id: Option<String>,
}

/// The draft's fields (`Body_Create_agent_draft_...`); each replaces what the branch holds.
#[derive(Debug, Deserialize)]
pub(super) struct DraftBody {
    conversation_config: Value,
    platform_settings: Value,
    workflow: Value,
    name: String,
    tags: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/drafts", params(("agent_id" = String, Path), DraftParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn create_draft(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<DraftParams>,
    Json(body): Json<Value>,
) -> ApiResult<impl IntoResponse> {
    let branch = versions::required(&cx, &agent_id, params.branch_id, "branch_id").await?;
    let head = versions::at(&cx, &agent_id, Some(&branch), None).await?;
    let body: DraftBody = from_body(body)?;
    check_open(&cx, &agent_id, &head.branch_id).await?;
    let mut patch = json!({
        "conversation_config": body.conversation_config,
        "platform_settings": body.platform_settings,
        "workflow": body.workflow,
        "name": body.name,
    });
    if let Some(tags) = body.tags {
        patch["tags"] = json!(tags);
    }
    let base = view::stored_doc(&head.row)?.to_body();
    let draft = agents::apply_patch(base, patch).map_err(ApiError::Invalid)?;
    check_tools(&cx, &draft).await?;
    let document = serde_json::to_string(&draft.to_body())?;
    cx.app
        .store
        .put_draft(
            &cx.workspace_id,
            &agent_id,
            &head.branch_id,
            &cx.user_id,
            &document,
            time::now_secs(),
        )
        .await?;
    Ok(json_text(view::full(&versions::with_content(&head, &draft)?, &cx)?))
}

#[utoipa::path(delete, path = "/v1/convai/agents/{agent_id}/drafts", params(("agent_id" = String, Path), DraftParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn delete_draft(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<DraftParams>,
) -> ApiResult<Json<Value>> {
    let branch = versions::required(&cx, &agent_id, params.branch_id, "branch_id").await?;
    let head = versions::at(&cx, &agent_id, Some(&branch), None).await?;
    let store = &cx.app.store;
    if !store.delete_draft(&cx.workspace_id, &agent_id, &head.branch_id, &cx.user_id).await? {
        return Err(ApiError::NotFound("draft"));
    }
    Ok(Json(json!({})))
}
