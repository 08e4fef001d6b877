//! `source-file-url`: a link to a document's original file that works without an API key,
//! for an hour. The link carries its workspace, document and expiry sealed with the server's
//! secret key, so any node sharing the key serves it and nothing is stored to check it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use colloquy_core::ids::{DocumentId, WorkspaceId};
use colloquy_core::time;
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::conversation_ws::http_base;
use crate::state::AppState;

/// How long a link works.
const LIFETIME_SECS: i64 = 3600;
/// What the sealed link is bound to, so no other sealed value opens as one.
const CONTEXT: &[u8] = b"kb-source-file";
/// Where links are served.
const PREFIX: &str = "/v1/convai/knowledge-base/source-files";

/// The route serving links, outside the documented API (it takes no key).
pub fn file_router() -> axum::Router<AppState> {
    axum::Router::new().route(&format!("{PREFIX}/{{token}}"), get(serve))
}

#[utoipa::path(get, path = "/v1/convai/knowledge-base/{documentation_id}/source-file-url", params(("documentation_id" = String, Path)), security(("api_key" = ["knowledge_base:read"])))]
pub(super) async fn get_source_file_url(
    cx: Ctx, Path(id): Path<DocumentId>, headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let row = cx.document(&id).await?;
    if row.doc_type == colloquy_core::knowledge::DocType::Folder {
        return Err(ApiError::BadRequest {
            status: "not_a_document",
            message: "A folder has no source file".into(),
        });
    }
    let expires = time::now_secs() + LIFETIME_SECS;
    let claim = format!("{}\n{}\n{expires}", cx.workspace_id, id);
    let token = cx.app.keyring.seal(claim.as_bytes(), CONTEXT);
    let base = http_base(&cx.app, &headers);
    Ok(Json(json!({ "signed_url": format!("{base}{PREFIX}/{token}") })))
}

/// The file a link names, while it works: the uploaded file as it was sent, or the text a
/// URL or text document was read as.
async fn serve(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match file(&state, &token).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn file(state: &AppState, token: &str) -> ApiResult<Response> {
    let gone = || ApiError::NotFound("file");
    let claim = state.keyring.open(token, CONTEXT).map_err(|_| gone())?;
    let claim = String::from_utf8(claim).map_err(|_| gone())?;
    let mut parts = claim.split('\n');
    let (Some(workspace), Some(document), Some(expires)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(gone());
    };
    if expires.parse::<i64>().map_or(true, |at| at < time::now_secs()) {
        return Err(gone());
    }
    let (workspace, document) = (WorkspaceId::from(workspace), DocumentId::from(document));
    let row = state.store.get_document(&workspace, &document).await.map_err(|_| gone())?;
    let text = state.store.document_text(&workspace, &document).await.map_err(|_| gone())?;
    let (body, mime) = match text.source {
        Some(bytes) => (bytes, text.mime_type.unwrap_or_else(|| "application/octet-stream".into())),
        None => (text.content.into_bytes(), "text/plain; charset=utf-8".into()),
    };
    let filename = row.filename.unwrap_or_else(|| format!("{}.txt", row.name));
    let disposition =
        format!("attachment; filename=\"{}\"", filename.replace(['"', '\\', '\r', '\n'], "_"));
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
            // An uploaded HTML file must never run as a page of this origin.
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response())
}
