//! An agent's branches (`/agents/{id}/branches`): list, create from a version of any branch,
//! get, and rename, describe, archive or protect.

use axum::extract::Path;
use colloquy_core::agents;
use colloquy_core::branches::{History, WHOLE};
use colloquy_core::ids::{self, AgentId};
use colloquy_core::scope::Role;
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_store::{
    AgentRow, BranchChange, BranchRow, Commit, NewBranch, OtherParents, StoreError, VersionMeta,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::versions::{self, metadata};
use super::{check_tools, content, view};
use crate::auth::{Caller, Ctx};
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, from_body};
use crate::routes::access::access_info;

/// Versions a branch's GET lists, newest first.
const RECENT_VERSIONS: usize = 10;

/// Who may commit to a branch (`BranchProtectionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Protection {
    /// Any key that may write agents.
    WriterPermsRequired,
    /// Only administrators.
    AdminPermsRequired,
}

impl Protection {
    fn as_str(self) -> &'static str {
        match self {
            Protection::WriterPermsRequired => "writer_perms_required",
            Protection::AdminPermsRequired => "admin_perms_required",
        }
    }
}

/// 409 when the branch is archived, 403 when it is protected beyond the caller's role: a
/// branch a commit may not go to.
pub(crate) async fn check_open(cx: &Ctx, agent_id: &AgentId, branch_id: &str) -> ApiResult<()> {
    let (name, archived, protection) = cx
        .app
        .store
        .branch_gate(&cx.workspace_id, agent_id, branch_id)
        .await
        .or_not_found("branch")?;
    if archived {
        return Err(ApiError::Conflict {
            status: "branch_archived",
            message: format!("The branch {name:?} is archived; restore it to change it."),
        });
    }
    if protection == Protection::AdminPermsRequired.as_str() && cx.role() != Role::Admin {
        return Err(ApiError::MissingScope(format!(
            "admin role (the branch {name:?} is protected)"
        )));
    }
    Ok(())
}

/// What a branch's views share.
fn common(b: &BranchRow, caller: &Caller) -> Map<String, Value> {
    let Value::Object(out) = json!({
        "id": b.id,
        "name": b.name,
        "agent_id": b.agent_id,
        "description": b.description,
        "created_at": b.created_at,
        "last_committed_at": b.last_committed_at,
        "is_archived": b.archived,
        "protection_status": b.protection_status,
        "access_info": access_info(&b.created_by, &b.creator_name, &b.creator_email, caller),
        "current_live_percentage": share(b.traffic_ppm),
    }) else {
        unreachable!("a JSON object literal")
    };
    out
}

/// A share in millionths as the reference writes it, a fraction of the whole.
pub(super) fn share(ppm: i64) -> f64 {
    // Shares are at most a million: exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    let share = ppm as f64 / WHOLE as f64;
    share
}

/// `AgentBranchResponse`.
fn response(b: &BranchRow, versions: &[VersionMeta], caller: &Caller) -> Value {
    let mut out = common(b, caller);
    let parent = b
        .parent_branch_id
        .as_ref()
        .map(|id| json!({"id": id, "name": b.parent_branch_name.as_deref().unwrap_or_default()}));
    out.insert("parent_branch".into(), parent.unwrap_or(Value::Null));
    let recent: Vec<Value> = versions
        .iter()
        .rev()
        .filter(|v| v.branch_id == b.id)
        .take(RECENT_VERSIONS)
        .map(|v| metadata(v, caller))
        .collect();
    out.insert("most_recent_versions".into(), Value::Array(recent));
    Value::Object(out)
}

/// The agent's version history as a graph.
pub(super) fn history(versions: &[VersionMeta]) -> History {
    let mut history = History::default();
    for v in versions {
        history.add(&v.id, v.parents());
    }
    history
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// Archived branches too.
    #[serde(default)]
    include_archived: bool,
    /// At most this many branches (1 to 100).
    #[serde(default = "default_limit")]
    limit: u32,
    /// Count each branch's versions ahead of and behind the main branch.
    #[serde(default)]
    include_commit_status: bool,
}

fn default_limit() -> u32 {
    100
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches", params(("agent_id" = String, Path), ListParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn list_branches(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    if !(1..=100).contains(&params.limit) {
        return Err(ApiError::invalid(Violation::new(
            ["query", "limit"],
            "less_than_equal",
            "Input should be between 1 and 100",
        )));
    }
    let agent = cx.agent(&agent_id).await?;
    let store = &cx.app.store;
    let (ws, now) = (&cx.workspace_id, time::now_secs());
    let branches =
        store.list_branches(ws, &agent_id, params.include_archived, params.limit, now).await?;
    let versions = store.agent_versions(ws, &agent_id).await?;
    let history = history(&versions);
    let main_head = branches
        .iter()
        .find(|b| b.id == agent.main_branch_id)
        .map_or(agent.version_id.as_str(), |b| b.head_version_id.as_str());
    let mut results = Vec::with_capacity(branches.len());
    for b in &branches {
        let mut out = common(b, &cx);
        let draft = store.get_draft(ws, &agent_id, &b.id, &cx.user_id).await?;
        let head = versions.iter().find(|v| v.id == b.head_version_id);
        let (ahead, behind) = if params.include_commit_status {
            let (ahead, behind) = history.ahead_behind(&b.head_version_id, main_head);
            (json!(ahead), json!(behind))
        } else {
            (Value::Null, Value::Null)
        };
        out.extend([
            ("parent_branch_id".into(), json!(b.parent_branch_id)),
            ("draft_exists".into(), json!(draft.is_some())),
            ("draft_created_at".into(), json!(draft.as_ref().map(|d| d.created_at))),
            (
                "draft_is_behind_tip".into(),
                json!(draft.as_ref().is_some_and(|d| d.created_at < b.last_committed_at)),
            ),
            ("calls_7d".into(), json!(b.calls_7d)),
            ("commits_ahead".into(), ahead),
            ("commits_behind".into(), behind),
            (
                "merged_into_branch_id".into(),
                json!(head.and_then(|v| v.merged_into_branch_id.clone())),
            ),
        ]);
        results.push(Value::Object(out));
    }
    Ok(Json(json!({
        "results": results,
        "meta": {"total": results.len(), "page": 1, "page_size": params.limit},
    })))
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateBody {
    parent_version_id: String,
    name: String,
    description: String,
    conversation_config: Option<Value>,
    platform_settings: Option<Value>,
    workflow: Option<Value>,
    #[serde(default)]
    include_draft: bool,
}

/// 422 unless `name` has 1 to 140 characters and `description` at most 4096.
fn check_names(name: Option<&str>, description: Option<&str>) -> ApiResult<()> {
    let mut violations = Vec::new();
    if let Some(name) = name
        && !(1..=140).contains(&name.chars().count())
    {
        violations.push(Violation::new(
            ["body", "name"],
            "string_too_long",
            "A branch name has 1 to 140 characters",
        ));
    }
    if description.is_some_and(|d| d.chars().count() > 4096) {
        violations.push(Violation::new(
            ["body", "description"],
            "string_too_long",
            "String should have at most 4096 characters",
        ));
    }
    if violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(violations)) }
}

/// 409 for a name another branch of the agent has.
fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::Conflict {
            status: "branch_name_taken",
            message: "Another branch of this agent has that name.".into(),
        },
        e => ApiError::from(e),
    }
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/branches", params(("agent_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn create_branch(
    cx: Ctx, Path(agent_id): Path<AgentId>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    let body: CreateBody = from_body(body)?;
    check_names(Some(&body.name), Some(&body.description))?;
    let parent = versions::at(&cx, &agent_id, None, Some(&body.parent_version_id)).await?;
    let mut base = view::stored_doc(&parent.row)?.to_body();
    if body.include_draft {
        let store = &cx.app.store;
        let tip = store.agent_at_branch(&cx.workspace_id, &agent_id, &parent.branch_id).await?;
        if tip.row.version_id != body.parent_version_id {
            return Err(ApiError::invalid(Violation::new(
                ["body", "include_draft"],
                "value_error",
                "include_draft needs parent_version_id to be the head of its branch",
            )));
        }
        if let Some(draft) =
            store.get_draft(&cx.workspace_id, &agent_id, &parent.branch_id, &cx.user_id).await?
        {
            base = serde_json::from_str(&draft.document)?;
        }
    }
    let mut patch = Map::new();
    for (key, value) in [
        ("conversation_config", body.conversation_config),
        ("platform_settings", body.platform_settings),
        ("workflow", body.workflow),
    ] {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            patch.insert(key.into(), value);
        }
    }
    let doc = agents::apply_patch(base, Value::Object(patch)).map_err(ApiError::Invalid)?;
    check_tools(&cx, &doc).await?;
    let content = content(&doc)?;
    let branch_id = ids::new_id(ids::prefix::BRANCH);
    let branch = NewBranch {
        id: &branch_id,
        name: &body.name,
        description: &body.description,
        parent_branch_id: &parent.branch_id,
        first: Commit {
            branch_id: &branch_id,
            expected_head: &body.parent_version_id,
            content: &content,
            author: &cx.user_id,
            description: "",
            parents: OtherParents {
                out_of_branch: Some(body.parent_version_id.clone()),
                ..OtherParents::default()
            },
            publish: None,
            now: time::now_secs(),
        },
    };
    cx.app.store.insert_branch(&cx.workspace_id, &agent_id, &branch).await.map_err(name_taken)?;
    Ok(Json(json!({
        "created_branch_id": branch_id,
        "created_version_id": content.version_id,
    })))
}

/// A branch's response, or 404 for the agent or the branch.
async fn branch_response(cx: &Ctx, agent_id: &AgentId, branch_id: &str) -> ApiResult<Value> {
    let store = &cx.app.store;
    let branch =
        match store.get_branch(&cx.workspace_id, agent_id, branch_id, time::now_secs()).await {
            Err(StoreError::NotFound) => {
                cx.agent(agent_id).await?;
                return Err(ApiError::NotFound("branch"));
            }
            found => found?,
        };
    let versions = store.agent_versions(&cx.workspace_id, agent_id).await?;
    Ok(response(&branch, &versions, cx))
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}", params(("agent_id" = String, Path), ("branch_id" = String, Path)), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_branch(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(branch_response(&cx, &agent_id, &branch_id).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct UpdateBody {
    name: Option<String>,
    description: Option<String>,
    is_archived: Option<bool>,
    protection_status: Option<Protection>,
}

#[utoipa::path(patch, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}", params(("agent_id" = String, Path), ("branch_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn update_branch(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>, Json(body): Json<UpdateBody>,
) -> ApiResult<Json<Value>> {
    check_names(body.name.as_deref(), body.description.as_deref())?;
    let agent = cx.agent(&agent_id).await?;
    if body.is_archived == Some(true) && branch_id == agent.main_branch_id {
        return Err(ApiError::invalid(Violation::new(
            ["body", "is_archived"],
            "value_error",
            "The main branch cannot be archived",
        )));
    }
    let change = BranchChange {
        name: body.name,
        description: body.description,
        archived: body.is_archived,
        protection_status: body.protection_status.map(|p| p.as_str().to_owned()),
        by: cx.user_id.clone(),
        at: time::now_secs(),
        source: "manual",
    };
    cx.app.store.update_branch(&cx.workspace_id, &agent_id, &branch_id, &change).await.map_err(
        |e| match e {
            StoreError::NotFound => ApiError::NotFound("branch"),
            e => name_taken(e),
        },
    )?;
    Ok(Json(branch_response(&cx, &agent_id, &branch_id).await?))
}

/// Gives `to`, a new duplicate of `from`, a copy of each unarchived branch of `from` besides
/// main (same name and description, from its head) and `from`'s traffic split on the copies;
/// the share of a branch not copied stays with main, as the reference duplicates agents.
pub(super) async fn copy_branches(cx: &Ctx, from: &AgentRow, to: &AgentId) -> ApiResult<()> {
    let (store, ws, now) = (&cx.app.store, &cx.workspace_id, time::now_secs());
    let branches = store.list_branches(ws, &from.summary.id, false, 100, now).await?;
    let main = versions::at(cx, to, None, None).await?;
    let mut split = Vec::new();
    let mut main_share = 0;
    for b in &branches {
        if b.id == from.main_branch_id {
            main_share += b.traffic_ppm;
            continue;
        }
        let head = store.agent_at_branch(ws, &from.summary.id, &b.id).await?;
        let content = content(&view::stored_doc(&head.row)?)?;
        let id = ids::new_id(ids::prefix::BRANCH);
        let branch = NewBranch {
            id: &id,
            name: &b.name,
            description: &b.description,
            parent_branch_id: &main.branch_id,
            first: Commit {
                branch_id: &id,
                expected_head: &main.row.version_id,
                content: &content,
                author: &cx.user_id,
                description: "",
                parents: OtherParents {
                    out_of_branch: Some(main.row.version_id.clone()),
                    ..OtherParents::default()
                },
                publish: None,
                now,
            },
        };
        store.insert_branch(ws, to, &branch).await?;
        if b.traffic_ppm > 0 {
            split.push((id, b.traffic_ppm));
        }
    }
    if !split.is_empty() {
        if main_share > 0 {
            split.push((main.branch_id.clone(), main_share));
        }
        store.deploy(ws, to, &split, &cx.user_id, now, "duplicate").await?;
    }
    Ok(())
}
