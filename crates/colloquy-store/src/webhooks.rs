//! A workspace's settings documents and its webhooks. The webhook's HMAC secret is stored sealed;
//! sealing and opening happen above the store, with the server's secret key.

use async_trait::async_trait;

use colloquy_core::ids::WorkspaceId;

use crate::db::{change_one, execute, run};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, escape_like, fetch_all, fetch_optional, find};
use crate::{SqlStore, StoreResult};

/// The settings document of `/v1/convai/settings`, which names the workspace's post-call
/// webhook (the API writes it, deliveries read it).
pub const CONVAI_SETTINGS: &str = "convai";

/// A stored settings document and the revision a write must start from.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SettingsRow {
    /// The wire document (JSON text).
    pub document: String,
    /// Moves with every write.
    pub revision: i64,
}
sqlite_row!(SettingsRow { document, revision });

/// A workspace webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRow {
    /// The webhook's id.
    pub id: String,
    /// Owning workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// Where deliveries go.
    pub url: String,
    /// `hmac`.
    pub auth_type: String,
    /// The signing secret, sealed with the server's secret key.
    pub sealed_secret: String,
    /// JSON object of extra request headers.
    pub request_headers: String,
    /// JSON array of workspace-level event types.
    pub events: String,
    /// Disabled by a user (1) or not (0).
    pub is_disabled: i64,
    /// Disabled after failing too long (1) or not (0).
    pub is_auto_disabled: i64,
    /// Whether transient failures are tried again (1) or not (0); `None` until set, when
    /// Colloquy retries them.
    pub retry_enabled: Option<i64>,
    /// Failed deliveries since the last success.
    pub consecutive_failures: i64,
    /// Unix seconds of the last successful delivery.
    pub last_success_at: Option<i64>,
    /// The HTTP status of the last failure, when it had one.
    pub last_failure_code: Option<i64>,
    /// Unix seconds of the last failure.
    pub last_failure_at: Option<i64>,
    /// User who created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}
sqlite_row!(WebhookRow {
    id,
    workspace_id,
    name,
    url,
    auth_type,
    sealed_secret,
    request_headers,
    events,
    is_disabled,
    is_auto_disabled,
    retry_enabled,
    consecutive_failures,
    last_success_at,
    last_failure_code,
    last_failure_at,
    created_by,
    created_at,
    updated_at,
});

/// What a PATCH of a webhook changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    /// New display name.
    pub name: String,
    /// Disabled by the user; enabling also clears an automatic disabling.
    pub is_disabled: bool,
    /// New retry setting.
    pub retry_enabled: Option<bool>,
    /// New request headers (JSON object).
    pub request_headers: Option<String>,
    /// New workspace-level events (JSON array).
    pub events: Option<String>,
}

/// The agents (main branch heads) whose document mentions a text: the candidates a caller
/// confirms by reading the document.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentDocumentRow {
    /// The agent's id.
    pub id: String,
    /// The agent's wire document.
    pub document: String,
}
sqlite_row!(AgentDocumentRow { id, document });

/// Workspace settings documents and workspace webhooks.
#[async_trait]
pub trait WebhookStore {
    /// The settings document `name` of a workspace, if it was ever written.
    async fn get_settings(
        &self, workspace_id: &WorkspaceId, name: &str,
    ) -> StoreResult<Option<SettingsRow>>;

    /// Writes settings document `name` over `revision` (`None`: it did not exist yet);
    /// false when another write came first, so the caller reads again.
    async fn put_settings(
        &self, workspace_id: &WorkspaceId, name: &str, document: &str, revision: Option<i64>,
        now: i64,
    ) -> StoreResult<bool>;

    /// Stores a new webhook.
    async fn insert_webhook(&self, webhook: &WebhookRow) -> StoreResult<()>;

    /// The workspace's webhooks, oldest first.
    async fn list_webhooks(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<WebhookRow>>;

    /// One webhook of the workspace.
    async fn get_webhook(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<WebhookRow>;

    /// Applies a PATCH.
    async fn update_webhook(
        &self, workspace_id: &WorkspaceId, id: &str, change: &WebhookChange, now: i64,
    ) -> StoreResult<()>;

    /// Deletes a webhook (callers check first that nothing uses it).
    async fn delete_webhook(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()>;

    /// The workspace's agents whose document contains `text`.
    async fn agents_mentioning(
        &self, workspace_id: &WorkspaceId, text: &str,
    ) -> StoreResult<Vec<AgentDocumentRow>>;

    /// Every webhook of every workspace, by id after `after` (for re-sealing under a new key).
    async fn all_webhooks(&self, after: &str, limit: u32) -> StoreResult<Vec<WebhookRow>>;

    /// Replaces the sealed secret of a webhook, keeping everything else.
    async fn reseal_webhook(&self, id: &str, sealed_secret: &str) -> StoreResult<()>;
}

const COLUMNS: &str = "SELECT id, workspace_id, name, url, auth_type, sealed_secret, \
     request_headers, events, is_disabled, is_auto_disabled, retry_enabled, \
     consecutive_failures, last_success_at, last_failure_code, last_failure_at, created_by, \
     created_at, updated_at FROM workspace_webhooks";

#[async_trait]
impl WebhookStore for SqlStore {
    async fn get_settings(
        &self, workspace_id: &WorkspaceId, name: &str,
    ) -> StoreResult<Option<SettingsRow>> {
        let q = Query::scoped(
            "SELECT document, revision FROM workspace_settings \
             WHERE workspace_id = $1 AND name = $2",
            workspace_id,
            name,
        );
        Ok(fetch_optional!(self, q)?)
    }

    async fn put_settings(
        &self, workspace_id: &WorkspaceId, name: &str, document: &str, revision: Option<i64>,
        now: i64,
    ) -> StoreResult<bool> {
        let done = match revision {
            // Two first writes race on the primary key: the second changes nothing.
            None => execute!(
                self,
                "INSERT INTO workspace_settings (workspace_id, name, document, revision, \
                 updated_at) VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING",
                workspace_id.as_str(),
                name,
                document,
                now,
            )?,
            Some(revision) => execute!(
                self,
                "UPDATE workspace_settings SET document = $3, revision = revision + 1, \
                 updated_at = $5 WHERE workspace_id = $1 AND name = $2 AND revision = $4",
                workspace_id.as_str(),
                name,
                document,
                revision,
                now,
            )?,
        };
        Ok(done == 1)
    }

    async fn insert_webhook(&self, w: &WebhookRow) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO workspace_webhooks (id, workspace_id, name, url, auth_type, \
             sealed_secret, request_headers, events, is_disabled, is_auto_disabled, \
             retry_enabled, consecutive_failures, last_success_at, last_failure_code, \
             last_failure_at, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
            &w.id,
            w.workspace_id.as_str(),
            &w.name,
            &w.url,
            &w.auth_type,
            &w.sealed_secret,
            &w.request_headers,
            &w.events,
            w.is_disabled,
            w.is_auto_disabled,
            w.retry_enabled,
            w.consecutive_failures,
            w.last_success_at,
            w.last_failure_code,
            w.last_failure_at,
            &w.created_by,
            w.created_at,
            w.updated_at,
        )?;
        Ok(())
    }

    async fn list_webhooks(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<WebhookRow>> {
        let q = Query::in_workspace(
            format!("{COLUMNS} WHERE workspace_id = $1 ORDER BY created_at, id"),
            workspace_id,
        );
        Ok(fetch_all!(self, q)?)
    }

    async fn get_webhook(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<WebhookRow> {
        find!(self, format!("{COLUMNS} WHERE workspace_id = $1 AND id = $2"), workspace_id, id)
    }

    async fn update_webhook(
        &self, workspace_id: &WorkspaceId, id: &str, c: &WebhookChange, now: i64,
    ) -> StoreResult<()> {
        // Enabling a webhook also lifts an automatic disabling and starts its count again.
        change_one!(
            self,
            "UPDATE workspace_webhooks SET name = $3, is_disabled = $4, \
             retry_enabled = COALESCE($5, retry_enabled), \
             request_headers = COALESCE($6, request_headers), events = COALESCE($7, events), \
             is_auto_disabled = CASE WHEN $4 = 0 THEN 0 ELSE is_auto_disabled END, \
             consecutive_failures = CASE WHEN $4 = 0 AND is_auto_disabled = 1 THEN 0 \
             ELSE consecutive_failures END, updated_at = $8 \
             WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id,
            &c.name,
            i64::from(c.is_disabled),
            c.retry_enabled.map(i64::from),
            c.request_headers.as_deref(),
            c.events.as_deref(),
            now,
        )
    }

    async fn delete_webhook(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()> {
        change_one!(
            self,
            "DELETE FROM workspace_webhooks WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id,
        )
    }

    async fn agents_mentioning(
        &self, workspace_id: &WorkspaceId, text: &str,
    ) -> StoreResult<Vec<AgentDocumentRow>> {
        let mut q = Query::in_workspace(
            "SELECT id, document FROM agents WHERE workspace_id = $1",
            workspace_id,
        );
        q.push(" AND document LIKE ? ESCAPE '\\'", Bind::Text(format!("%{}%", escape_like(text))));
        q.raw(" ORDER BY id");
        Ok(fetch_all!(self, q)?)
    }

    async fn all_webhooks(&self, after: &str, limit: u32) -> StoreResult<Vec<WebhookRow>> {
        let sql = format!("{COLUMNS} WHERE id > $1 ORDER BY id LIMIT {limit}");
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after).fetch_all(pool).await
        })?)
    }

    async fn reseal_webhook(&self, id: &str, sealed_secret: &str) -> StoreResult<()> {
        let done = execute!(
            self,
            "UPDATE workspace_webhooks SET sealed_secret = $2 WHERE id = $1",
            id,
            sealed_secret,
        )?;
        crate::db::changed_one(done)
    }
}
