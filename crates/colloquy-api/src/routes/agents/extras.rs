//! The share link, the embeddable widget's configuration and the knowledge-base size.

use axum::extract::Path;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use colloquy_core::ids::AgentId;
use colloquy_core::schema::Spec;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;

use crate::auth::Ctx;
use crate::error::{ApiResult, OrNotFound};
use crate::extract::{Json, Query};

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/link", params(("agent_id" = String, Path)), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_agent_link(
    cx: Ctx, Path(agent_id): Path<AgentId>,
) -> ApiResult<Json<Value>> {
    let candidate = URL_SAFE_NO_PAD.encode(colloquy_core::random::bytes::<32>());
    let token = cx
        .app
        .store
        .agent_link_token(&cx.workspace_id, &agent_id, &candidate)
        .await
        .or_not_found("agent")?;
    Ok(Json(json!({
        "agent_id": agent_id,
        "token": {
            "agent_id": agent_id,
            "conversation_token": token,
            "expiration_time_unix_secs": null,
            "conversation_id": null,
            "purpose": "shareable_link",
            "token_requester_user_id": cx.user_id,
        }
    })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct WidgetParams {
    /// A signed-URL signature; accepted, not needed with an API key.
    #[serde(rename = "conversation_signature")]
    _conversation_signature: Option<String>,
}

#[utoipa::path(get, path = "/v1/convai/agents/{agent_id}/widget", params(("agent_id" = String, Path), WidgetParams), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_agent_widget(
    cx: Ctx, Path(agent_id): Path<AgentId>, Query(_): Query<WidgetParams>,
) -> ApiResult<Json<Value>> {
    let row = cx.agent(&agent_id).await?;
    let doc: Value = serde_json::from_str(&row.document)?;
    let mut widget = doc.pointer("/platform_settings/widget").cloned().unwrap_or_else(|| json!({}));
    let config = &doc["conversation_config"];
    if let Some(w) = widget.as_object_mut() {
        let text_only = config.pointer("/conversation/text_only").cloned().unwrap_or(json!(false));
        w.insert(
            "language".into(),
            config.pointer("/agent/language").cloned().unwrap_or(json!("en")),
        );
        w.insert(
            "first_message".into(),
            config.pointer("/agent/first_message").cloned().unwrap_or(Value::Null),
        );
        w.insert(
            "language_presets".into(),
            config.get("language_presets").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        );
        w.insert("supports_text_only".into(), text_only.clone());
        w.insert("text_only".into(), text_only);
        w.insert("use_rtc".into(), json!(false));
        if let Some(file_input) = config.pointer("/conversation/file_input") {
            w.insert("file_input_config".into(), file_input.clone());
        }
    }
    // Fill what the response model declares beyond the stored widget settings, and drop the
    // settings only the write model has (`language_selector`, `custom_avatar_path`).
    let mut filled = widget.clone();
    if Spec::reference().project("WidgetConfigResponseModel", &mut filled).is_ok() {
        widget = filled;
    }
    Ok(Json(json!({ "agent_id": agent_id, "widget_config": widget })))
}

/// Bytes of text counted as one page of an agent's knowledge base.
const PAGE_BYTES: f64 = 3000.0;

#[utoipa::path(get, path = "/v1/convai/agent/{agent_id}/knowledge-base/size", params(("agent_id" = String, Path)), security(("api_key" = ["agents:read"])))]
pub(super) async fn get_knowledge_base_size(
    cx: Ctx, Path(agent_id): Path<AgentId>,
) -> ApiResult<Json<Value>> {
    let row = cx.agent(&agent_id).await?;
    let doc = super::stored_doc(&row)?;
    let mut ids = Vec::new();
    for id in doc.document_ids() {
        ids.extend(cx.app.store.descendants(&cx.workspace_id, &id).await?);
        ids.push(id);
    }
    let docs = cx.app.store.get_documents(&cx.workspace_id, &ids).await?;
    let bytes: i64 = docs.iter().map(|d| d.size_bytes).sum();
    // A page is PAGE_BYTES of text: the reference counts PDF pages and web pages, which a
    // document read into text no longer has.
    Ok(Json(json!({ "number_of_pages": bytes as f64 / PAGE_BYTES })))
}
