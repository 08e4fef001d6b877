//! Files attached to a live conversation (`/v1/convai/conversations/{id}/files`): uploaded
//! (multipart `file`, checked by content: PNG, JPEG, GIF, WebP, PDF, or UTF-8 text), then sent
//! with a `multimodal_message` on the conversation's WebSocket, downloaded, or withdrawn while
//! no message has used them. The official conversation client uploads without a key, so a
//! conversation in progress takes files from whoever knows its id, as the reference does;
//! with a key, the conversation must be in the key's workspace.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use colloquy_core::ids::{self, AgentId, ConversationId, WorkspaceId};
use colloquy_core::time;
use colloquy_store::{ConversationFile, StoreError};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::Json;
use crate::state::AppState;

/// The largest file a conversation takes.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Files a conversation takes when its agent's `file_input` says nothing.
const FILES_PER_CONVERSATION: i64 = 10;

/// The conversation file routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_file))
        .routes(routes!(get_file, delete_file))
        .layer(DefaultBodyLimit::max(MAX_FILE_BYTES + 64 * 1024))
}

/// What a file is, read from its first bytes (an image or a PDF), else from its name when it
/// is UTF-8 text; `None` for anything else.
pub fn sniff(filename: &str, bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 6] = [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"RIFF", "image/webp"),
    ];
    for (magic, mime) in MAGIC {
        if bytes.starts_with(magic) && (mime != "image/webp" || bytes.get(8..12) == Some(b"WEBP")) {
            return Some(mime);
        }
    }
    if std::str::from_utf8(bytes).is_err() || bytes.contains(&0) {
        return None;
    }
    let extension = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("txt" | "log" | "text") => Some("text/plain"),
        Some("md" | "markdown") => Some("text/markdown"),
        Some("csv") => Some("text/csv"),
        Some("tsv") => Some("text/tab-separated-values"),
        Some("json") => Some("application/json"),
        Some("xml") => Some("application/xml"),
        Some("html" | "htm") => Some("text/html"),
        Some("yaml" | "yml") => Some("application/yaml"),
        _ => None,
    }
}

/// The conversation a request acts on.
struct Target {
    /// The key's workspace, or without a key the live conversation's.
    workspace: WorkspaceId,
    /// The conversation's agent.
    agent_id: String,
    /// Whether it is in progress.
    live: bool,
}

async fn target(
    app: &AppState, caller: Result<Ctx, ApiError>, id: &ConversationId,
) -> ApiResult<Target> {
    match caller {
        Ok(cx) => {
            let row = cx.conversation(id).await?;
            let live = row.status == "in-progress";
            Ok(Target {
                workspace: cx.workspace_id.clone(),
                agent_id: row.agent_id.to_string(),
                live,
            })
        }
        Err(ApiError::MissingKey) => match app.store.live_conversation(id).await? {
            Some((workspace, agent_id)) => Ok(Target { workspace, agent_id, live: true }),
            None => Err(ApiError::MissingKey),
        },
        Err(e) => Err(e),
    }
}

/// The agent's `conversation.file_input` settings: (enabled, files per conversation).
async fn file_input(app: &AppState, target: &Target) -> ApiResult<(bool, i64)> {
    let agent_id = AgentId::from(target.agent_id.clone());
    let agent = app.store.get_agent(&target.workspace, &agent_id).await;
    let document: Value = match &agent {
        Ok(agent) => serde_json::from_str(&agent.document).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let config = &document["conversation_config"]["conversation"]["file_input"];
    Ok((
        config["enabled"].as_bool().unwrap_or(true),
        config["max_files_per_conversation"].as_i64().unwrap_or(FILES_PER_CONVERSATION),
    ))
}

#[utoipa::path(post, path = "/v1/convai/conversations/{conversation_id}/files", params(("conversation_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn upload_file(
    State(app): State<AppState>, caller: Result<Ctx, ApiError>, Path(id): Path<ConversationId>,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let target = target(&app, caller, &id).await?;
    if !target.live {
        return Err(ApiError::BadRequest {
            status: "conversation_not_active",
            message: "Files can only be attached to a conversation in progress".into(),
        });
    }
    let (enabled, most) = file_input(&app, &target).await?;
    let workspace = target.workspace;
    if !enabled {
        return Err(ApiError::BadRequest {
            status: "file_input_disabled",
            message: "The agent does not take files (conversation_config.conversation.file_input.enabled is false)".into(),
        });
    }
    let (filename, bytes) =
        crate::extract::upload(form, "file", MAX_FILE_BYTES, "A conversation file").await?;
    let Some(mime_type) = sniff(&filename, &bytes) else {
        return Err(ApiError::BadRequest {
            status: "unsupported_file_type",
            message: format!(
                "{filename} is not a PNG, JPEG, GIF or WebP image, a PDF, or a text file (.txt, .md, .csv, .json, ...)"
            ),
        });
    };
    if app.store.count_conversation_files(&workspace, &id).await? >= most {
        return Err(ApiError::BadRequest {
            status: "too_many_files",
            message: format!(
                "The conversation already has its {most} files (file_input.max_files_per_conversation)"
            ),
        });
    }
    let file = ConversationFile {
        id: ids::new_id(ids::prefix::CONVERSATION_FILE),
        conversation_id: id.to_string(),
        filename,
        mime_type: mime_type.to_owned(),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        created_at: time::now_secs(),
        used_at: None,
        content: bytes,
    };
    app.store.insert_conversation_file(&workspace, &file).await?;
    Ok(Json(json!({"file_id": file.id})))
}

#[utoipa::path(get, path = "/v1/convai/conversations/{conversation_id}/files/{file_id}", params(("conversation_id" = String, Path), ("file_id" = String, Path)), security(("api_key" = ["conversations:read"])))]
async fn get_file(
    cx: Ctx, Path((id, file_id)): Path<(ConversationId, String)>,
) -> ApiResult<Response> {
    cx.conversation(&id).await?;
    let file = cx
        .app
        .store
        .conversation_file(&cx.workspace_id, &id, &file_id)
        .await
        .or_not_found("file")?;
    let disposition =
        format!("inline; filename=\"{}\"", file.filename.replace(['"', '\\', '\r', '\n'], "_"));
    Ok((
        [(header::CONTENT_TYPE, file.mime_type), (header::CONTENT_DISPOSITION, disposition)],
        file.content,
    )
        .into_response())
}

#[utoipa::path(delete, path = "/v1/convai/conversations/{conversation_id}/files/{file_id}", params(("conversation_id" = String, Path), ("file_id" = String, Path)), security(("api_key" = ["conversations:write"])))]
async fn delete_file(
    State(app): State<AppState>, caller: Result<Ctx, ApiError>,
    Path((id, file_id)): Path<(ConversationId, String)>,
) -> ApiResult<Json<Value>> {
    let workspace = target(&app, caller, &id).await?.workspace;
    match app.store.delete_conversation_file(&workspace, &id, &file_id).await {
        Ok(()) => Ok(Json(json!({"file_id": file_id}))),
        Err(StoreError::Conflict(_)) => Err(ApiError::Conflict {
            status: "file_already_used",
            message:
                "A message of the conversation has used this file; it can no longer be removed"
                    .into(),
        }),
        Err(e) => Err(e).or_not_found("file"),
    }
}
