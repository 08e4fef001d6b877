//! Procedures of a branch (`/agents/{id}/branches/{branch_id}/procedures`): create, list, get
//! at a version, remove, compile, and each user's drafts. A procedure's content is kept in
//! immutable versions; an agent version's `procedures` map names the versions it has. Edits
//! are the caller's drafts, which their next commit of the branch publishes (see [`publish`]).

use axum::extract::Path;
use colloquy_core::ids::{self, AgentId};
use colloquy_core::procedures::{self as rules, Fields, Kind};
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::{AgentAtRow, DraftScope, ProcedureDraftRow, ProcedureVersionRow};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::{versions, view};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, from_body};

/// `agtprc_...` ids of procedures.
const PROCEDURE: &str = "agtprc_";
/// `agtprcv_...` ids of their versions.
const PROCEDURE_VERSION: &str = "agtprcv_";

fn fields_of_draft(d: &ProcedureDraftRow) -> Fields {
    Fields {
        name: d.name.clone(),
        content: d.content.clone(),
        kind: Kind::parse(&d.kind),
        trigger: d.trigger_text.clone(),
        folder_parent_id: d.folder_parent_id.clone(),
    }
}

fn fields_of_version(v: &ProcedureVersionRow) -> Fields {
    Fields {
        name: v.name.clone(),
        content: v.content.clone(),
        kind: Kind::parse(&v.kind),
        trigger: v.trigger_text.clone(),
        folder_parent_id: v.folder_parent_id.clone(),
    }
}

fn draft_row(procedure_id: &str, fields: &Fields, removed: bool) -> ProcedureDraftRow {
    ProcedureDraftRow {
        procedure_id: procedure_id.to_owned(),
        removed,
        name: fields.name.clone(),
        content: fields.content.clone(),
        kind: fields.kind.as_str().to_owned(),
        trigger_text: fields.trigger.clone(),
        folder_parent_id: fields.folder_parent_id.clone(),
        updated_at: time::now_secs(),
    }
}

/// The `procedures` map of an agent version's document.
fn map_of(at: &AgentAtRow) -> ApiResult<Map<String, Value>> {
    let doc = view::stored_doc(&at.row)?;
    Ok(doc.document.get("procedures").and_then(Value::as_object).cloned().unwrap_or_default())
}

/// The version ids a `procedures` map names.
fn version_ids(map: &Map<String, Value>) -> Vec<String> {
    map.values()
        .filter_map(|r| r.get("version_id").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The `procedures` map a commit writes, and the procedure versions it publishes: the map the
/// request gives (each entry a version of its procedure), else the current map with the
/// caller's drafts of the branch applied (a removal drops its entry; an edit becomes a new
/// version).
pub(crate) async fn publish(
    cx: &Ctx, current: &Value, explicit: Option<&Value>, drafts: &[ProcedureDraftRow],
) -> ApiResult<(Value, Vec<ProcedureVersionRow>)> {
    if let Some(explicit) = explicit.and_then(Value::as_object) {
        let wanted: Vec<String> = version_ids(explicit);
        let found = cx.app.store.procedure_versions(&cx.workspace_id, &wanted).await?;
        let mut map = Map::new();
        for (procedure_id, entry) in explicit {
            let version_id = entry.get("version_id").and_then(Value::as_str).unwrap_or_default();
            let Some(version) =
                found.iter().find(|v| v.id == version_id && &v.procedure_id == procedure_id)
            else {
                return Err(ApiError::invalid(Violation::new(
                    [
                        LocItem::from("body"),
                        LocItem::from("procedures"),
                        LocItem::from(procedure_id.as_str()),
                    ],
                    "value_error",
                    format!("{version_id:?} is not a version of the procedure {procedure_id}"),
                )));
            };
            let fields = fields_of_version(version);
            map.insert(
                procedure_id.clone(),
                rules::reference(procedure_id, Some(version_id), &fields),
            );
        }
        return Ok((Value::Object(map), Vec::new()));
    }
    let mut map = current.as_object().cloned().unwrap_or_default();
    let mut published = Vec::new();
    let now = time::now_secs();
    for draft in drafts {
        if draft.removed {
            map.remove(&draft.procedure_id);
            continue;
        }
        let version = ProcedureVersionRow {
            id: ids::new_id(PROCEDURE_VERSION),
            procedure_id: draft.procedure_id.clone(),
            created_at: now,
            name: draft.name.clone(),
            content: draft.content.clone(),
            kind: draft.kind.clone(),
            trigger_text: draft.trigger_text.clone(),
            folder_parent_id: draft.folder_parent_id.clone(),
        };
        let reference =
            rules::reference(&draft.procedure_id, Some(&version.id), &fields_of_draft(draft));
        map.insert(draft.procedure_id.clone(), reference);
        published.push(version);
    }
    Ok((Value::Object(map), published))
}

/// The caller's drafts of the branch.
pub(super) fn scope<'a>(cx: &'a Ctx, agent_id: &'a AgentId, branch_id: &'a str) -> DraftScope<'a> {
    DraftScope { workspace_id: &cx.workspace_id, agent_id, branch_id, user_id: &cx.user_id }
}

/// The branch's procedures as the caller sees them: the head's, with the caller's drafts on
/// top; each with its fields and whether a draft holds them.
async fn working_set(
    cx: &Ctx, agent_id: &AgentId, head: &AgentAtRow,
) -> ApiResult<Vec<(String, Option<String>, Fields, bool)>> {
    let map = map_of(head)?;
    let versions = cx.app.store.procedure_versions(&cx.workspace_id, &version_ids(&map)).await?;
    let drafts = cx.app.store.procedure_drafts(scope(cx, agent_id, &head.branch_id)).await?;
    let mut out = Vec::new();
    for (id, entry) in &map {
        let version_id = entry.get("version_id").and_then(Value::as_str).map(str::to_owned);
        match drafts.iter().find(|d| &d.procedure_id == id) {
            Some(d) if d.removed => {}
            Some(d) => out.push((id.clone(), version_id, fields_of_draft(d), true)),
            None => {
                if let Some(v) = versions.iter().find(|v| Some(&v.id) == version_id.as_ref()) {
                    out.push((id.clone(), version_id, fields_of_version(v), false));
                }
            }
        }
    }
    for d in drafts.iter().filter(|d| !d.removed && !map.contains_key(&d.procedure_id)) {
        out.push((d.procedure_id.clone(), None, fields_of_draft(d), true));
    }
    Ok(out)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// A published agent version: its procedures, drafts aside.
    agent_version_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures", params(("agent_id" = String, Path), ("branch_id" = String, Path), ListParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn list_procedures(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>, Query(params): Query<ListParams>,
) -> ApiResult<Json<Value>> {
    let items: Vec<Value> =
        if let Some(version) = versions::given(params.agent_version_id.as_deref()) {
            let at = versions::at(&cx, &agent_id, Some(&branch_id), Some(version)).await?;
            map_of(&at)?
                .into_values()
                .map(|mut entry| {
                    entry["has_draft"] = json!(false);
                    entry
                })
                .collect()
        } else {
            let head = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
            working_set(&cx, &agent_id, &head)
                .await?
                .into_iter()
                .map(|(id, version, fields, has_draft)| {
                    let mut entry = rules::reference(&id, version.as_deref(), &fields);
                    entry["has_draft"] = json!(has_draft);
                    entry
                })
                .collect()
        };
    Ok(Json(json!({ "procedures": items })))
}

/// `CreateProcedureRequestModel` (`description` is the reference's alias of `trigger`).
#[derive(Debug, Deserialize)]
pub(super) struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: String,
    #[serde(default, rename = "type")]
    kind: Kind,
    #[serde(alias = "description")]
    trigger: Option<String>,
    folder_parent_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures", params(("agent_id" = String, Path), ("branch_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn create_procedure(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>, Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let head = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
    let body: CreateBody = from_body(body)?;
    let fields = Fields::from_request(
        body.name,
        body.content,
        body.kind,
        body.trigger,
        body.folder_parent_id,
    )
    .map_err(ApiError::Invalid)?;
    let id = ids::new_id(PROCEDURE);
    let draft = draft_row(&id, &fields, false);
    let at = scope(&cx, &agent_id, &head.branch_id);
    cx.app.store.insert_procedure(at, &id, &draft, time::now_secs()).await?;
    Ok(Json(json!({ "procedure_id": id })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct GetParams {
    /// A version of the procedure.
    version_id: Option<String>,
    /// A published agent version: the procedure as it has it.
    agent_version_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}", params(("agent_id" = String, Path), ("branch_id" = String, Path), ("procedure_id" = String, Path), GetParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_procedure(
    cx: Ctx, Path((agent_id, branch_id, procedure_id)): Path<(AgentId, String, String)>,
    Query(params): Query<GetParams>,
) -> ApiResult<Json<Value>> {
    let agent_version = versions::given(params.agent_version_id.as_deref());
    let at = versions::at(&cx, &agent_id, Some(&branch_id), agent_version).await?;
    let version_id = match versions::given(params.version_id.as_deref()) {
        Some(v) => v.to_owned(),
        None => map_of(&at)?
            .get(&procedure_id)
            .and_then(|e| e.get("version_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ApiError::NotFound("procedure"))?,
    };
    let found = cx.app.store.procedure_versions(&cx.workspace_id, &[version_id]).await?;
    let version = found
        .into_iter()
        .find(|v| v.procedure_id == procedure_id)
        .ok_or(ApiError::NotFound("procedure version"))?;
    let mut out = draft_view(&procedure_id, &fields_of_version(&version));
    out["version_id"] = json!(version.id);
    Ok(Json(out))
}

/// `ProcedureDraftResponseModel` (and the fields `ProcedureAtVersionResponseModel` shares).
fn draft_view(procedure_id: &str, f: &Fields) -> Value {
    json!({
        "procedure_id": procedure_id,
        "name": f.name,
        "content": f.content,
        "type": f.kind.as_str(),
        "trigger": f.trigger,
        "folder_parent_id": f.folder_parent_id,
    })
}

#[utoipa::path(delete, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}", params(("agent_id" = String, Path), ("branch_id" = String, Path), ("procedure_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn remove_procedure(
    cx: Ctx, Path((agent_id, branch_id, procedure_id)): Path<(AgentId, String, String)>,
) -> ApiResult<Json<Value>> {
    let head = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
    let set = working_set(&cx, &agent_id, &head).await?;
    if !set.iter().any(|(id, ..)| id == &procedure_id) {
        return Err(ApiError::NotFound("procedure"));
    }
    // A folder goes with everything in it, unless a procedure outside hands off into it.
    let mut subtree = vec![procedure_id.clone()];
    while let Some(more) = set.iter().find(|(id, _, f, _)| {
        !subtree.contains(id) && f.folder_parent_id.as_ref().is_some_and(|p| subtree.contains(p))
    }) {
        subtree.push(more.0.clone());
    }
    let outside = set.iter().filter(|(id, ..)| !subtree.contains(id));
    for (id, version, fields, _) in outside {
        let refs = rules::reference(id, version.as_deref(), fields);
        let named = refs["referenced_procedure_ids"].as_array().cloned().unwrap_or_default();
        if let Some(target) =
            named.iter().filter_map(Value::as_str).find(|n| subtree.iter().any(|s| s == n))
        {
            return Err(ApiError::Conflict {
                status: "procedure_in_use",
                message: format!("The procedure {id} hands off to {target}; change it first."),
            });
        }
    }
    let at = scope(&cx, &agent_id, &head.branch_id);
    for (id, _, fields, _) in set.iter().filter(|(id, ..)| subtree.contains(id)) {
        cx.app.store.put_procedure_draft(at, &draft_row(id, fields, true)).await?;
    }
    Ok(Json(json!({})))
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/compile", params(("agent_id" = String, Path), ("branch_id" = String, Path)), security(("api_key" = ["agents:read"])))]
pub(super) async fn compile_procedures(
    cx: Ctx, Path((agent_id, branch_id)): Path<(AgentId, String)>,
) -> ApiResult<Json<Value>> {
    let head = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
    let set = working_set(&cx, &agent_id, &head).await?;
    let compiled: Vec<(&str, &Fields)> = set.iter().map(|(id, _, f, _)| (id.as_str(), f)).collect();
    match rules::compile(&compiled) {
        Ok(mut workflow) => {
            // Defaults filled as a written workflow gets them, then shown as the read model
            // shows one.
            let spec = colloquy_core::schema::Spec::reference();
            spec.check("AgentWorkflowRequestModel", &mut workflow, &[]).map_err(|e| {
                ApiError::Internal(anyhow::anyhow!("a compiled workflow is invalid: {e:?}"))
            })?;
            let mut shown = workflow.clone();
            if spec.project("AgentWorkflowResponseModel", &mut shown).is_ok() {
                workflow = shown;
            }
            Ok(Json(json!({ "workflow": workflow })))
        }
        Err(errors) => Err(ApiError::Invalid(
            errors
                .iter()
                .flat_map(|(id, problems)| {
                    problems.as_array().into_iter().flatten().map(move |p| {
                        Violation::new(
                            [
                                LocItem::from("procedures"),
                                LocItem::from(id.as_str()),
                                LocItem::from(p["path"].as_str().unwrap_or_default()),
                            ],
                            "value_error",
                            p["message"].as_str().unwrap_or_default(),
                        )
                    })
                })
                .collect(),
        )),
    }
}

/// The caller's draft of a procedure of the branch, or 404.
async fn own_draft(
    cx: &Ctx, agent_id: &AgentId, branch_id: &str, procedure_id: &str,
) -> ApiResult<ProcedureDraftRow> {
    let head = versions::at(cx, agent_id, Some(branch_id), None).await?;
    cx.app
        .store
        .procedure_draft(scope(cx, agent_id, &head.branch_id), procedure_id)
        .await?
        .filter(|d| !d.removed)
        .ok_or(ApiError::NotFound("draft"))
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}/draft", params(("agent_id" = String, Path), ("branch_id" = String, Path), ("procedure_id" = String, Path)), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_draft(
    cx: Ctx, Path((agent_id, branch_id, procedure_id)): Path<(AgentId, String, String)>,
) -> ApiResult<Json<Value>> {
    let draft = own_draft(&cx, &agent_id, &branch_id, &procedure_id).await?;
    Ok(Json(draft_view(&procedure_id, &fields_of_draft(&draft))))
}

/// `UpdateProcedureDraftRequestModel`.
#[derive(Debug, Deserialize)]
pub(super) struct DraftBody {
    name: String,
    content: String,
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(alias = "description")]
    trigger: Option<String>,
}

#[utoipa::path(patch, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}/draft", params(("agent_id" = String, Path), ("branch_id" = String, Path), ("procedure_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn update_draft(
    cx: Ctx, Path((agent_id, branch_id, procedure_id)): Path<(AgentId, String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let head = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
    if !cx.app.store.procedure_exists(&cx.workspace_id, &agent_id, &procedure_id).await? {
        return Err(ApiError::NotFound("procedure"));
    }
    let body: DraftBody = from_body(body)?;
    let set = working_set(&cx, &agent_id, &head).await?;
    let folder = set
        .iter()
        .find(|(id, ..)| id == &procedure_id)
        .and_then(|(_, _, f, _)| f.folder_parent_id.clone());
    let fields = Fields::from_request(body.name, body.content, body.kind, body.trigger, folder)
        .map_err(ApiError::Invalid)?;
    let at = scope(&cx, &agent_id, &head.branch_id);
    cx.app.store.put_procedure_draft(at, &draft_row(&procedure_id, &fields, false)).await?;
    Ok(Json(draft_view(&procedure_id, &fields)))
}

#[utoipa::path(delete, path = "/v1/convai/agents/{agent_id}/branches/{branch_id}/procedures/{procedure_id}/draft", params(("agent_id" = String, Path), ("branch_id" = String, Path), ("procedure_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn delete_draft(
    cx: Ctx, Path((agent_id, branch_id, procedure_id)): Path<(AgentId, String, String)>,
) -> ApiResult<Json<Value>> {
    let head = versions::at(&cx, &agent_id, Some(&branch_id), None).await?;
    let at = scope(&cx, &agent_id, &head.branch_id);
    if !cx.app.store.delete_procedure_draft(at, &procedure_id).await? {
        return Err(ApiError::NotFound("draft"));
    }
    Ok(Json(json!({})))
}
