//! The lists: documents (filtered, sorted, folders first if asked), the agents that use
//! documents, a document's chunks, and the workspace search over every chunk.

use axum::extract::Path;
use axum::response::Response;
use colloquy_core::cursor::Direction;
use colloquy_core::ids::DocumentId;
use colloquy_core::knowledge::{DependentType, DocSort, DocType, EMBEDDING_MODELS, search_terms};
use colloquy_store::{DocumentFilter, DocumentPage, SortValue};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::create::violation;
use super::view;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query, empty_as_none};
use crate::paging::{Page, PageSizeRule, Pager};
use crate::routes::access::created_by;
use crate::routes::agents;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Documents whose names start with this (case-insensitive).
    search: Option<String>,
    /// Only the caller's documents (deprecated; `created_by_user_id=@me` is the same).
    show_only_owned_documents: Option<bool>,
    /// Only documents created by this user; `@me` is the caller.
    created_by_user_id: Option<String>,
    /// Any of these types (repeat the parameter): `file`, `url`, `text`, `folder`.
    #[serde(default)]
    #[param(value_type = Vec<String>)]
    types: Vec<DocType>,
    /// Only direct children of this folder.
    parent_folder_id: Option<String>,
    /// Only what is inside this folder, at any depth.
    ancestor_folder_id: Option<String>,
    /// Folders before documents.
    #[serde(default)]
    folders_first: bool,
    /// `asc` or `desc` (default).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_direction: Option<Direction>,
    /// `name`, `created_at` (default), `updated_at` or `size`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    sort_by: Option<DocSort>,
    /// From the previous page.
    cursor: Option<String>,
}

/// A row's sort value.
fn sort_value(row: &colloquy_store::DocumentRow, sort: DocSort) -> Value {
    match sort {
        DocSort::Name => json!(row.name),
        DocSort::CreatedAt => json!(row.created_at),
        DocSort::UpdatedAt => json!(row.updated_at),
        DocSort::Size => json!(row.size_bytes),
    }
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base", params(ListParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn list_documents(
    cx: Ctx, Query(params): Query<ListParams>,
) -> ApiResult<Response> {
    let sort = params.sort_by.unwrap_or_default();
    let direction = params.sort_direction.unwrap_or_default();
    let mut types = params.types;
    types.sort();
    types.dedup();
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let filter = DocumentFilter {
        name_prefix: nonempty(params.search).map(|s| s.to_lowercase()),
        types,
        created_by: created_by(
            &cx,
            params.created_by_user_id.as_deref(),
            params.show_only_owned_documents,
        ),
        parent_id: nonempty(params.parent_folder_id),
        ancestor_id: nonempty(params.ancestor_folder_id),
        folders_first: params.folders_first,
    };
    let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        sort.as_str(),
        direction,
        &[
            filter.name_prefix.as_deref().unwrap_or(""),
            &types.join(","),
            filter.created_by.as_deref().unwrap_or(""),
            filter.parent_id.as_deref().unwrap_or(""),
            filter.ancestor_id.as_deref().unwrap_or(""),
            if filter.folders_first { "folders_first" } else { "" },
        ],
    )?;
    let after = match pager.after::<Value>()? {
        None => None,
        Some((value, id)) => Some(decode_after(&value, sort, filter.folders_first, id)?),
    };
    let page = DocumentPage {
        sort,
        descending: direction == Direction::Desc,
        after,
        limit: pager.fetch(),
    };
    let rows = cx.app.store.list_documents(&cx.workspace_id, &filter, &page).await?;
    let folders_first = filter.folders_first;
    let page = pager.page(rows, |r| {
        let value = sort_value(r, sort);
        let key = if folders_first { json!([r.doc_type == DocType::Folder, value]) } else { value };
        (key, r.id.as_str())
    });
    let documents = view::summaries(&cx, &page.items).await?;
    Page { items: documents, has_more: page.has_more, next_cursor: page.next_cursor }
        .respond("documents")
}

/// A documents cursor's sort value: `[folder?, value]` when folders come first.
fn decode_after(
    value: &Value, sort: DocSort, folders_first: bool, id: String,
) -> ApiResult<(bool, SortValue, String)> {
    let (folder, value) = match (folders_first, value) {
        (true, Value::Array(pair)) if pair.len() == 2 => (pair[0].as_bool(), &pair[1]),
        (false, v) => (Some(false), v),
        _ => (None, value),
    };
    let value = match sort {
        DocSort::Name => value.as_str().map(|s| SortValue::Text(s.to_owned())),
        _ => value.as_i64().map(SortValue::Int),
    };
    match (folder, value) {
        (Some(folder), Some(value)) => Ok((folder, value, id)),
        _ => Err(violation(&["query", "cursor"], "value_error", "Invalid cursor: bad sort value")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DependentParams {
    /// `direct`, `transitive` (through a folder) or `all` (default).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(value_type = Option<String>)]
    dependent_type: Option<DependentType>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

/// The agents naming `documents` (`direct`) or a folder holding one (`transitive`), a page.
async fn dependents(
    cx: &Ctx, documents: &[DocumentId], params: DependentParams,
) -> ApiResult<Json<Value>> {
    let kind = params.dependent_type.unwrap_or_default();
    let mut ids = Vec::new();
    for doc in documents {
        if kind != DependentType::Transitive {
            ids.push(doc.clone());
        }
        if kind != DependentType::Direct {
            let path = cx.app.store.folder_path(&cx.workspace_id, doc).await?;
            ids.extend(path.into_iter().map(|(id, _)| DocumentId::from(id)));
        }
    }
    let filter: Vec<&str> = documents.iter().map(DocumentId::as_str).collect();
    let kind_name = serde_json::to_value(kind)?;
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Asc,
        &[&filter.join(","), kind_name.as_str().unwrap_or_default()],
    )?;
    let rows = cx
        .app
        .store
        .document_dependents(&cx.workspace_id, &ids, pager.after()?, pager.fetch())
        .await?;
    let page = pager.page(rows, |a| (a.created_at, a.id.as_str()));
    let role = cx.role().as_str();
    let agents: Vec<Value> = page.items.iter().map(|a| agents::dependent(a, role)).collect();
    Ok(Json(json!({
        "agents": agents, "branches": [], "next_cursor": page.next_cursor, "has_more": page.has_more,
    })))
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}/dependent-agents", params(("documentation_id" = String, Path), DependentParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_dependent_agents(
    cx: Ctx, Path(id): Path<DocumentId>, Query(params): Query<DependentParams>,
) -> ApiResult<Json<Value>> {
    cx.document(&id).await?;
    dependents(&cx, &[id], params).await
}

#[derive(Debug, Deserialize)]
pub(super) struct ManyBody {
    document_ids: Vec<String>,
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/dependent-agents", params(DependentParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_bulk_dependent_agents(
    cx: Ctx, Query(params): Query<DependentParams>, Json(body): Json<ManyBody>,
) -> ApiResult<Json<Value>> {
    if body.document_ids.is_empty() || body.document_ids.len() > 100 {
        return Err(violation(
            &["body", "document_ids"],
            "too_long",
            "document_ids must hold 1 to 100 ids",
        ));
    }
    let ids: Vec<DocumentId> = body.document_ids.into_iter().map(DocumentId::from).collect();
    let found = cx.app.store.get_documents(&cx.workspace_id, &ids).await?;
    if ids.iter().any(|id| !found.iter().any(|r| &r.id == id)) {
        return Err(ApiError::NotFound("document"));
    }
    dependents(&cx, &ids, params).await
}

/// A model named in a request, if it is one of the reference's.
pub(super) fn check_model(model: Option<&str>) -> ApiResult<()> {
    match model.filter(|m| !m.is_empty()) {
        Some(m) if !EMBEDDING_MODELS.contains(&m) => Err(violation(
            &["query", "embedding_model"],
            "enum",
            format!("Input should be {}", EMBEDDING_MODELS.map(|m| format!("'{m}'")).join(" or ")),
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ChunksParams {
    /// `e5_mistral_7b_instruct` or `multilingual_e5_large_instruct`.
    embedding_model: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// From the previous page.
    cursor: Option<String>,
}

/// `KnowledgeBaseDocumentChunkResponseModel`.
fn chunk_view(chunk: &colloquy_store::ChunkRow, document_name: &str) -> Value {
    json!({
        "id": chunk.id,
        "name": format!("{document_name} ({})", chunk.chunk_index + 1),
        "content": chunk.content,
    })
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}/chunks", params(("documentation_id" = String, Path), ChunksParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn list_chunks(
    cx: Ctx, Path(id): Path<DocumentId>, Query(params): Query<ChunksParams>,
) -> ApiResult<Json<Value>> {
    check_model(params.embedding_model.as_deref())?;
    let doc = cx.document(&id).await?;
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "chunk_index",
        Direction::Asc,
        &[id.as_str()],
    )?;
    let after = pager.after::<i64>()?.map(|(index, _)| index);
    let rows = cx.app.store.list_chunks(&cx.workspace_id, &id, after, pager.fetch()).await?;
    let page = pager.page(rows, |c| (c.chunk_index, c.id.as_str()));
    let chunks: Vec<Value> = page.items.iter().map(|c| chunk_view(c, &doc.name)).collect();
    Ok(Json(json!({ "chunks": chunks, "next_cursor": page.next_cursor })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ChunkParams {
    /// `e5_mistral_7b_instruct` or `multilingual_e5_large_instruct`.
    embedding_model: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}/chunk/{chunk_id}", params(("documentation_id" = String, Path), ("chunk_id" = String, Path), ChunkParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_chunk(
    cx: Ctx, Path((id, chunk_id)): Path<(DocumentId, String)>, Query(params): Query<ChunkParams>,
) -> ApiResult<Json<Value>> {
    check_model(params.embedding_model.as_deref())?;
    let doc = cx.document(&id).await?;
    let chunk = cx
        .app
        .store
        .get_chunk(&cx.workspace_id, &id, &chunk_id)
        .await
        .map_err(|_| ApiError::NotFound("chunk"))?;
    Ok(Json(chunk_view(&chunk, &doc.name)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchParams {
    /// The words to look for.
    #[serde(default)]
    query: String,
    /// 1..=100, default 30.
    page_size: Option<i64>,
    /// Any of these types (repeat the parameter).
    #[serde(default)]
    #[param(value_type = Vec<String>)]
    types: Vec<DocType>,
    /// From the previous page.
    cursor: Option<String>,
}

/// How many of the best chunks a workspace search ranks documents by.
const SEARCH_CHUNKS: u32 = 1000;

/// Documents ranked by their best chunk: lexically, fused with vector similarity where the
/// workspace has an embedding index.
#[utoipa::path(get, path = "/v1/convai/knowledge-base/search", params(SearchParams), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn search(cx: Ctx, Query(params): Query<SearchParams>) -> ApiResult<Json<Value>> {
    let terms = search_terms(&params.query);
    if terms.is_empty() {
        return Err(violation(&["query", "query"], "string_too_short", "The query has no words"));
    }
    let types: Vec<&str> = params.types.iter().map(|t| t.as_str()).collect();
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "score",
        Direction::Desc,
        &[&terms.join(" "), &types.join(",")],
    )?;
    let offset = pager.after::<i64>()?.map_or(0, |(n, _)| usize::try_from(n).unwrap_or(0));
    let hits = cx.app.store.search_chunks(&cx.workspace_id, None, &terms, SEARCH_CHUNKS).await?;
    let near = nearest(&cx, &params.query).await?;
    let best = fused(best_per_document(&hits), best_per_document(&near), !near.is_empty());
    let best: Vec<&colloquy_store::ChunkRow> = best.iter().collect();
    let ids: Vec<DocumentId> =
        best.iter().map(|h| DocumentId::from(h.document_id.as_str())).collect();
    let mut rows = cx.app.store.get_documents(&cx.workspace_id, &ids).await?;
    rows.retain(|r| params.types.is_empty() || params.types.contains(&r.doc_type));
    let ranked: Vec<(&colloquy_store::ChunkRow, colloquy_store::DocumentRow)> = best
        .into_iter()
        .filter_map(|h| {
            let row = rows.iter().find(|r| r.id == h.document_id.as_str())?;
            Some((h, row.clone()))
        })
        .collect();
    let limit = pager.limit() as usize;
    let window: Vec<_> = ranked.iter().skip(offset).take(limit).collect();
    let page_rows: Vec<colloquy_store::DocumentRow> =
        window.iter().map(|(_, r)| r.clone()).collect();
    let summaries = view::summaries(&cx, &page_rows).await?;
    let results: Vec<Value> = window
        .iter()
        .zip(summaries)
        .map(|((hit, _), document)| {
            json!({"document": document, "search_snippet": snippet(&hit.content, &terms), "score": hit.score})
        })
        .collect();
    let next = offset + limit;
    let next_cursor = (ranked.len() > next).then(|| {
        let last = window.last().map_or("", |(_, r)| r.id.as_str());
        pager.next_cursor(json!(next), last)
    });
    Ok(Json(json!({ "results": results, "next_cursor": next_cursor })))
}

/// The best chunk of each document, in rank order.
fn best_per_document(hits: &[colloquy_store::ChunkRow]) -> Vec<&colloquy_store::ChunkRow> {
    let mut best: Vec<&colloquy_store::ChunkRow> = Vec::new();
    for hit in hits {
        if !best.iter().any(|b| b.document_id == hit.document_id) {
            best.push(hit);
        }
    }
    best
}

/// Documents ranked lexically and by vectors, fused by reciprocal rank (each keeps its
/// lexical chunk for the snippet when it has one); the lexical ranking alone, BM25 scores
/// kept, when there is no vector ranking.
fn fused(
    lexical: Vec<&colloquy_store::ChunkRow>, semantic: Vec<&colloquy_store::ChunkRow>,
    any_semantic: bool,
) -> Vec<colloquy_store::ChunkRow> {
    if !any_semantic {
        return lexical.into_iter().cloned().collect();
    }
    let mut out: Vec<colloquy_store::ChunkRow> = Vec::new();
    for (rank, hit) in lexical.into_iter().enumerate().chain(semantic.into_iter().enumerate()) {
        let share = 1.0 / (60.0 + rank as f64 + 1.0);
        match out.iter_mut().find(|o| o.document_id == hit.document_id) {
            Some(o) => o.score += share,
            None => out.push(colloquy_store::ChunkRow { score: share, ..hit.clone() }),
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The workspace's chunks nearest the query's vector (score: 1 − cosine distance), under the
/// first of the reference's models this server computes; none without one or without an
/// index of it. A provider that fails leaves the search lexical.
async fn nearest(cx: &Ctx, query: &str) -> ApiResult<Vec<colloquy_store::ChunkRow>> {
    use colloquy_engine::knowledge::embeddings;
    let engine = &cx.app.engine;
    let Some(model) = EMBEDDING_MODELS.iter().find(|m| engine.embeddings.has(m)) else {
        return Ok(Vec::new());
    };
    let vectors = cx.app.store.indexed_vectors(&cx.workspace_id, model, None).await?;
    if vectors.is_empty() {
        return Ok(Vec::new());
    }
    let Ok(question) = engine.embeddings.embed_one(model, query).await else {
        return Ok(Vec::new());
    };
    Ok(embeddings::rank(&question, vectors)
        .into_iter()
        .take(SEARCH_CHUNKS as usize)
        .map(|(v, distance)| colloquy_store::ChunkRow {
            score: f64::from(1.0 - distance),
            id: v.chunk_id,
            document_id: v.document_id,
            chunk_index: 0,
            content: v.content,
        })
        .collect())
}

/// The most characters of a chunk a snippet shows.
const SNIPPET_CHARS: usize = 300;

/// A chunk's text around its first matching word, as `SearchHighlightSegment`s: matching
/// words (a search term, or a word it is the stem of) are hits.
fn snippet(text: &str, terms: &[String]) -> Vec<Value> {
    let is_hit = |word: &str| {
        let word = word.to_lowercase();
        terms.iter().any(|t| word == *t || (t.len() >= 4 && word.starts_with(t.as_str())))
    };
    let words: Vec<(usize, &str)> = word_spans(text);
    let first = words.iter().find(|(_, w)| is_hit(w)).map_or(0, |(at, _)| *at);
    let mut start = first.saturating_sub(SNIPPET_CHARS / 3);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + SNIPPET_CHARS).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: Vec<Value> = Vec::new();
    let mut at = start;
    for (pos, word) in words.iter().filter(|(p, w)| *p >= start && p + w.len() <= end) {
        if is_hit(word) {
            if *pos > at {
                out.push(json!({"value": &text[at..*pos], "is_hit": false}));
            }
            out.push(json!({"value": word, "is_hit": true}));
            at = pos + word.len();
        }
    }
    if end > at {
        out.push(json!({"value": &text[at..end], "is_hit": false}));
    }
    out
}

/// Each word of `text` (a run of letters and digits) with its byte offset.
fn word_spans(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_marks_hits_and_keeps_the_text() {
        let segments = snippet("Refunds take five days. Shipping is free.", &["refund".into()]);
        let joined: String = segments.iter().map(|s| s["value"].as_str().unwrap()).collect();
        assert_eq!(joined, "Refunds take five days. Shipping is free.");
        assert_eq!(segments[0], json!({"value": "Refunds", "is_hit": true}));
        assert_eq!(segments.iter().filter(|s| s["is_hit"] == true).count(), 1);
    }
}
