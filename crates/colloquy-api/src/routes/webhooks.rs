//! Workspace webhooks (`/v1/workspace/webhooks`): where post-call events go. Each is signed
//! with an HMAC secret the server makes, shows once (in the create answer) and keeps sealed
//! with its secret key; the URL cannot change after creation, as in the reference.

use std::collections::BTreeMap;

use axum::extract::Path;
use colloquy_core::ids::{self, prefix};
use colloquy_core::keys::hex;
use colloquy_core::secret_key::secret_context;
use colloquy_core::validation::{LocItem, Violation};
use colloquy_core::{random, time};
use colloquy_store::{CONVAI_SETTINGS, WebhookChange, WebhookRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 256;
const MAX_HEADERS: usize = 32;
/// The header deliveries are signed in; a webhook's own headers may not replace it.
pub const SIGNATURE_HEADER: &str = "ElevenLabs-Signature";

/// The workspace webhooks routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(update_webhook, delete_webhook))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Also list what uses each webhook and the events it is subscribed to.
    #[serde(default)]
    include_usages: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthType {
    Hmac,
}

#[derive(Debug, Deserialize)]
struct HmacSettings {
    #[serde(rename = "auth_type")]
    _auth_type: AuthType,
    name: String,
    webhook_url: String,
    #[serde(default)]
    request_headers: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, Deserialize)]
struct CreateWebhook {
    settings: HmacSettings,
}

/// The workspace-level events a webhook may subscribe to.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum WorkspaceEvent {
    VoiceLibraryRemovalNotice,
    SpeechToText,
    AgentQa,
    Flows,
}

#[derive(Debug, Deserialize)]
struct UpdateWebhook {
    is_disabled: bool,
    name: String,
    #[serde(default)]
    retry_enabled: Option<bool>,
    #[serde(default)]
    request_headers: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    events: Option<Vec<WorkspaceEvent>>,
}

#[utoipa::path(get, path = "/v1/workspace/webhooks", params(ListParams), security(("api_key" = ["admin"])))]
async fn list_webhooks(cx: Ctx, Query(params): Query<ListParams>) -> ApiResult<Json<Value>> {
    let rows = cx.app.store.list_webhooks(&cx.workspace_id).await?;
    let users =
        if params.include_usages { Some(Users::read(&cx, prefix::WEBHOOK).await?) } else { None };
    let webhooks: Vec<Value> =
        rows.iter().map(|row| view(row, users.as_ref().map(|u| u.of(&row.id)))).collect();
    Ok(Json(json!({"webhooks": webhooks})))
}

#[utoipa::path(post, path = "/v1/workspace/webhooks", security(("api_key" = ["admin"])))]
async fn create_webhook(cx: Ctx, Json(body): Json<CreateWebhook>) -> ApiResult<Json<Value>> {
    let settings = body.settings;
    let mut violations = Vec::new();
    check_name(&settings.name, &["body", "settings", "name"], &mut violations);
    if let Err(why) = cx.app.engine.egress.check_callable(&settings.webhook_url) {
        violations.push(Violation::new(["body", "settings", "webhook_url"], "value_error", why));
    }
    let headers = headers(
        settings.request_headers.unwrap_or_default(),
        &["body", "settings", "request_headers"],
        &mut violations,
    );
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    let id = ids::new_id(prefix::WEBHOOK);
    let secret = format!("wsec_{}", hex(&random::bytes::<32>()));
    let now = time::now_secs();
    let row = WebhookRow {
        sealed_secret: cx
            .app
            .keyring
            .seal(secret.as_bytes(), &secret_context(&cx.workspace_id, &id)),
        id,
        workspace_id: cx.workspace_id.clone(),
        name: settings.name,
        url: settings.webhook_url,
        auth_type: "hmac".into(),
        request_headers: headers.to_string(),
        events: "[]".into(),
        is_disabled: 0,
        is_auto_disabled: 0,
        retry_enabled: None,
        consecutive_failures: 0,
        last_success_at: None,
        last_failure_code: None,
        last_failure_at: None,
        created_by: cx.user_id.clone(),
        created_at: now,
        updated_at: now,
    };
    cx.app.store.insert_webhook(&row).await?;
    Ok(Json(json!({"webhook_id": row.id, "webhook_secret": secret})))
}

#[utoipa::path(patch, path = "/v1/workspace/webhooks/{webhook_id}", params(("webhook_id" = String, Path)), security(("api_key" = ["admin"])))]
async fn update_webhook(
    cx: Ctx, Path(webhook_id): Path<String>, Json(body): Json<UpdateWebhook>,
) -> ApiResult<Json<Value>> {
    let mut violations = Vec::new();
    check_name(&body.name, &["body", "name"], &mut violations);
    let headers =
        body.request_headers.map(|h| headers(h, &["body", "request_headers"], &mut violations));
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    let change = WebhookChange {
        name: body.name,
        is_disabled: body.is_disabled,
        retry_enabled: body.retry_enabled,
        request_headers: headers.map(|h| h.to_string()),
        events: body.events.map(|e| json!(e).to_string()),
    };
    cx.app
        .store
        .update_webhook(&cx.workspace_id, &webhook_id, &change, time::now_secs())
        .await
        .or_not_found("webhook")?;
    Ok(Json(json!({"status": "ok"})))
}

#[utoipa::path(delete, path = "/v1/workspace/webhooks/{webhook_id}", params(("webhook_id" = String, Path)), security(("api_key" = ["admin"])))]
async fn delete_webhook(cx: Ctx, Path(webhook_id): Path<String>) -> ApiResult<Json<Value>> {
    cx.app.store.get_webhook(&cx.workspace_id, &webhook_id).await.or_not_found("webhook")?;
    let used = Users::read(&cx, &webhook_id).await?.of(&webhook_id);
    if !used.is_empty() {
        let by: Vec<&str> = used.iter().filter_map(|u| u["usage_type"].as_str()).collect();
        return Err(ApiError::Conflict {
            status: "webhook_in_use",
            message: format!(
                "The webhook is used by {}; stop using it there before deleting it.",
                by.join(" and ")
            ),
        });
    }
    cx.app.store.delete_webhook(&cx.workspace_id, &webhook_id).await.or_not_found("webhook")?;
    Ok(Json(json!({"status": "ok"})))
}

/// A webhook as the list shows it; `usage` and `events` only when usages were asked for.
fn view(row: &WebhookRow, usage: Option<Vec<Value>>) -> Value {
    let events = usage
        .is_some()
        .then(|| serde_json::from_str::<Value>(&row.events).unwrap_or_else(|_| json!([])));
    json!({
        "name": row.name,
        "webhook_id": row.id,
        "webhook_url": row.url,
        "is_disabled": row.is_disabled != 0,
        "is_auto_disabled": row.is_auto_disabled != 0,
        "created_at_unix": row.created_at,
        "auth_type": row.auth_type,
        "usage": usage,
        "events": events,
        "most_recent_failure_error_code": row.last_failure_code,
        "most_recent_failure_timestamp": row.last_failure_at,
    })
}

/// What sends post-call events to webhooks, read once for a whole list: the webhook the
/// workspace's settings name, and those agents' `platform_settings.workspace_overrides.webhooks`
/// name. `mentioning` narrows the agents read (a webhook's id, or the id prefix for all).
struct Users {
    settings: Option<String>,
    agents: Vec<String>,
}

impl Users {
    async fn read(cx: &Ctx, mentioning: &str) -> ApiResult<Users> {
        let pointer = "/webhooks/post_call_webhook_id";
        let named = |document: &str, at: &str| {
            let doc: Value = serde_json::from_str(document).unwrap_or_default();
            doc.pointer(at).and_then(Value::as_str).map(str::to_owned)
        };
        let settings = cx.app.store.get_settings(&cx.workspace_id, CONVAI_SETTINGS).await?;
        let agents = cx.app.store.agents_mentioning(&cx.workspace_id, mentioning).await?;
        let at = format!("/platform_settings/workspace_overrides{pointer}");
        Ok(Users {
            settings: settings.and_then(|row| named(&row.document, pointer)),
            agents: agents.iter().filter_map(|a| named(&a.document, &at)).collect(),
        })
    }

    /// The reference's usage entries of one webhook.
    fn of(&self, webhook_id: &str) -> Vec<Value> {
        let mut usage = Vec::new();
        if self.settings.as_deref() == Some(webhook_id) {
            usage.push(json!({"usage_type": "ConvAI Settings"}));
        }
        if self.agents.iter().any(|id| id == webhook_id) {
            usage.push(json!({"usage_type": "ConvAI Agent Settings"}));
        }
        usage
    }
}

fn check_name(name: &str, loc: &[&str], violations: &mut Vec<Violation>) {
    let loc = || loc.iter().map(|k| LocItem::from(*k)).collect::<Vec<_>>();
    if name.trim().is_empty() {
        violations.push(Violation {
            loc: loc(),
            msg: "String should have at least 1 character".into(),
            kind: "string_too_short".into(),
        });
    } else if name.chars().count() > MAX_NAME_CHARS {
        violations.push(Violation {
            loc: loc(),
            msg: format!("String should have at most {MAX_NAME_CHARS} characters"),
            kind: "string_too_long".into(),
        });
    }
}

/// The headers a delivery carries, as a JSON object: entries sent as `null` are left out; a
/// name or value HTTP cannot carry, or the signature header, is refused.
fn headers(
    sent: BTreeMap<String, Option<String>>, loc: &[&str], violations: &mut Vec<Violation>,
) -> Value {
    let mut kept = serde_json::Map::new();
    if sent.len() > MAX_HEADERS {
        violations.push(Violation::new(
            loc.iter().map(|k| LocItem::from(*k)).collect::<Vec<_>>(),
            "too_long",
            format!("At most {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in sent {
        let Some(value) = value else { continue };
        let mut at: Vec<LocItem> = loc.iter().map(|k| LocItem::from(*k)).collect();
        at.push(LocItem::from(name.as_str()));
        let problem = if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            Some("Not a valid HTTP header name")
        } else if name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
            Some("The signature header is set by the server")
        } else if axum::http::HeaderValue::from_str(&value).is_err() {
            Some("Not a valid HTTP header value")
        } else {
            None
        };
        match problem {
            Some(msg) => {
                violations.push(Violation { loc: at, msg: msg.into(), kind: "value_error".into() })
            }
            None => {
                kept.insert(name, Value::String(value));
            }
        }
    }
    Value::Object(kept)
}
