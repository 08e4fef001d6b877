//! Which version of an agent a request acts on (a branch's head, a version by id, or the main
//! branch's head), committing a new version, and `GET /agents/{id}/versions/{version_id}`.

use axum::extract::Path;
use colloquy_core::agents::AgentDoc;
use colloquy_core::ids::AgentId;
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_store::{AgentAtRow, Commit, OtherParents, Publish, StoreError, VersionMeta};
use serde_json::{Value, json};

use super::content;
use crate::auth::{Caller, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::access::access_info;

/// `None` for an absent or empty query value (clients send `branch_id=` for "the default").
pub(crate) fn given(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// A required query value, asked for once the agent is found: a request for another
/// workspace's agent is a 404 whatever else it lacks.
pub(crate) async fn required(
    cx: &Ctx, agent_id: &AgentId, value: Option<String>, name: &'static str,
) -> ApiResult<String> {
    cx.agent(agent_id).await?;
    value.ok_or_else(|| {
        ApiError::invalid(Violation::new(["query", name], "missing", "Field required"))
    })
}

/// The agent at `version_id` (which must be on `branch_id` when both are given), at the head
/// of `branch_id`, or at the head of its main branch; 404 naming what does not exist.
pub(crate) async fn at(
    cx: &Ctx, agent_id: &AgentId, branch_id: Option<&str>, version_id: Option<&str>,
) -> ApiResult<AgentAtRow> {
    let store = &cx.app.store;
    let found = match (given(branch_id), given(version_id)) {
        (None, None) => {
            let row = cx.agent(agent_id).await?;
            return Ok(AgentAtRow { branch_id: row.main_branch_id.clone(), row });
        }
        (branch, Some(version)) => {
            let at = store.agent_at_version(&cx.workspace_id, agent_id, version).await;
            match (at, branch) {
                (Ok(at), Some(branch)) if at.branch_id != branch => Err(StoreError::NotFound),
                (at, _) => at,
            }
        }
        (Some(branch), None) => store.agent_at_branch(&cx.workspace_id, agent_id, branch).await,
    };
    match found {
        Ok(at) => Ok(at),
        Err(StoreError::NotFound) => {
            cx.agent(agent_id).await?;
            Err(ApiError::NotFound(if given(version_id).is_some() { "version" } else { "branch" }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes `doc` the next version of `head`'s branch, unless it is what `head` already holds;
/// the id of the branch's head after. [`StoreError::Conflict`] (as an error) when the head
/// moved since `head` was read.
pub(crate) async fn commit(
    cx: &Ctx, head: &AgentAtRow, doc: &AgentDoc, description: &str, parents: OtherParents,
    publish: Option<Publish<'_>>,
) -> Result<String, CommitError> {
    let content = content(doc)?;
    let row = &head.row;
    let unchanged = parents.merged_from.is_none()
        && parents.rebased_from.is_none()
        && content.document == row.document
        && content.name == row.summary.name
        && serde_json::to_string(&content.tags)? == row.summary.tags;
    if unchanged {
        return Ok(row.version_id.clone());
    }
    let commit = Commit {
        branch_id: &head.branch_id,
        expected_head: &row.version_id,
        content: &content,
        author: &cx.user_id,
        description,
        parents,
        publish,
        now: time::now_secs(),
    };
    cx.app.store.commit_agent(&cx.workspace_id, &row.summary.id, &commit).await?;
    Ok(content.version_id)
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// The branch's head moved since it was read: read it again and retry.
    #[error("the branch changed meanwhile")]
    Moved,
    /// Anything else.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => CommitError::Moved,
            StoreError::NotFound => CommitError::Api(ApiError::NotFound("branch")),
            e => CommitError::Api(e.into()),
        }
    }
}

impl From<serde_json::Error> for CommitError {
    fn from(e: serde_json::Error) -> Self {
        CommitError::Api(e.into())
    }
}

/// The answer when a branch kept moving under a writer.
pub(crate) fn kept_moving() -> ApiError {
    ApiError::Conflict {
        status: "concurrent_update",
        message: "The branch was changed by another request at the same time; retry.".into(),
    }
}

/// `AgentVersionMetadata`.
pub(crate) fn metadata(v: &VersionMeta, caller: &Caller) -> Value {
    json!({
        "id": v.id,
        "agent_id": v.agent_id,
        "branch_id": v.branch_id,
        "version_description": v.description,
        "seq_no_in_branch": v.seq_no,
        "time_committed_secs": v.created_at,
        "parents": {
            "in_branch_parent_id": v.in_branch_parent_id,
            "out_of_branch_parent_id": v.out_of_branch_parent_id,
            "merged_into_branch_id": v.merged_into_branch_id,
            "merged_from_branch_id": v.merged_from_branch_id,
            "merged_from_version_id": v.merged_from_version_id,
            "rebased_from_version_id": v.rebased_from_version_id,
        },
        "access_info": access_info(&v.created_by, &v.creator_name, &v.creator_email, caller),
    })
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/versions/{version_id}", params(("agent_id" = String, Path), ("version_id" = String, Path)), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_version(
    cx: Ctx, Path((agent_id, version_id)): Path<(AgentId, String)>,
) -> ApiResult<Json<Value>> {
    match cx.app.store.get_version(&cx.workspace_id, &agent_id, &version_id).await {
        Ok(v) => Ok(Json(metadata(&v, &cx))),
        Err(StoreError::NotFound) => {
            cx.agent(&agent_id).await?;
            Err(ApiError::NotFound("version"))
        }
        Err(e) => Err(e.into()),
    }
}

/// `at` holding `doc` instead of its version's content (a draft, a merge's result), its ids
/// unchanged: what a preview shows.
pub(crate) fn with_content(at: &AgentAtRow, doc: &AgentDoc) -> ApiResult<AgentAtRow> {
    let mut out = at.clone();
    let summary = &mut out.row.summary;
    summary.name.clone_from(&doc.name);
    summary.tags = serde_json::to_string(&doc.tags)?;
    summary.archived = doc.archived;
    summary.voice_id.clone_from(&doc.voice_id);
    out.row.document = serde_json::to_string(&doc.document)?;
    Ok(out)
}
