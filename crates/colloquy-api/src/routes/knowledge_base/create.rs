//! Adding to the knowledge base: documents from text, a URL or a file, folders, and the
//! older combined `POST /knowledge-base` (a URL or a file). Every document is read into text
//! and chunked before anything is stored, so a bad input stores nothing and a stored one is
//! searchable at once.

use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;
use colloquy_core::chunking;
use colloquy_core::ids::DocumentId;
use colloquy_core::knowledge::DocType;
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_engine::knowledge::{extract, fetch};
use colloquy_store::{AutoSync, DocumentBody, NewDocument};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};

/// A form or body field's violation.
pub(super) fn violation(loc: &[&str], kind: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid(Violation::new(loc.iter().copied(), kind, msg))
}

/// A name given in a request: absent is fine, empty is not.
fn check_name(name: Option<&str>, loc: &[&str]) -> ApiResult<()> {
    if name.is_some_and(|n| n.trim().is_empty()) {
        return Err(violation(loc, "string_too_short", "String should have at least 1 character"));
    }
    Ok(())
}

/// The folder a new entry goes in: absent or empty is the root; anything else must be a
/// folder of the workspace.
pub(super) async fn parent_folder(cx: &Ctx, id: Option<&str>) -> ApiResult<Option<DocumentId>> {
    let Some(id) = id.filter(|p| !p.is_empty()).map(DocumentId::from) else {
        return Ok(None);
    };
    let row = cx.app.store.get_document(&cx.workspace_id, &id).await.or_not_found("folder")?;
    if row.doc_type != DocType::Folder {
        return Err(ApiError::BadRequest {
            status: "not_a_folder",
            message: format!("{id} is a document, not a folder"),
        });
    }
    Ok(Some(id))
}

/// Stores a new entry and answers `AddKnowledgeBaseResponseModel`.
async fn insert(
    cx: &Ctx, doc_type: DocType, name: String, parent: Option<DocumentId>, body: DocumentBody,
    sync: Option<AutoSync>,
) -> ApiResult<Json<Value>> {
    let doc = NewDocument {
        id: DocumentId::generate(),
        workspace_id: cx.workspace_id.clone(),
        doc_type,
        name,
        parent_id: parent,
        created_by: cx.user_id.clone(),
        created_at: time::now_secs(),
        body,
        sync,
    };
    cx.app.store.insert_document(&doc).await?;
    let path: Vec<Value> = cx
        .app
        .store
        .folder_path(&cx.workspace_id, &doc.id)
        .await?
        .into_iter()
        .map(|(id, _)| json!({ "id": id }))
        .collect();
    Ok(Json(json!({ "id": doc.id, "name": doc.name, "folder_path": path })))
}

/// A document's body from its text.
pub(super) fn body_of(text: String) -> DocumentBody {
    let chunks = chunking::chunk(&text).into_iter().map(|c| c.text).collect();
    DocumentBody { content: text, chunks, ..DocumentBody::default() }
}

/// A name for a document that was given none: the start of its first line of words.
fn name_from(text: &str) -> String {
    let line = text.lines().map(|l| l.trim_start_matches('#').trim()).find(|l| !l.is_empty());
    let name: String = line.unwrap_or("Untitled").chars().take(60).collect();
    name
}

#[derive(Debug, Deserialize)]
pub(super) struct TextBody {
    text: String,
    name: Option<String>,
    parent_folder_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/text", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn create_text(cx: Ctx, Json(body): Json<TextBody>) -> ApiResult<Json<Value>> {
    check_name(body.name.as_deref(), &["body", "name"])?;
    if body.text.trim().is_empty() {
        return Err(violation(&["body", "text"], "string_too_short", "The text is empty"));
    }
    let parent = parent_folder(&cx, body.parent_folder_id.as_deref()).await?;
    let name = body.name.unwrap_or_else(|| name_from(&body.text));
    insert(&cx, DocType::Text, name, parent, body_of(body.text), None).await
}

/// The auto-sync settings URL documents, folders and crawls accept (and PATCH changes): a URL
/// document with auto-sync is read again at least every `minimum_frequency_days`
/// (`colloquy_engine::knowledge`'s worker); a folder's settings bound those of the URL
/// documents created in it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SyncSettings {
    pub(super) enable_auto_sync: Option<bool>,
    pub(super) auto_remove: Option<bool>,
    pub(super) minimum_frequency_days: Option<i64>,
}

impl SyncSettings {
    /// The auto-sync of a new URL document or folder in `parent`: off unless
    /// `enable_auto_sync`; every 7 days unless said, tightened to the folder's frequency when
    /// that is stricter.
    pub(super) async fn for_new(
        &self, cx: &Ctx, parent: Option<&DocumentId>,
    ) -> ApiResult<Option<AutoSync>> {
        if self.enable_auto_sync != Some(true) {
            return Ok(None);
        }
        let mut days = self.minimum_frequency_days.unwrap_or(7);
        if let Some(parent) = parent {
            let folder = cx.app.store.get_document(&cx.workspace_id, parent).await?;
            days = folder.auto_sync().map_or(days, |f| days.min(f.days));
        }
        Ok(Some(AutoSync { days, auto_remove: self.auto_remove == Some(true) }))
    }

    pub(super) fn check(&self) -> ApiResult<()> {
        if self.minimum_frequency_days.is_some_and(|d| !(1..=180).contains(&d)) {
            return Err(violation(
                &["body", "minimum_frequency_days"],
                "less_than_equal",
                "minimum_frequency_days must be between 1 and 180",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct UrlBody {
    url: String,
    name: Option<String>,
    parent_folder_id: Option<String>,
    #[serde(flatten)]
    sync: SyncSettings,
}

/// A URL document's body: the page fetched through the egress guard and read.
pub(super) async fn fetch_url(cx: &Ctx, url: &str, loc: &[&str]) -> ApiResult<DocumentBody> {
    let max = cx.app.settings.limits.kb_max_file_bytes;
    let page = fetch::page(&cx.app.engine, url, max).await.map_err(|e| match e {
        fetch::FetchError::BadUrl(_) | fetch::FetchError::Refused(_) => {
            violation(loc, "value_error", e.to_string())
        }
        fetch::FetchError::Failed(_)
        | fetch::FetchError::Gone(_)
        | fetch::FetchError::TooLarge(_) => {
            ApiError::BadRequest { status: "url_fetch_failed", message: e.to_string() }
        }
    })?;
    let text = extract::html(&page);
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest {
            status: "url_fetch_failed",
            message: format!("the page at {url} holds no text"),
        });
    }
    Ok(DocumentBody { url: Some(url.to_owned()), ..body_of(text) })
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/url", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn create_url(cx: Ctx, Json(body): Json<UrlBody>) -> ApiResult<Json<Value>> {
    check_name(body.name.as_deref(), &["body", "name"])?;
    body.sync.check()?;
    let parent = parent_folder(&cx, body.parent_folder_id.as_deref()).await?;
    let doc = fetch_url(&cx, &body.url, &["body", "url"]).await?;
    let name = body.name.unwrap_or_else(|| body.url.clone());
    let sync = body.sync.for_new(&cx, parent.as_ref()).await?;
    insert(&cx, DocType::Url, name, parent, doc, sync).await
}

#[derive(Debug, Deserialize)]
pub(super) struct FolderBody {
    name: String,
    parent_folder_id: Option<String>,
    #[serde(flatten)]
    sync: SyncSettings,
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/folder", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn create_folder(cx: Ctx, Json(body): Json<FolderBody>) -> ApiResult<Json<Value>> {
    check_name(Some(&body.name), &["body", "name"])?;
    body.sync.check()?;
    let parent = parent_folder(&cx, body.parent_folder_id.as_deref()).await?;
    let sync = body.sync.for_new(&cx, parent.as_ref()).await?;
    insert(&cx, DocType::Folder, body.name, parent, DocumentBody::default(), sync).await
}

/// The fields of a multipart form, the file read up to the server's cap.
#[derive(Debug, Default)]
pub(super) struct Form {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) parent_folder_id: Option<String>,
    pub(super) file: Option<(String, Vec<u8>)>,
}

impl Form {
    /// Reads the form; a file over `COLLOQUY_KB_MAX_FILE_BYTES` is refused while it streams.
    pub(super) async fn read(
        cx: &Ctx, form: Result<Multipart, MultipartRejection>,
    ) -> ApiResult<Form> {
        let mut form = form.map_err(|e| violation(&["body"], "value_error", e.body_text()))?;
        let max = cx.app.settings.limits.kb_max_file_bytes;
        let bad = |e: axum::extract::multipart::MultipartError| {
            violation(&["body"], "value_error", e.body_text())
        };
        let mut out = Form::default();
        while let Some(mut field) = form.next_field().await.map_err(bad)? {
            let key = field.name().unwrap_or_default().to_owned();
            if key == "file" {
                let filename = field.file_name().unwrap_or("upload").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    if bytes.len() + chunk.len() > max {
                        return Err(ApiError::BadRequest {
                            status: "file_too_large",
                            message: format!(
                                "The file is larger than {max} bytes (COLLOQUY_KB_MAX_FILE_BYTES)"
                            ),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                out.file = Some((filename, bytes));
                continue;
            }
            let value = field.text().await.map_err(bad)?;
            match key.as_str() {
                "name" => out.name = Some(value),
                "url" => out.url = Some(value),
                "parent_folder_id" => out.parent_folder_id = Some(value),
                _ => {}
            }
        }
        check_name(out.name.as_deref(), &["body", "name"])?;
        Ok(out)
    }
}

/// A file document's body: the file read by its content, on a blocking thread (a long PDF
/// takes a while to read).
pub(super) async fn read_file(filename: &str, bytes: Vec<u8>) -> ApiResult<DocumentBody> {
    let name = filename.to_owned();
    let (text, bytes) = tokio::task::spawn_blocking(move || (extract::file(&bytes, &name), bytes))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let text = text.map_err(|e| match e {
        extract::ExtractError::Unsupported(_) => {
            ApiError::BadRequest { status: "unsupported_file_type", message: e.to_string() }
        }
        extract::ExtractError::Corrupt(..) => {
            ApiError::BadRequest { status: "corrupt_file", message: e.to_string() }
        }
        extract::ExtractError::Empty | extract::ExtractError::NoText => {
            violation(&["body", "file"], "value_error", e.to_string())
        }
    })?;
    Ok(DocumentBody {
        mime_type: Some(text.mime_type.to_owned()),
        filename: Some(filename.to_owned()),
        source: Some(bytes),
        ..body_of(text.text)
    })
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base/file", security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn create_file(
    cx: Ctx, form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let form = Form::read(&cx, form).await?;
    let Some((filename, bytes)) = form.file else {
        return Err(violation(&["body", "file"], "missing", "Field required"));
    };
    let parent = parent_folder(&cx, form.parent_folder_id.as_deref()).await?;
    let doc = read_file(&filename, bytes).await?;
    insert(&cx, DocType::File, form.name.unwrap_or(filename), parent, doc, None).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AddParams {
    /// Ignored: an agent names its documents in its own configuration.
    #[serde(rename = "agent_id")]
    _agent_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/convai/knowledge-base", params(AddParams), security(("api_key" = ["knowledge_base:write"])))]
pub(super) async fn add_to_knowledge_base(
    cx: Ctx, Query(_): Query<AddParams>, form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let form = Form::read(&cx, form).await?;
    match (form.file, form.url.filter(|u| !u.is_empty())) {
        (Some((filename, bytes)), None) => {
            let doc = read_file(&filename, bytes).await?;
            insert(&cx, DocType::File, form.name.unwrap_or(filename), None, doc, None).await
        }
        (None, Some(url)) => {
            let doc = fetch_url(&cx, &url, &["body", "url"]).await?;
            insert(&cx, DocType::Url, form.name.unwrap_or(url), None, doc, None).await
        }
        _ => Err(violation(&["body"], "value_error", "Give exactly one of `file` and `url`")),
    }
}
