//! Embedding indexes (`rag-index`): asked for per document or in a batch, computed by the
//! engine's indexer as leased jobs (any node), reported with status and progress, and the
//! workspace's usage against `COLLOQUY_KB_MAX_INDEX_BYTES`.

use axum::extract::Path;
use colloquy_core::ids::{self, DocumentId};
use colloquy_core::knowledge::{DocType, EMBEDDING_MODELS};
use colloquy_core::time;
use colloquy_store::RagIndexRow;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::create::violation;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::Json;

/// `RAGDocumentIndexResponseModel`.
fn view(row: &RagIndexRow) -> Value {
    json!({
        "id": row.id,
        "model": row.model,
        "status": row.status,
        "progress_percentage": row.progress as f64,
        "document_model_index_usage": {"used_bytes": row.used_bytes},
    })
}

/// A model the reference names and this server has a provider for.
fn check_model(cx: &Ctx, model: &str, loc: &[&str]) -> ApiResult<()> {
    if !EMBEDDING_MODELS.contains(&model) {
        return Err(violation(
            loc,
            "enum",
            format!("Input should be {}", EMBEDDING_MODELS.map(|m| format!("'{m}'")).join(" or ")),
        ));
    }
    if !cx.app.engine.embeddings.has(model) {
        return Err(ApiError::BadRequest {
            status: "embeddings_not_configured",
            message: format!(
                "No embedding provider is configured for {model}: add [embeddings.providers.NAME] and an [[embeddings.routes]] entry for it in colloquy.toml. Retrieval stays lexical until then."
            ),
        });
    }
    Ok(())
}

/// The document's index for `model`, queued if it has none (or it failed).
async fn ensure(cx: &Ctx, id: &DocumentId, model: &str) -> ApiResult<RagIndexRow> {
    let row = cx.document(id).await?;
    if row.doc_type == DocType::Folder {
        return Err(ApiError::BadRequest {
            status: "cannot_index_folder",
            message: "A folder has no text to index; index its documents".into(),
        });
    }
    let new_id = ids::new_id(ids::prefix::RAG_INDEX);
    let index = cx
        .app
        .store
        .ensure_rag_index(&cx.workspace_id, id, model, &new_id, time::now_secs())
        .await?;
    if index.status == "created" {
        cx.app.engine.knowledge_queued.notify_one();
    }
    Ok(index)
}

#[derive(Debug, Deserialize)]
pub(super) struct IndexBody {
    model: String,
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/{documentation_id}/rag-index", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn compute_rag_index(
    cx: Ctx, Path(id): Path<DocumentId>, Json(body): Json<IndexBody>,
) -> ApiResult<Json<Value>> {
    cx.document(&id).await?;
    check_model(&cx, &body.model, &["body", "model"])?;
    Ok(Json(view(&ensure(&cx, &id, &body.model).await?)))
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}/rag-index", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_rag_indexes(cx: Ctx, Path(id): Path<DocumentId>) -> ApiResult<Json<Value>> {
    cx.document(&id).await?;
    let rows = cx.app.store.document_rag_indexes(&cx.workspace_id, &id).await?;
    Ok(Json(json!({ "indexes": rows.iter().map(view).collect::<Vec<_>>() })))
}

#[utoipa::path(delete, path = "/v1/convai/knowledge-base/{documentation_id}/rag-index/{rag_index_id}", params(("documentation_id" = String, Path), ("rag_index_id" = String, Path)), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn delete_rag_index(
    cx: Ctx, Path((id, index_id)): Path<(DocumentId, String)>,
) -> ApiResult<Json<Value>> {
    cx.document(&id).await?;
    let row = cx
        .app
        .store
        .delete_rag_index(&cx.workspace_id, &id, &index_id)
        .await
        .or_not_found("rag index")?;
    Ok(Json(view(&row)))
}

#[derive(Debug, Deserialize)]
pub(super) struct BatchItem {
    document_id: String,
    create_if_missing: bool,
    model: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct BatchBody {
    items: Vec<BatchItem>,
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/rag-index", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn compute_rag_indexes(
    cx: Ctx, Json(body): Json<BatchBody>,
) -> ApiResult<Json<Value>> {
    if body.items.is_empty() || body.items.len() > 100 {
        return Err(violation(&["body", "items"], "too_long", "items must hold 1 to 100 entries"));
    }
    for (i, item) in body.items.iter().enumerate() {
        let index = i.to_string();
        check_model(&cx, &item.model, &["body", "items", &index, "model"])?;
    }
    let mut out = Map::new();
    for item in body.items {
        let id = DocumentId::from(item.document_id);
        let result = if item.create_if_missing {
            ensure(&cx, &id, &item.model).await.map(|row| view(&row))
        } else {
            existing(&cx, &id, &item.model).await
        };
        let value = match result {
            Ok(index) => json!({"status": "success", "data": index}),
            Err(e @ ApiError::Internal(_)) => return Err(e),
            Err(e) => super::documents::failure(&e),
        };
        out.insert(id.into_string(), value);
    }
    Ok(Json(Value::Object(out)))
}

/// The document's index for `model`, without creating one.
async fn existing(cx: &Ctx, id: &DocumentId, model: &str) -> ApiResult<Value> {
    cx.document(id).await?;
    let rows = cx.app.store.document_rag_indexes(&cx.workspace_id, id).await?;
    rows.iter().find(|r| r.model == model).map(view).ok_or(ApiError::NotFound("rag index"))
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/rag-index", security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn rag_index_overview(cx: Ctx) -> ApiResult<Json<Value>> {
    let usage = cx.app.store.rag_usage(&cx.workspace_id).await?;
    let total: i64 = usage.iter().map(|(_, bytes)| bytes).sum();
    let models: Vec<Value> =
        usage.iter().map(|(model, bytes)| json!({"model": model, "used_bytes": bytes})).collect();
    Ok(Json(json!({
        "total_used_bytes": total,
        "total_max_bytes": cx.app.engine.limits.kb_max_index_bytes,
        "models": models,
    })))
}
