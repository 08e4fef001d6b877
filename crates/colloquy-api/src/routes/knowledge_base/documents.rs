//! One document at a time and in batches: get, rename or rewrite, replace its file, re-fetch
//! its page, move, delete (refused while agents use it, unless forced), its text as HTML, and
//! the summaries of many.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use colloquy_core::ids::DocumentId;
use colloquy_core::knowledge::DocType;
use colloquy_core::time;
use colloquy_store::{AutoSync, DocumentBody, DocumentRow};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use super::create::{Form, SyncSettings, body_of, fetch_url, parent_folder, read_file, violation};
use super::view;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query, json_text};
use crate::routes::agents;

/// The full view of a document as stored now.
async fn full(cx: &Ctx, row: &DocumentRow) -> ApiResult<Response> {
    let text = cx.app.store.document_text(&cx.workspace_id, &row.id).await?;
    let path = view::folder_path(cx, &row.id).await?;
    Ok(json_text(serde_json::to_vec(&view::full(row, &path, &text.content, cx))?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct GetParams {
    /// Ignored: every document of the workspace is readable by its members.
    #[serde(rename = "agent_id")]
    _agent_id: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}", params(("documentation_id" = String, Path), GetParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_document(
    cx: Ctx, Path(id): Path<DocumentId>, Query(_): Query<GetParams>,
) -> ApiResult<Response> {
    let row = cx.document(&id).await?;
    full(&cx, &row).await
}

#[derive(Debug, Deserialize)]
pub(super) struct PatchBody {
    name: Option<String>,
    content: Option<String>,
    #[serde(flatten)]
    sync: SyncSettings,
    /// Change the frequency only when the new one is stricter.
    #[serde(default)]
    tighten_only: bool,
}

/// The auto-sync a PATCH leaves `row` with, or `None` when it does not touch it.
fn patched_sync(
    row: &DocumentRow, body: &SyncSettings, tighten_only: bool,
) -> ApiResult<Option<Option<AutoSync>>> {
    let touched = body.enable_auto_sync.is_some()
        || body.auto_remove.is_some()
        || body.minimum_frequency_days.is_some();
    if !touched {
        return Ok(None);
    }
    body.check()?;
    if !matches!(row.doc_type, DocType::Url | DocType::Folder) {
        return Err(ApiError::BadRequest {
            status: "auto_sync_not_supported",
            message: "Auto-sync applies to URL documents and folders".into(),
        });
    }
    let current = row.auto_sync();
    if body.enable_auto_sync == Some(false)
        || (body.enable_auto_sync.is_none() && current.is_none())
    {
        return Ok(Some(None));
    }
    let days = match (body.minimum_frequency_days, current) {
        (Some(days), Some(now)) if tighten_only => days.min(now.days),
        (Some(days), _) => days,
        (None, Some(now)) => now.days,
        (None, None) => 7,
    };
    let auto_remove = body.auto_remove.or(current.map(|c| c.auto_remove)).unwrap_or(false);
    Ok(Some(Some(AutoSync { days, auto_remove })))
}

#[utoipa::path(patch, path = "/v1/convai/knowledge-base/{documentation_id}", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn update_document(
    cx: Ctx, Path(id): Path<DocumentId>, Json(body): Json<PatchBody>,
) -> ApiResult<Response> {
    let row = cx.document(&id).await?;
    let sync = patched_sync(&row, &body.sync, body.tighten_only)?;
    if body.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(violation(
            &["body", "name"],
            "string_too_short",
            "String should have at least 1 character",
        ));
    }
    let content = match body.content {
        Some(_) if row.doc_type != DocType::Text => {
            return Err(ApiError::BadRequest {
                status: "not_a_text_document",
                message: "Only a text document's content can be replaced".into(),
            });
        }
        Some(content) if content.trim().is_empty() => {
            return Err(violation(&["body", "content"], "string_too_short", "The text is empty"));
        }
        content => content,
    };
    if let Some(name) = body.name {
        let now = time::now_secs();
        cx.app
            .store
            .rename_document(&cx.workspace_id, &id, &name, now)
            .await
            .or_not_found("document")?;
    }
    if let Some(sync) = sync {
        let store = &cx.app.store;
        store.set_document_sync(&cx.workspace_id, &id, sync, time::now_secs()).await?;
    }
    match content {
        Some(content) => replaced(&cx, &id, &body_of(content)).await,
        None => full(&cx, &cx.document(&id).await?).await,
    }
}

/// Replaces a document's text (its chunks and indexes follow) and answers with the document
/// as it is now.
async fn replaced(cx: &Ctx, id: &DocumentId, body: &DocumentBody) -> ApiResult<Response> {
    let now = time::now_secs();
    cx.app
        .store
        .replace_document_body(&cx.workspace_id, id, body, now)
        .await
        .or_not_found("document")?;
    full(cx, &cx.document(id).await?).await
}

#[utoipa::path(patch, path = "/v1/convai/knowledge-base/{documentation_id}/update-file", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn update_file(
    cx: Ctx, Path(id): Path<DocumentId>, form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let row = cx.document(&id).await?;
    let form = Form::read(&cx, form).await?;
    let Some((filename, bytes)) = form.file else {
        return Err(violation(&["body", "file"], "missing", "Field required"));
    };
    if row.doc_type != DocType::File {
        return Err(ApiError::BadRequest {
            status: "not_a_file_document",
            message: "Only a file document's file can be replaced".into(),
        });
    }
    replaced(&cx, &id, &read_file(&filename, bytes).await?).await
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/{documentation_id}/refresh", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn refresh_document(cx: Ctx, Path(id): Path<DocumentId>) -> ApiResult<Response> {
    let row = cx.document(&id).await?;
    let Some(url) = row.url.as_deref().filter(|_| row.doc_type == DocType::Url) else {
        return Err(ApiError::BadRequest {
            status: "not_a_url_document",
            message: "Only a URL document can be refreshed".into(),
        });
    };
    replaced(&cx, &id, &fetch_url(&cx, url, &["url"]).await?).await
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}/content", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_content(cx: Ctx, Path(id): Path<DocumentId>) -> ApiResult<Response> {
    cx.document(&id).await?;
    let text = cx.app.store.document_text(&cx.workspace_id, &id).await.or_not_found("document")?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], view::html(&text.content))
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct MoveBody {
    move_to: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkMoveBody {
    document_ids: Vec<String>,
    move_to: Option<String>,
}

/// Moves `ids` into the folder `to`, refusing to put a folder inside itself.
async fn move_into(cx: &Ctx, ids: &[DocumentId], to: Option<&str>) -> ApiResult<()> {
    let to = parent_folder(cx, to).await?;
    let rows = cx.app.store.get_documents(&cx.workspace_id, ids).await?;
    if ids.iter().any(|id| !rows.iter().any(|r| &r.id == id)) {
        return Err(ApiError::NotFound("document"));
    }
    if let Some(to) = &to {
        let path = cx.app.store.folder_path(&cx.workspace_id, to).await?;
        let inside = |id: &DocumentId| id == to || path.iter().any(|(p, _)| p == id.as_str());
        if ids.iter().any(inside) {
            return Err(ApiError::BadRequest {
                status: "invalid_move",
                message: "A folder cannot be moved into itself or one of its folders".into(),
            });
        }
    }
    cx.app.store.move_documents(&cx.workspace_id, ids, to.as_ref(), time::now_secs()).await?;
    Ok(())
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/{document_id}/move", params(("document_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn move_document(
    cx: Ctx, Path(id): Path<DocumentId>, Json(body): Json<MoveBody>,
) -> ApiResult<Json<Value>> {
    cx.document(&id).await?;
    move_into(&cx, &[id], body.move_to.as_deref()).await?;
    Ok(Json(Value::Null))
}

/// 1 to 20 distinct ids, as the reference's batch bodies allow.
fn batch_ids(ids: Vec<String>) -> ApiResult<Vec<DocumentId>> {
    if ids.is_empty() || ids.len() > 20 {
        return Err(violation(
            &["body", "document_ids"],
            if ids.is_empty() { "too_short" } else { "too_long" },
            "document_ids must hold 1 to 20 ids",
        ));
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != ids.len() {
        return Err(violation(&["body", "document_ids"], "unique_items", "Ids must be unique"));
    }
    Ok(ids.into_iter().map(DocumentId::from).collect())
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/bulk-move", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn bulk_move(cx: Ctx, Json(body): Json<BulkMoveBody>) -> ApiResult<Json<Value>> {
    let ids = batch_ids(body.document_ids)?;
    move_into(&cx, &ids, body.move_to.as_deref()).await?;
    Ok(Json(Value::Null))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteParams {
    /// Delete even while agents use it (it is removed from them), and a folder with
    /// everything in it.
    #[serde(default)]
    force: bool,
}

/// Deletes a document or folder: refused while agents name it or anything in it, or while a
/// folder holds anything, unless `force`, which removes it from those agents first.
async fn delete_one(cx: &Ctx, id: &DocumentId, force: bool) -> ApiResult<()> {
    let row = cx.document(id).await?;
    let mut ids = Vec::new();
    if row.doc_type == DocType::Folder {
        ids = cx.app.store.descendants(&cx.workspace_id, id).await?;
        if !ids.is_empty() && !force {
            return Err(ApiError::Conflict {
                status: "folder_not_empty",
                message: format!(
                    "The folder holds {} entries; delete with force=true to delete them too",
                    ids.len()
                ),
            });
        }
    }
    ids.push(id.clone());
    let agents_using = cx.app.store.agents_naming(&cx.workspace_id, &ids).await?;
    if !agents_using.is_empty() && !force {
        return Err(ApiError::Conflict {
            status: "document_in_use",
            message: format!(
                "The document is used by {} agent(s); delete with force=true to remove it from them",
                agents_using.len()
            ),
        });
    }
    for agent_id in &agents_using {
        forget(cx, agent_id, &ids).await?;
    }
    cx.app.store.delete_documents(&cx.workspace_id, &ids).await?;
    Ok(())
}

/// Removes `ids` from an agent's `prompt.knowledge_base`.
async fn forget(
    cx: &Ctx, agent_id: &colloquy_core::ids::AgentId, ids: &[DocumentId],
) -> ApiResult<()> {
    let row = cx.agent(agent_id).await?;
    let doc = agents::stored_doc(&row)?;
    let kb = doc
        .document
        .get("conversation_config")
        .and_then(|c| c.pointer("/agent/prompt/knowledge_base"));
    let kept: Vec<Value> = kb
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| !ids.iter().any(|id| l["id"] == id.as_str()))
        .cloned()
        .collect();
    let patch = json!({"conversation_config": {"agent": {"prompt": {"knowledge_base": kept}}}});
    agents::patch_agent(cx, agent_id, None, &patch).await?;
    Ok(())
}

#[utoipa::path(delete, path = "/v1/convai/knowledge-base/{documentation_id}", params(("documentation_id" = String, Path), DeleteParams), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn delete_document(
    cx: Ctx, Path(id): Path<DocumentId>, Query(params): Query<DeleteParams>,
) -> ApiResult<Json<Value>> {
    delete_one(&cx, &id, params.force).await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkDeleteBody {
    document_ids: Vec<String>,
    #[serde(default)]
    force: bool,
}

/// `BatchFailureResponseModel` for an error.
pub(super) fn failure(e: &ApiError) -> Value {
    let (code, status) = match e {
        ApiError::NotFound(what) => (404, format!("{}_not_found", what.replace(' ', "_"))),
        ApiError::Conflict { status, .. } => (409, (*status).to_owned()),
        ApiError::BadRequest { status, .. } => (400, (*status).to_owned()),
        _ => (500, "internal_error".to_owned()),
    };
    json!({"status": "failure", "error_code": code, "error_status": status, "error_message": e.to_string()})
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/bulk-delete", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn bulk_delete(
    cx: Ctx, Json(body): Json<BulkDeleteBody>,
) -> ApiResult<Json<Value>> {
    let ids = batch_ids(body.document_ids)?;
    let mut out = Map::new();
    for id in ids {
        let result = match delete_one(&cx, &id, body.force).await {
            Ok(()) => json!({"status": "success", "data": {"id": id}}),
            Err(e @ ApiError::Internal(_)) => return Err(e),
            Err(e) => failure(&e),
        };
        out.insert(id.into_string(), result);
    }
    Ok(Json(Value::Object(out)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SummariesParams {
    /// 1 to 100 document ids (repeat the parameter).
    #[serde(default)]
    document_ids: Vec<String>,
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/summaries", params(SummariesParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_summaries(
    cx: Ctx, Query(params): Query<SummariesParams>,
) -> ApiResult<Json<Value>> {
    if params.document_ids.is_empty() || params.document_ids.len() > 100 {
        return Err(violation(
            &["query", "document_ids"],
            if params.document_ids.is_empty() { "missing" } else { "too_long" },
            "document_ids must hold 1 to 100 ids",
        ));
    }
    let ids: Vec<DocumentId> = params.document_ids.into_iter().map(DocumentId::from).collect();
    let rows = cx.app.store.get_documents(&cx.workspace_id, &ids).await?;
    let summaries = view::summaries(&cx, &rows).await?;
    let mut out = Map::new();
    for id in ids {
        let found = rows.iter().zip(&summaries).find(|(r, _)| r.id == id);
        let value = match found {
            Some((_, summary)) => json!({"status": "success", "data": summary}),
            None => failure(&ApiError::NotFound("document")),
        };
        out.insert(id.into_string(), value);
    }
    Ok(Json(Value::Object(out)))
}
