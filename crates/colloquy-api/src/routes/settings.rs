//! The workspace's agents-platform settings (`/v1/convai/settings`) and dashboard settings
//! (`/v1/convai/settings/dashboard`): one stored document each, defaults filled, read whole
//! and patched field by field.
//!
//! A PATCH changes only the fields the body has (the official SDKs send just the ones set; an
//! explicit `null` clears a nullable field); `webhooks` is merged key by key for the same
//! reason. The document is written over the revision it was read at, so two PATCHes of
//! different fields at once both land.

use colloquy_core::schema::Spec;
use colloquy_core::time;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_store::{CONVAI_SETTINGS, StoreError};
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::contention;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, check_body};
use crate::state::AppState;

/// One of the workspace's settings documents.
struct Document {
    /// The name it is stored under.
    name: &'static str,
    /// The reference's request model of a PATCH.
    request: &'static str,
    /// The reference's response model.
    response: &'static str,
    /// Keys merged key by key rather than replaced.
    merged: &'static [&'static str],
    /// What a workspace that never wrote it reads.
    default: fn() -> Value,
}

const CONVAI: Document = Document {
    name: CONVAI_SETTINGS,
    request: "PatchConvAISettingsRequest",
    response: "GetConvAISettingsResponseModel",
    merged: &["webhooks"],
    default: || {
        json!({
            "conversation_initiation_client_data_webhook": null,
            "webhooks": {"post_call_webhook_id": null, "events": [], "transcript_format": "json", "send_audio": null},
            "can_use_mcp_servers": false,
            "rag_retention_period_days": 10,
            "conversation_embedding_retention_days": null,
            "default_livekit_stack": "standard"
        })
    },
};

const DASHBOARD: Document = Document {
    name: "dashboard",
    request: "PatchConvAIDashboardSettingsRequest",
    response: "GetConvAIDashboardSettingsResponseModel",
    merged: &[],
    default: || json!({"charts": []}),
};

/// The settings routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, update_settings))
        .routes(routes!(get_dashboard_settings, update_dashboard_settings))
}

#[utoipa::path(get, path = "/v1/convai/settings", security(("api_key" = ["agents:read"])))]
async fn get_settings(cx: Ctx) -> ApiResult<Json<Value>> {
    Ok(Json(read(&cx, &CONVAI).await?.0))
}

#[utoipa::path(patch, path = "/v1/convai/settings", security(("api_key" = ["admin"])))]
async fn update_settings(cx: Ctx, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let body = checked(&CONVAI, body)?;
    check_references(&cx, &body).await?;
    Ok(Json(patch(&cx, &CONVAI, &body).await?))
}

#[utoipa::path(get, path = "/v1/convai/settings/dashboard", security(("api_key" = ["conversations:read"])))]
async fn get_dashboard_settings(cx: Ctx) -> ApiResult<Json<Value>> {
    Ok(Json(read(&cx, &DASHBOARD).await?.0))
}

#[utoipa::path(patch, path = "/v1/convai/settings/dashboard", security(("api_key" = ["admin"])))]
async fn update_dashboard_settings(cx: Ctx, Json(body): Json<Value>) -> ApiResult<Json<Value>> {
    let body = checked(&DASHBOARD, body)?;
    Ok(Json(patch(&cx, &DASHBOARD, &body).await?))
}

/// The stored document (or the default) and the revision to write over.
async fn read(cx: &Ctx, doc: &Document) -> ApiResult<(Value, Option<i64>)> {
    match cx.app.store.get_settings(&cx.workspace_id, doc.name).await? {
        Some(row) => {
            let value = serde_json::from_str(&row.document)
                .map_err(|e| anyhow::anyhow!("stored {} settings do not parse: {e}", doc.name))?;
            Ok((value, Some(row.revision)))
        }
        None => Ok(((doc.default)(), None)),
    }
}

/// The body as sent (only its own fields), once it passed the request model.
fn checked(doc: &Document, body: Value) -> ApiResult<Map<String, Value>> {
    let Value::Object(sent) = body else {
        return Err(ApiError::invalid(Violation::new(
            ["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )));
    };
    // The check fills the model's defaults; the copy keeps what the client sent.
    let mut filled = Value::Object(sent.clone());
    check_body(doc.request, &mut filled)?;
    Ok(sent)
}

/// What the schema cannot check: the post-call webhook exists, the initiation webhook's URL may
/// be called and the secrets its headers name exist.
async fn check_references(cx: &Ctx, body: &Map<String, Value>) -> ApiResult<()> {
    let mut violations = Vec::new();
    let webhook = body.get("webhooks").and_then(|w| w.get("post_call_webhook_id"));
    if let Some(id) = webhook.and_then(Value::as_str) {
        match cx.app.store.get_webhook(&cx.workspace_id, id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => violations.push(Violation::new(
                ["body", "webhooks", "post_call_webhook_id"],
                "value_error",
                format!("Webhook {id} does not exist in this workspace"),
            )),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(hook) =
        body.get("conversation_initiation_client_data_webhook").filter(|h| !h.is_null())
    {
        let at = |key: &str| {
            vec![
                LocItem::from("body"),
                LocItem::from("conversation_initiation_client_data_webhook"),
                LocItem::from(key),
            ]
        };
        let url = hook.get("url").and_then(Value::as_str).unwrap_or_default();
        if let Err(why) = cx.app.engine.egress.check_callable(url) {
            violations.push(Violation { loc: at("url"), msg: why, kind: "value_error".into() });
        }
        let headers = hook.get("request_headers").and_then(Value::as_object);
        for (name, value) in headers.into_iter().flatten() {
            let Some(secret_id) = value.get("secret_id").and_then(Value::as_str) else {
                continue;
            };
            match cx.app.store.get_secret(&cx.workspace_id, secret_id).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    let mut loc = at("request_headers");
                    loc.push(LocItem::from(name.as_str()));
                    violations.push(Violation {
                        loc,
                        msg: format!("Secret {secret_id} does not exist"),
                        kind: "value_error".into(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(violations)) }
}

/// Applies the sent fields over the stored document and writes it over the revision read.
async fn patch(cx: &Ctx, doc: &Document, sent: &Map<String, Value>) -> ApiResult<Value> {
    for attempt in 0..contention::ATTEMPTS {
        contention::pause(attempt).await;
        let (mut current, revision) = read(cx, doc).await?;
        for (key, value) in sent {
            match (doc.merged.contains(&key.as_str()), current.get_mut(key), value) {
                (true, Some(Value::Object(old)), Value::Object(new)) => {
                    old.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                _ => {
                    current[key.as_str()] = value.clone();
                }
            }
        }
        // Shaped as the answer is: defaults filled, fields the model does not have dropped.
        Spec::reference().project(doc.response, &mut current).map_err(ApiError::Invalid)?;
        let text = current.to_string();
        let now = time::now_secs();
        if cx.app.store.put_settings(&cx.workspace_id, doc.name, &text, revision, now).await? {
            return Ok(current);
        }
    }
    Err(ApiError::Conflict {
        status: "settings_changed",
        message: "The settings changed while this update was applied; send it again.".into(),
    })
}
