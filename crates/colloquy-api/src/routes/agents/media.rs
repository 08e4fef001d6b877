//! An agent's media: the widget avatar (`POST /agents/{id}/avatar`: an image, shown by the
//! widget from the URL its settings then give) and the hold audio (`POST|DELETE
//! /agents/{id}/hold-audio`: a WAV or MP3 clip whose details the agent's
//! `platform_settings.queueing_config.hold_audio` then gives). Each is served, without a key as
//! a CDN would serve it, at `/media/agents/{id}/{kind}/{sha}`: a new upload gets a new URL.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use colloquy_core::ids::AgentId;
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_store::{AgentMedia, StoreError};
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, upload};
use crate::routes::conversation_files::sniff;
use crate::routes::conversation_ws::http_base;
use crate::state::AppState;

/// The largest avatar taken.
const MAX_AVATAR_BYTES: usize = 5 * 1024 * 1024;
/// The largest hold audio taken, and its longest duration (the reference's limits).
const MAX_HOLD_AUDIO_BYTES: usize = 40 * 1024 * 1024;
const MAX_HOLD_AUDIO_SECS: f64 = 180.0;

const AVATAR: &str = "avatar";
const HOLD_AUDIO: &str = "hold_audio";

/// The body limit of these routes: the larger file plus the form around it.
pub(super) fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_HOLD_AUDIO_BYTES + 64 * 1024)
}

fn invalid(field: &str, kind: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Violation::new(["body", field], kind, message))
}

/// The media row for an upload: its id is the start of the content's SHA-256.
fn media(
    agent_id: &AgentId, kind: &str, filename: String, mime: &str, bytes: Vec<u8>,
) -> AgentMedia {
    AgentMedia {
        agent_id: agent_id.to_string(),
        kind: kind.to_owned(),
        id: colloquy_core::media::content_id(&bytes),
        filename,
        mime_type: mime.to_owned(),
        size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        duration_secs: None,
        content: bytes,
        created_at: time::now_secs(),
    }
}

/// Where a media file is served.
fn media_path(m: &AgentMedia) -> String {
    format!("/media/agents/{}/{}/{}", m.agent_id, m.kind, m.id)
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/avatar", params(("agent_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn post_agent_avatar(
    cx: Ctx, Path(agent_id): Path<AgentId>, headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    let (filename, bytes) = upload(form, "avatar_file", MAX_AVATAR_BYTES, "An avatar").await?;
    let Some(mime) = sniff(&filename, &bytes).filter(|m| m.starts_with("image/")) else {
        return Err(invalid(
            "avatar_file",
            "value_error",
            "The avatar must be a PNG, JPEG, GIF or WebP image",
        ));
    };
    let media = media(&agent_id, AVATAR, filename, mime, bytes);
    cx.app.store.put_agent_media(&cx.workspace_id, &media).await?;
    let url = format!("{}{}", http_base(&cx.app, &headers), media_path(&media));
    let patch = json!({"platform_settings": {"widget": {"avatar": {"type": "image", "url": url}}}});
    super::patch_agent(&cx, &agent_id, None, &patch).await?;
    Ok(Json(json!({"agent_id": agent_id, "avatar_url": url})))
}

#[utoipa::path(post, path = "/v1/convai/agents/{agent_id}/hold-audio", params(("agent_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn post_agent_hold_audio(
    cx: Ctx, Path(agent_id): Path<AgentId>, headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    let (filename, bytes) =
        upload(form, "hold_audio_file", MAX_HOLD_AUDIO_BYTES, "Hold audio").await?;
    let Some(info) = colloquy_core::media::audio_info(&bytes) else {
        return Err(invalid(
            "hold_audio_file",
            "value_error",
            "The hold audio must be an MP3 or WAV file",
        ));
    };
    if info.duration_secs > MAX_HOLD_AUDIO_SECS {
        return Err(invalid(
            "hold_audio_file",
            "value_error",
            format!(
                "The hold audio plays {:.1} s; at most {MAX_HOLD_AUDIO_SECS} s are taken",
                info.duration_secs
            ),
        ));
    }
    let mut media = media(&agent_id, HOLD_AUDIO, filename, info.mime_type, bytes);
    media.duration_secs = Some(info.duration_secs);
    cx.app.store.put_agent_media(&cx.workspace_id, &media).await?;
    let config = json!({
        "audio_path": media_path(&media),
        "audio_url": format!("{}{}", http_base(&cx.app, &headers), media_path(&media)),
        "original_filename": media.filename,
        "duration_secs": info.duration_secs,
        "size_bytes": media.size_bytes,
    });
    set_hold_audio(&cx, &agent_id, Some(config.clone())).await?;
    Ok(Json(json!({"agent_id": agent_id, "hold_audio": config})))
}

#[utoipa::path(delete, path = "/v1/convai/agents/{agent_id}/hold-audio", params(("agent_id" = String, Path)), security(("api_key" = ["agents:write"])))]
pub(super) async fn delete_agent_hold_audio(
    cx: Ctx, Path(agent_id): Path<AgentId>,
) -> ApiResult<Json<Value>> {
    cx.agent(&agent_id).await?;
    match cx.app.store.delete_agent_media(&cx.workspace_id, &agent_id, HOLD_AUDIO).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    set_hold_audio(&cx, &agent_id, None).await?;
    Ok(Json(json!({"agent_id": agent_id})))
}

/// Writes `platform_settings.queueing_config.hold_audio` (`null`: none), which clients cannot.
async fn set_hold_audio(cx: &Ctx, agent_id: &AgentId, config: Option<Value>) -> ApiResult<()> {
    let edit = move |doc: &mut colloquy_core::agents::AgentDoc| {
        let settings = doc.document.entry("platform_settings").or_insert_with(|| json!({}));
        let Some(settings) = settings.as_object_mut() else { return };
        let queueing = settings.entry("queueing_config").or_insert_with(|| json!({}));
        if let Some(queueing) = queueing.as_object_mut() {
            queueing.insert("hold_audio".into(), config.clone().unwrap_or(Value::Null));
        }
    };
    super::patch_agent_edited(cx, agent_id, None, &json!({}), &edit).await?;
    Ok(())
}

/// Serves an agent's media file (no key: the URL is what the widget and players are given).
pub(crate) async fn get_media(
    State(app): State<AppState>, Path((agent_id, kind, id)): Path<(AgentId, String, String)>,
) -> ApiResult<Response> {
    let media =
        app.store.published_agent_media(&agent_id, &kind, &id).await.or_not_found("media")?;
    Ok((
        [
            (header::CONTENT_TYPE, media.mime_type),
            // The URL names the content, so it never changes.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable".to_owned()),
        ],
        media.content,
    )
        .into_response())
}
