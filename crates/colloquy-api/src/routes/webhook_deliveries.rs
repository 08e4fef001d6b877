//! `GET /api/webhook-deliveries`: every try of every post-call webhook delivery of the
//! workspace, newest first (one entry per try, plus one `pending` entry for the try a waiting
//! delivery makes next), and `POST /api/webhook-deliveries/{id}/redeliver` to send an entry's
//! delivery again. Colloquy's own routes: the reference shows no delivery log.

use axum::extract::Path;
use colloquy_core::cursor::Direction;
use colloquy_core::time;
use colloquy_core::validation::Violation;
use colloquy_store::{AttemptFilter, AttemptRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult, OrNotFound};
use crate::extract::{Json, Query};
use crate::paging::{PageSizeRule, Pager};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_deliveries)).routes(routes!(redeliver))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryParams {
    /// Only this webhook's deliveries.
    #[serde(rename = "webhookId")]
    webhook_id: Option<String>,
    /// Only this conversation's.
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
    /// `pending`, `success` or `failed`.
    status: Option<String>,
    /// From the previous page.
    cursor: Option<String>,
    /// 1..=100, default 30.
    page_size: Option<i64>,
}

#[derive(Serialize)]
struct DeliveryView<'a> {
    id: &'a str,
    delivery_id: &'a str,
    webhook_id: &'a str,
    conversation_id: Option<&'a str>,
    event_type: &'a str,
    attempt: i64,
    status: &'a str,
    response_code: Option<i64>,
    latency_ms: Option<i64>,
    error: Option<&'a str>,
    /// The start of what the receiver answered (at most 1 KiB).
    response_body: Option<&'a str>,
    created_at_unix_secs: i64,
}

fn view(a: &AttemptRow) -> DeliveryView<'_> {
    DeliveryView {
        id: &a.id,
        delivery_id: &a.delivery_id,
        webhook_id: &a.webhook_id,
        conversation_id: a.conversation_id.as_deref(),
        event_type: &a.event_type,
        attempt: a.attempt,
        status: &a.status,
        response_code: a.response_code,
        latency_ms: a.latency_ms,
        error: a.error.as_deref(),
        response_body: a.response_body.as_deref(),
        created_at_unix_secs: a.created_at,
    }
}

#[utoipa::path(
    get,
    path = "/api/webhook-deliveries",
    params(DeliveryParams),
    responses((status = 200, description = "`{deliveries: [{id, delivery_id, webhook_id, conversation_id, event_type, attempt, status, response_code, latency_ms, error, response_body, created_at_unix_secs}], has_more, next_cursor}`, newest first")),
    security(("api_key" = ["admin"]))
)]
async fn list_deliveries(
    cx: Ctx, Query(params): Query<DeliveryParams>,
) -> ApiResult<axum::response::Response> {
    let status = params.status.filter(|s| !s.is_empty());
    if let Some(s) = status.as_deref()
        && !["pending", "success", "failed"].contains(&s)
    {
        return Err(ApiError::invalid(Violation::new(
            ["query", "status"],
            "enum",
            "Input should be 'pending', 'success' or 'failed'",
        )));
    }
    let filter = AttemptFilter {
        webhook_id: params.webhook_id.filter(|s| !s.is_empty()),
        conversation_id: params.conversation_id.filter(|s| !s.is_empty()),
        status,
    };
    let pager = Pager::new(
        PageSizeRule::STANDARD,
        params.page_size,
        params.cursor.as_deref(),
        "created_at",
        Direction::Desc,
        &[
            filter.webhook_id.as_deref().unwrap_or_default(),
            filter.conversation_id.as_deref().unwrap_or_default(),
            filter.status.as_deref().unwrap_or_default(),
        ],
    )?;
    let rows = cx
        .app
        .store
        .list_attempts(&cx.workspace_id, &filter, pager.after()?, pager.fetch())
        .await?;
    let page = pager.page(rows, |r| (r.created_at, r.id.as_str()));
    page.view(view).respond("deliveries")
}

#[utoipa::path(
    post,
    path = "/api/webhook-deliveries/{delivery_id}/redeliver",
    params(("delivery_id" = String, Path, description = "A delivery log entry's id")),
    responses(
        (status = 200, description = "`{status: \"ok\"}`: the delivery is queued again"),
        (status = 409, description = "The delivery is still pending"),
    ),
    security(("api_key" = ["admin"]))
)]
async fn redeliver(cx: Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    match cx.app.store.redeliver(&cx.workspace_id, &id, time::now_secs()).await {
        Ok(()) => {
            cx.app.engine.webhooks_queued.notify_one();
            Ok(Json(json!({"status": "ok"})))
        }
        Err(StoreError::Conflict(why)) => Err(ApiError::Conflict {
            status: "not_sent_again",
            message: format!("Not sent again: {why}."),
        }),
        Err(e) => Err(e).or_not_found("webhook delivery"),
    }
}
