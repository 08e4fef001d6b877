//! Webhook deliveries: the queue of post-call events (taken by compare-and-swap on their due
//! time, like auto-synced documents) and the log of every try.

use async_trait::async_trait;

use colloquy_core::ids::{WorkspaceId, new_id};

use crate::db::transaction;
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all};
use crate::{SqlStore, StoreResult};

/// Prefix of delivery ids (the receiver's idempotency key).
pub const DELIVERY_PREFIX: &str = "whdlv_";
/// Prefix of the log's entries.
pub const ATTEMPT_PREFIX: &str = "whtry_";
/// The webhook id of logged conversation-initiation calls: the initiation webhook is a URL in
/// the settings, not a workspace webhook, and its calls cannot be sent again.
pub const INITIATION_WEBHOOK: &str = "conversation_initiation_webhook";

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// The conversation it is about, if any.
    pub conversation_id: Option<String>,
    /// `post_call_transcription`, `post_call_audio`, ...
    pub event_type: String,
    /// The body every try sends.
    pub payload: String,
}

/// A delivery a worker took: what to send, and the token that proves it still holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    /// The delivery's id.
    pub id: String,
    /// Owning workspace.
    pub workspace_id: String,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// The body.
    pub payload: String,
    /// Tries made before this one.
    pub tries: i64,
    /// The due time the worker set when it took it; finishing compares it.
    pub held_until: i64,
}

/// How a try went.
#[derive(Debug, Clone, Default)]
pub struct TryOutcome {
    /// Whether the receiver took it.
    pub success: bool,
    /// The receiver's HTTP status, if it answered.
    pub response_code: Option<i64>,
    /// How long the try took.
    pub latency_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_body: Option<String>,
    /// When to try again, if it will be.
    pub retry_at: Option<i64>,
    /// Whether the receiver was called: only then does the try count for the webhook's health.
    pub attempted: bool,
}

/// One entry of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    /// The entry's id.
    pub id: String,
    /// The delivery it is a try of.
    pub delivery_id: String,
    /// The webhook.
    pub webhook_id: String,
    /// The conversation.
    pub conversation_id: Option<String>,
    /// The event.
    pub event_type: String,
    /// Which try (1 is the first).
    pub attempt: i64,
    /// `pending`, `success` or `failed`.
    pub status: String,
    /// The receiver's HTTP status.
    pub response_code: Option<i64>,
    /// How long the try took.
    pub latency_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_body: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}
sqlite_row!(AttemptRow {
    id,
    delivery_id,
    webhook_id,
    conversation_id,
    event_type,
    attempt,
    status,
    response_code,
    latency_ms,
    error,
    response_body,
    created_at,
});

/// Which log entries to list.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    /// Only this webhook's.
    pub webhook_id: Option<String>,
    /// Only this conversation's.
    pub conversation_id: Option<String>,
    /// Only entries with this status.
    pub status: Option<String>,
}

/// Webhook deliveries.
#[async_trait]
pub trait DeliveryStore {
    /// Logs a call made at once rather than queued (a conversation-initiation webhook): a
    /// delivery that is already over, with its one try.
    async fn record_call(
        &self, call: &NewDelivery, outcome: &TryOutcome, now: i64,
    ) -> StoreResult<String>;
    /// Queues a delivery, due now, with its first (pending) log entry; returns its id.
    async fn queue_delivery(&self, delivery: &NewDelivery, now: i64) -> StoreResult<String>;

    /// Takes the delivery due longest ago, holding it for `lease_secs`.
    async fn take_due_delivery(
        &self, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<DueDelivery>>;

    /// Records a try of a taken delivery: its log entry, the webhook's health (failures in a
    /// row, automatic disabling once `disable_after` failures in a row follow no success in
    /// `quiet_secs`), and the next try or the end. False when the delivery was taken over.
    async fn finish_try(
        &self, due: &DueDelivery, outcome: &TryOutcome, now: i64, disable_after: i64,
        quiet_secs: i64,
    ) -> StoreResult<bool>;

    /// The workspace's log, newest first, after `(created_at, id)`.
    async fn list_attempts(
        &self, workspace_id: &WorkspaceId, filter: &AttemptFilter, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<AttemptRow>>;

    /// Queues the delivery of log entry `attempt_id` again, due now (a new pending try);
    /// [`crate::StoreError::Conflict`] while it is still pending.
    async fn redeliver(
        &self, workspace_id: &WorkspaceId, attempt_id: &str, now: i64,
    ) -> StoreResult<()>;
}

#[async_trait]
impl DeliveryStore for SqlStore {
    async fn record_call(&self, d: &NewDelivery, o: &TryOutcome, now: i64) -> StoreResult<String> {
        let id = new_id(DELIVERY_PREFIX);
        let status = if o.success { "success" } else { "failed" };
        transaction!(self, |tx| {
            insert_delivery!(tx, &id, d, status, 1, None::<i64>, now);
            sqlx::query(
                "INSERT INTO webhook_attempts (id, delivery_id, workspace_id, webhook_id, \
                 conversation_id, event_type, attempt, status, response_code, latency_ms, error, \
                 response_body, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $12, $12)",
            )
            .bind(new_id(ATTEMPT_PREFIX))
            .bind(&id)
            .bind(d.workspace_id.as_str())
            .bind(&d.webhook_id)
            .bind(&d.conversation_id)
            .bind(&d.event_type)
            .bind(status)
            .bind(o.response_code)
            .bind(o.latency_ms)
            .bind(&o.error)
            .bind(&o.response_body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })?;
        Ok(id)
    }

    async fn queue_delivery(&self, d: &NewDelivery, now: i64) -> StoreResult<String> {
        let id = new_id(DELIVERY_PREFIX);
        transaction!(self, |tx| {
            insert_delivery!(tx, &id, d, "pending", 0, Some(now), now);
            sqlx::query(PENDING_ENTRY)
                .bind(new_id(ATTEMPT_PREFIX))
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })?;
        Ok(id)
    }

    async fn take_due_delivery(
        &self, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<DueDelivery>> {
        transaction!(self, |tx| {
            let due: Option<(String, i64)> = sqlx::query_as(
                "SELECT id, due_at FROM webhook_deliveries \
                 WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT 1",
            )
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, due_at)) = due else { return Ok(None) };
            let held_until = now + lease_secs;
            let taken = sqlx::query(
                "UPDATE webhook_deliveries SET due_at = $3 WHERE id = $1 AND due_at = $2",
            )
            .bind(&id)
            .bind(due_at)
            .bind(held_until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken != 1 {
                return Ok(None);
            }
            let row: Option<DueDelivery> = sqlx::query_as(
                "SELECT id, workspace_id, webhook_id, payload, tries, due_at AS held_until \
                 FROM webhook_deliveries WHERE id = $1",
            )
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
            Ok(row)
        })
    }

    async fn finish_try(
        &self, due: &DueDelivery, o: &TryOutcome, now: i64, disable_after: i64, quiet_secs: i64,
    ) -> StoreResult<bool> {
        let status = match (o.success, o.retry_at) {
            (true, _) => "success",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        transaction!(self, |tx| {
            let held = sqlx::query(
                "UPDATE webhook_deliveries SET status = $3, tries = tries + 1, due_at = $4, \
                 updated_at = $5 WHERE id = $1 AND due_at = $2",
            )
            .bind(&due.id)
            .bind(due.held_until)
            .bind(status)
            .bind(o.retry_at)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held != 1 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE webhook_attempts SET status = $2, response_code = $3, latency_ms = $4, \
                 error = $5, response_body = $6, updated_at = $7 \
                 WHERE delivery_id = $1 AND status = 'pending'",
            )
            .bind(&due.id)
            .bind(if o.success { "success" } else { "failed" })
            .bind(o.response_code)
            .bind(o.latency_ms)
            .bind(&o.error)
            .bind(&o.response_body)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if o.retry_at.is_some() {
                sqlx::query(PENDING_ENTRY)
                    .bind(new_id(ATTEMPT_PREFIX))
                    .bind(&due.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            if !o.attempted {
                return Ok(true);
            }
            let health = if o.success {
                sqlx::query(
                    "UPDATE workspace_webhooks SET consecutive_failures = 0, last_success_at = $2 \
                     WHERE id = $1",
                )
                .bind(&due.webhook_id)
                .bind(now)
            } else {
                sqlx::query(
                    "UPDATE workspace_webhooks SET consecutive_failures = consecutive_failures + 1, \
                     last_failure_code = $3, last_failure_at = $2, \
                     is_auto_disabled = CASE WHEN consecutive_failures + 1 >= $4 \
                     AND (last_success_at IS NULL OR last_success_at < $2 - $5) THEN 1 \
                     ELSE is_auto_disabled END WHERE id = $1",
                )
                .bind(&due.webhook_id)
                .bind(now)
                .bind(o.response_code)
                .bind(disable_after)
                .bind(quiet_secs)
            };
            health.execute(&mut *tx).await?;
            Ok(true)
        })
    }

    async fn list_attempts(
        &self, workspace_id: &WorkspaceId, f: &AttemptFilter, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<AttemptRow>> {
        let mut q = Query::in_workspace(
            "SELECT id, delivery_id, webhook_id, conversation_id, event_type, attempt, status, \
             response_code, latency_ms, error, response_body, created_at FROM webhook_attempts \
             WHERE workspace_id = $1",
            workspace_id,
        );
        if let Some(webhook_id) = &f.webhook_id {
            q.push(" AND webhook_id = ?", Bind::Text(webhook_id.clone()));
        }
        if let Some(conversation_id) = &f.conversation_id {
            q.push(" AND conversation_id = ?", Bind::Text(conversation_id.clone()));
        }
        if let Some(status) = &f.status {
            q.push(" AND status = ?", Bind::Text(status.clone()));
        }
        if let Some((at, id)) = after {
            let at = q.param(Bind::Int(at));
            let id = q.param(Bind::Text(id));
            q.raw(&format!(" AND (created_at < {at} OR (created_at = {at} AND id < {id}))"));
        }
        q.order_and_limit("created_at DESC, id DESC", limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn redeliver(
        &self, workspace_id: &WorkspaceId, attempt_id: &str, now: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            let delivery: Option<(String, String, String)> = sqlx::query_as(
                "SELECT d.id, d.status, d.webhook_id FROM webhook_attempts a \
                 JOIN webhook_deliveries d ON d.id = a.delivery_id \
                 WHERE a.workspace_id = $1 AND a.id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(attempt_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, status, webhook_id)) = delivery else {
                return Err(crate::StoreError::NotFound);
            };
            if webhook_id == INITIATION_WEBHOOK {
                return Err(crate::StoreError::Conflict(
                    "a conversation-initiation call is answered while its conversation starts"
                        .into(),
                ));
            }
            if status == "pending" {
                return Err(crate::StoreError::Conflict(
                    "the delivery is still pending: it will be tried again on its own".into(),
                ));
            }
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'pending', due_at = $2, updated_at = $2 \
                 WHERE id = $1",
            )
            .bind(&id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(PENDING_ENTRY)
                .bind(new_id(ATTEMPT_PREFIX))
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }
}

/// Inserts the delivery `$d` (a [`NewDelivery`]) as `$id` inside the transaction `$tx`, with its
/// status, tries so far and next try's due time (`None`: none).
macro_rules! insert_delivery {
    ($tx:ident, $id:expr, $d:expr, $status:expr, $tries:expr, $due_at:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, workspace_id, webhook_id, conversation_id, \
             event_type, payload, status, tries, due_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind($id)
        .bind($d.workspace_id.as_str())
        .bind(&$d.webhook_id)
        .bind(&$d.conversation_id)
        .bind(&$d.event_type)
        .bind(&$d.payload)
        .bind($status)
        .bind($tries as i64)
        .bind($due_at)
        .bind($now)
        .execute(&mut *$tx)
        .await?
    };
}
use insert_delivery;

/// The pending log entry of a delivery's next try (`$1` its id, `$2` the delivery, `$3` now).
const PENDING_ENTRY: &str = "INSERT INTO webhook_attempts (id, delivery_id, workspace_id, \
     webhook_id, conversation_id, event_type, attempt, status, created_at, updated_at) \
     SELECT $1, id, workspace_id, webhook_id, conversation_id, event_type, tries + 1, 'pending', \
     $3, $3 FROM webhook_deliveries WHERE id = $2";
