//! Merging one branch into another and rebasing a branch onto main, each with its preview: a
//! three-way merge of the two heads from their nearest common version
//! (`colloquy_core::merge`). A merge refuses fields both sides changed unless `force` (the
//! source's value then wins); a rebase (from main, or `source_branch_id`) keeps the branch's
//! own value there, as the reference describes it. Either lists those fields in the preview's
//! `overridden_fields`.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use colloquy_core::agents::{self, AgentDoc};
use colloquy_core::ids::AgentId;
use colloquy_core::merge::{Prefer, three_way};
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_store::{AgentAtRow, BranchChange, OtherParents};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::branches::{check_open, history};
use super::versions::{self, CommitError};
use super::view;
use crate::auth::Ctx;
use crate::contention;
use crate::error::{ApiError, ApiResult};
use crate::extract::{MaybeJson, Query, json_text};

/// What merging `source` into `target` gives.
struct Plan {
    /// The target's head as read.
    target: AgentAtRow,
    /// The source's head version.
    source_version: String,
    /// The merged body, in the stored form of both sides.
    merged: Value,
    /// Fields both sides changed.
    conflicts: Vec<String>,
    /// The target already has everything of the source.
    up_to_date: bool,
}

/// Merges the head of `source` into the head of `target`.
async fn plan(
    cx: &Ctx, agent_id: &AgentId, source: &str, target: &str, prefer: Prefer,
) -> ApiResult<Plan> {
    if source == target {
        return Err(ApiError::invalid(Violation::new(
            ["query", "target_branch_id"],
            "value_error",
            "A branch cannot be merged into itself",
        )));
    }
    let source = versions::at(cx, agent_id, Some(source), None).await?;
    let target = versions::at(cx, agent_id, Some(target), None).await?;
    let (s, t) = (&source.row.version_id, &target.row.version_id);
    let history = history(&cx.app.store.agent_versions(&cx.workspace_id, agent_id).await?);
    let base = history.merge_base(t, s).ok_or_else(|| ApiError::Conflict {
        status: "no_common_ancestor",
        message: "The two branches share no version to merge from.".into(),
    })?;
    let target_body = view::stored_doc(&target.row)?.to_body();
    if &base == s {
        let source_version = s.clone();
        return Ok(Plan {
            target,
            source_version,
            merged: target_body,
            conflicts: Vec::new(),
            up_to_date: true,
        });
    }
    let base = versions::at(cx, agent_id, None, Some(&base)).await?;
    let merged = three_way(
        &view::stored_doc(&base.row)?.to_body(),
        &target_body,
        &view::stored_doc(&source.row)?.to_body(),
        prefer,
    );
    Ok(Plan {
        target,
        source_version: s.clone(),
        merged: merged.value,
        conflicts: merged.conflicts,
        up_to_date: false,
    })
}

impl Plan {
    /// The merged document checked as a write is, for a commit.
    fn checked(&self) -> ApiResult<AgentDoc> {
        agents::revalidate(self.merged.clone()).map_err(ApiError::Invalid)
    }
}

/// `MergePreviewResponseModel`: the target as the merge would leave it, and the conflicts. The
/// merged body is shown as it is (both sides were checked when they were saved; the merge
/// itself checks it again), and the conflicts are written after the agent's own fields.
fn preview(cx: &Ctx, plan: Plan) -> ApiResult<Response> {
    let doc = agents::stored(plan.merged).map_err(ApiError::Invalid)?;
    let mut out = view::full(&versions::with_content(&plan.target, &doc)?, cx)?;
    out.pop();
    out.extend_from_slice(b",\"overridden_fields\":");
    serde_json::to_writer(&mut out, &plan.conflicts)?;
    out.push(b'}');
    Ok(json_text(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PreviewParams {
    /// The branch merged into.
    #[param(required = true)]
    target_branch_id: Option<String>,
    /// The source's value wins where both sides changed a field.
    #[serde(default)]
    force: bool,
}

fn prefer(force: bool) -> Prefer {
    if force { Prefer::Source } else { Prefer::Target }
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches/{source_branch_id}/merge-preview", params(("agent_id" = String, Path), ("source_branch_id" = String, Path), PreviewParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn merge_preview(
    cx: Ctx, Path((agent_id, source)): Path<(AgentId, String)>, Query(params): Query<PreviewParams>,
) -> ApiResult<Response> {
    let target =
        versions::required(&cx, &agent_id, params.target_branch_id, "target_branch_id").await?;
    let plan = plan(&cx, &agent_id, &source, &target, prefer(params.force)).await?;
    preview(&cx, plan)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MergeParams {
    /// The branch merged into.
    #[param(required = true)]
    target_branch_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MergeBody {
    #[serde(default = "yes")]
    archive_source_branch: bool,
    #[serde(default)]
    force: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/branches/{source_branch_id}/merge", params(("agent_id" = String, Path), ("source_branch_id" = String, Path), MergeParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn merge(
    cx: Ctx, Path((agent_id, source)): Path<(AgentId, String)>, Query(params): Query<MergeParams>,
    MaybeJson(body): MaybeJson<MergeBody>,
) -> ApiResult<impl IntoResponse> {
    let body = body.unwrap_or(MergeBody { archive_source_branch: true, force: false });
    let target =
        versions::required(&cx, &agent_id, params.target_branch_id, "target_branch_id").await?;
    for attempt in 0..contention::ATTEMPTS {
        contention::pause(attempt).await;
        let plan = plan(&cx, &agent_id, &source, &target, prefer(body.force)).await?;
        check_open(&cx, &agent_id, &target).await?;
        if !plan.conflicts.is_empty() && !body.force {
            return Err(ApiError::Conflict {
                status: "merge_conflict",
                message: format!(
                    "Both branches changed {}; merge with force=true to take the source's values.",
                    plan.conflicts.join(", ")
                ),
            });
        }
        if !plan.up_to_date {
            let parents = OtherParents {
                merged_from: Some((source.clone(), plan.source_version.clone())),
                ..OtherParents::default()
            };
            let description = format!("Merged branch {source}");
            let merged = plan.checked()?;
            match versions::commit(&cx, &plan.target, &merged, &description, parents, None).await {
                Ok(_) => {}
                Err(CommitError::Moved) => continue,
                Err(CommitError::Api(e)) => return Err(e),
            }
        }
        if body.archive_source_branch && source != plan.target.row.main_branch_id {
            let archive = BranchChange {
                archived: Some(true),
                by: cx.user_id.clone(),
                at: time::now_secs(),
                source: "branch_merge",
                ..BranchChange::default()
            };
            cx.app.store.update_branch(&cx.workspace_id, &agent_id, &source, &archive).await?;
        }
        let at = versions::at(&cx, &agent_id, Some(&target), None).await?;
        return Ok(json_text(view::full(&at, &cx)?));
    }
    Err(versions::kept_moving())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RebaseParams {
    /// The branch whose changes are taken in (the main branch when absent).
    source_branch_id: Option<String>,
}

/// The branch a rebase of `branch_id` takes changes from, and 422 when it is that branch.
async fn rebase_source(
    cx: &Ctx, agent_id: &AgentId, branch_id: &str, params: &RebaseParams,
) -> ApiResult<String> {
    let source = match versions::given(params.source_branch_id.as_deref()) {
        Some(source) => source.to_owned(),
        None => cx.agent(agent_id).await?.main_branch_id,
    };
    if source == branch_id {
        return Err(ApiError::invalid(Violation::new(
            ["path", "branch_id"],
            "value_error",
            "A branch cannot be rebased onto itself",
        )));
    }
    Ok(source)
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/rebase-preview", params(("agent_id" = String, Path), ("branch_id" = String, Path), RebaseParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn rebase_preview(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>,
    Query(params): Query<RebaseParams>,
) -> ApiResult<Response> {
    let source = rebase_source(&cx, &agent_id, &branch_id, &params).await?;
    let plan = plan(&cx, &agent_id, &source, &branch_id, Prefer::Target).await?;
    preview(&cx, plan)
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/rebase", params(("agent_id" = String, Path), ("branch_id" = String, Path), RebaseParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn rebase(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>,
    Query(params): Query<RebaseParams>,
) -> ApiResult<impl IntoResponse> {
    let source = rebase_source(&cx, &agent_id, &branch_id, &params).await?;
    for attempt in 0..contention::ATTEMPTS {
        contention::pause(attempt).await;
        let plan = plan(&cx, &agent_id, &source, &branch_id, Prefer::Target).await?;
        check_open(&cx, &agent_id, &branch_id).await?;
        if !plan.up_to_date {
            let parents = OtherParents {
                rebased_from: Some(plan.source_version.clone()),
                ..OtherParents::default()
            };
            let merged = plan.checked()?;
            match versions::commit(
                &cx,
                &plan.target,
                &merged,
                &format!("Rebased onto {source}"),
                parents,
                None,
            )
            .await
            {
                Ok(_) => {}
                Err(CommitError::Moved) => continue,
                Err(CommitError::Api(e)) => return Err(e),
            }
        }
        let at = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
        return Ok(json_text(view::full(&at, &cx)?));
    }
    Err(versions::kept_moving())
}
