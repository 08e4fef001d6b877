//! Create, get, update, delete and duplicate.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use colloquy_core::agents::{self, AgentDoc};
use colloquy_core::ids::{self, AgentId};
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::{AgentAtRow, AgentContent, NewAgent, OtherParents, Publish};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::versions::{self, CommitError};
use super::{branches, procedures, view};
use crate::auth::Ctx;
use crate::contention;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, MaybeJson, Query, json_text};
use crate::routes::agent_testing::check_attached_tests;
use crate::state::Limits;

/// The columns and document text to store for `doc`.
pub(crate) fn content(doc: &AgentDoc) -> ApiResult<AgentContent> {
    Ok(AgentContent {
        name: doc.name.clone(),
        name_lower: doc.name.to_lowercase(),
        tags: doc.tags.clone(),
        archived: doc.archived,
        voice_id: doc.voice_id.clone(),
        version_id: ids::new_id(ids::prefix::VERSION),
        document: serde_json::to_string(&doc.document)?,
        tool_ids: doc.tool_ids(),
        mcp_server_ids: doc.mcp_server_ids().into_iter().map(|(_, _, id)| id).collect(),
        document_ids: doc.document_ids(),
    })
}

/// What the store cannot check of an agent: the server's limits, and that the tools and MCP
/// servers it names exist in the workspace under distinct names (the LLM calls tools by name).
pub(super) async fn check_tools(cx: &Ctx, doc: &AgentDoc) -> ApiResult<()> {
    let ids = doc.tool_ids();
    let tools = cx.app.store.get_tools(&cx.workspace_id, &ids).await?;
    let mut violations = check_limits(&cx.app.settings.limits, doc, ids.len());
    for (i, id) in ids.iter().enumerate() {
        if !tools.iter().any(|r| &r.id == id) {
            let mut at = loc(&TOOL_IDS);
            at.push(LocItem::Index(i));
            violations.push(Violation::new(at, "value_error", format!("Tool {id} does not exist")));
        }
    }
    let mut names: Vec<String> = tools.into_iter().map(|r| r.name).collect();
    names.extend(doc.inline_tool_names());
    names.sort();
    for pair in names.windows(2).filter(|pair| pair[0] == pair[1]) {
        violations.push(Violation::new(
            TOOL_IDS,
            "value_error",
            format!("Two tools of this agent are named {:?}; tool names must be unique", pair[0]),
        ));
    }
    violations.extend(missing_mcp_servers(cx, doc).await?);
    violations.extend(missing_documents(cx, doc).await?);
    if violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(violations)) }
}

/// Where an agent's tools are named.
const TOOL_IDS: [&str; 5] = ["body", "conversation_config", "agent", "prompt", "tool_ids"];

fn loc(keys: &[&str]) -> Vec<LocItem> {
    keys.iter().map(|k| LocItem::from(*k)).collect()
}

/// This server's limits on the number of tools and the length of the prompt.
fn check_limits(limits: &Limits, doc: &AgentDoc, tool_ids: usize) -> Vec<Violation> {
    let mut violations = Vec::new();
    let count = tool_ids + doc.inline_tool_names().len();
    if count > limits.max_tools_per_agent {
        violations.push(Violation::new(
            TOOL_IDS,
            "too_long",
            format!(
                "An agent may have at most {} tools (this server's COLLOQUY_MAX_TOOLS_PER_AGENT); this one has {count}",
                limits.max_tools_per_agent
            ),
        ));
    }
    let prompt_chars = doc
        .document
        .get("conversation_config")
        .and_then(|c| c.pointer("/agent/prompt/prompt"))
        .and_then(Value::as_str)
        .map_or(0, |p| p.chars().count());
    if prompt_chars > limits.max_prompt_chars {
        violations.push(Violation::new(
            ["body", "conversation_config", "agent", "prompt", "prompt"],
            "string_too_long",
            format!(
                "The prompt may be at most {} characters (COLLOQUY_MAX_PROMPT_CHARS); this one has {prompt_chars}",
                limits.max_prompt_chars
            ),
        ));
    }
    violations
}

/// The MCP servers the agent names that the workspace does not have.
async fn missing_mcp_servers(cx: &Ctx, doc: &AgentDoc) -> ApiResult<Vec<Violation>> {
    let servers = doc.mcp_server_ids();
    let ids: Vec<String> = servers.iter().map(|(_, _, id)| id.clone()).collect();
    let found = cx.app.store.get_mcp_servers(&cx.workspace_id, &ids).await?;
    Ok(servers
        .into_iter()
        .filter(|(_, _, id)| !found.iter().any(|r| &r.id == id))
        .map(|(field, i, id)| {
            let mut at = loc(&TOOL_IDS[..4]);
            at.extend([LocItem::from(field), LocItem::Index(i)]);
            Violation::new(at, "value_error", format!("MCP server {id} does not exist"))
        })
        .collect())
}

/// The knowledge-base documents the agent names that the workspace does not have.
async fn missing_documents(cx: &Ctx, doc: &AgentDoc) -> ApiResult<Vec<Violation>> {
    let ids = doc.document_ids();
    let found = cx.app.store.get_documents(&cx.workspace_id, &ids).await?;
    Ok(ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !found.iter().any(|r| &r.id == *id))
        .map(|(i, id)| {
            let mut at = loc(&TOOL_IDS[..4]);
            at.extend([LocItem::from("knowledge_base"), LocItem::Index(i)]);
            Violation::new(
                at,
                "value_error",
                format!("Knowledge base document {id} does not exist"),
            )
        })
        .collect())
}

async fn insert(cx: &Ctx, doc: &AgentDoc) -> ApiResult<AgentId> {
    let agent = NewAgent {
        id: AgentId::generate(),
        workspace_id: cx.workspace_id.clone(),
        created_by: cx.user_id.clone(),
        created_at: time::now_secs(),
        main_branch_id: ids::new_id(ids::prefix::BRANCH),
        content: content(doc)?,
    };
    cx.app.store.insert_agent(&agent).await?;
    Ok(agent.id)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CreateParams {
    /// Deprecated and ignored: every agent is versioned.
    #[serde(rename = "enable_versioning")]
    _enable_versioning: Option<bool>,
}

#[utoipa::path(post, path = "/v1/convai/agents/create", params(CreateParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn create_agent(
    cx: Ctx, Query(_): Query<CreateParams>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let doc = agents::prepare_create(body).map_err(ApiError::Invalid)?;
    check_tools(&cx, &doc).await?;
    check_attached_tests(&cx, doc.document.get("platform_settings")).await?;
    let agent_id = insert(&cx, &doc).await?;
    Ok(Json(json!({ "agent_id": agent_id })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct GetParams {
    /// A version of the agent: its configuration as that version saved it.
    version_id: Option<String>,
    /// A branch of the agent: its head (the main branch's when absent).
    branch_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}", params(("agent_id" = String, Path), GetParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_agent(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<GetParams>,
) -> ApiResult<impl IntoResponse> {
    let at =
        versions::at(&cx, &agent_id, params.branch_id.as_deref(), params.version_id.as_deref())
            .await?;
    Ok(json_text(view::full(&at, &cx)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PatchParams {
    /// The branch whose head the change is committed on (the main branch when absent).
    branch_id: Option<String>,
    /// Deprecated and ignored: every agent is versioned.
    #[serde(rename = "enable_versioning_if_not_enabled")]
    _enable_versioning_if_not_enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/convai/agents/{agent_id}", params(("agent_id" = String, Path), PatchParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn update_agent(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(params): Query<PatchParams>,
    MaybeJson(patch): MaybeJson<Value>,
) -> ApiResult<impl IntoResponse> {
    let patch = patch.unwrap_or_else(|| json!({}));
    if !patch.is_object() {
        return Err(ApiError::invalid(Violation::new(
            ["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )));
    }
    let at = patch_agent(&cx, &agent_id, params.branch_id.as_deref(), &patch).await?;
    Ok(json_text(view::full(&at, &cx)?))
}

/// Applies `patch` (merged as a PATCH body is) to the head of a branch (main when `None`), or
/// to the caller's draft of it when they have one, checks the result as a PATCH is checked and
/// commits it as the branch's next version (the draft is then gone), retrying when another
/// writer moves the head meanwhile; the branch's head after.
pub(crate) async fn patch_agent(
    cx: &Ctx, agent_id: &AgentId, branch_id: Option<&str>, patch: &Value,
) -> ApiResult<AgentAtRow> {
    patch_agent_edited(cx, agent_id, branch_id, patch, &|_| {}).await
}

/// [`patch_agent`], then `edit` on the result before it is checked: how the server sets what
/// a client may not write (the hold audio).
pub(crate) async fn patch_agent_edited(
    cx: &Ctx, agent_id: &AgentId, branch_id: Option<&str>, patch: &Value,
    edit: &(dyn Fn(&mut AgentDoc) + Sync),
) -> ApiResult<AgentAtRow> {
    let description =
        patch.get("version_description").and_then(Value::as_str).unwrap_or_default().to_owned();
    for attempt in 0..contention::ATTEMPTS {
        contention::pause(attempt).await;
        let head = versions::at(cx, agent_id, branch_id, None).await?;
        if head.branch_id != head.row.main_branch_id {
            branches::check_open(cx, agent_id, &head.branch_id).await?;
        }
        let store = &cx.app.store;
        let draft =
            store.get_draft(&cx.workspace_id, agent_id, &head.branch_id, &cx.user_id).await?;
        let base = match &draft {
            Some(draft) => serde_json::from_str(&draft.document)?,
            None => view::stored_doc(&head.row)?.to_body(),
        };
        let current_procedures = base.get("procedures").cloned().unwrap_or(Value::Null);
        let mut updated = agents::apply_patch(base, patch.clone()).map_err(ApiError::Invalid)?;
        edit(&mut updated);
        check_tools(cx, &updated).await?;
        check_attached_tests(cx, updated.document.get("platform_settings")).await?;
        let drafts =
            store.procedure_drafts(procedures::scope(cx, agent_id, &head.branch_id)).await?;
        let explicit = patch.get("procedures").filter(|p| !p.is_null());
        let (map, published) =
            procedures::publish(cx, &current_procedures, explicit, &drafts).await?;
        updated.document.insert("procedures".into(), map);
        let publish =
            (!drafts.is_empty()).then_some(Publish { user_id: &cx.user_id, versions: &published });
        match versions::commit(cx, &head, &updated, &description, OtherParents::default(), publish)
            .await
        {
            Ok(version_id) => {
                if draft.is_some() {
                    store
                        .delete_draft(&cx.workspace_id, agent_id, &head.branch_id, &cx.user_id)
                        .await?;
                }
                // The version this PATCH made, not the branch's head now: another writer may
                // already have committed on top of it.
                return versions::at(cx, agent_id, Some(&head.branch_id), Some(&version_id)).await;
            }
            Err(CommitError::Moved) => continue,
            Err(CommitError::Api(e)) => return Err(e),
        }
    }
    Err(versions::kept_moving())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteParams {
    /// Accepted for compatibility: nothing prevents deleting an agent yet.
    #[serde(rename = "force")]
    _force: Option<bool>,
}

#[utoipa::path(delete, path = "/v1/convai/agents/{agent_id}", params(("agent_id" = String, Path), DeleteParams), security(("api_key" = ["agents:write"])))]
pub(super) async fn delete_agent(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(_): Query<DeleteParams>,
) -> ApiResult<StatusCode> {
    cx.app.store.delete_agent(&cx.workspace_id, &agent_id).await.or_not_found("agent")?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct DuplicateBody {
    name: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/duplicate", params(("agent_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn duplicate_agent(
    cx: Ctx, Path(agent_id): Path<AgentId>, MaybeJson(body): MaybeJson<DuplicateBody>,
) -> ApiResult<Json<Value>> {
    let row = cx.agent(&agent_id).await?;
    let source = view::stored_doc(&row)?;
    let copy = agents::duplicate(&source, body.and_then(|b| b.name));
    let new_id = insert(&cx, &copy).await?;
    branches::copy_branches(&cx, &row, &new_id).await?;
    Ok(Json(json!({ "agent_id": new_id })))
}
