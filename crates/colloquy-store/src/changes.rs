//! The change log: one row per create, update or delete of a workspace's resources, with who
//! made it and which JSON paths it wrote. Values are never stored, so a secret's value cannot
//! reach the log.

use async_trait::async_trait;
use colloquy_core::ids::WorkspaceId;

use crate::db::{execute, run};
use crate::{SqlStore, StoreResult};

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChangeRow {
    /// `chg_...`, ordered by time.
    pub id: String,
    /// The workspace whose resource changed.
    pub workspace_id: String,
    /// When, in Unix milliseconds.
    pub at_ms: i64,
    /// The API key the request came with.
    pub actor_key_id: String,
    /// The key's user.
    pub actor_user_id: String,
    /// `agent`, `tool`, `test`, `mcp_server`, `secret`, ...
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// `create`, `update` or `delete`.
    pub operation: String,
    /// The JSON paths the request wrote, as a JSON array of strings.
    pub paths: String,
}

/// Which changes a list shows.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    /// A resource type or a resource id.
    pub resource: Option<String>,
    /// An API key id or a user id.
    pub actor: Option<String>,
    /// Only changes at or after this time (Unix milliseconds).
    pub after_ms: Option<i64>,
}

/// The change log.
#[async_trait]
pub trait ChangeStore {
    /// Records a change.
    async fn record_change(&self, change: &ChangeRow) -> StoreResult<()>;
    /// A workspace's changes, newest first, after the keyset `(at_ms, id)` of the previous
    /// page's last row.
    async fn list_changes(
        &self, workspace_id: &WorkspaceId, filter: &ChangeFilter, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<ChangeRow>>;
}

#[async_trait]
impl ChangeStore for SqlStore {
    async fn record_change(&self, c: &ChangeRow) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO changes (id, workspace_id, at_ms, actor_key_id, actor_user_id, \
             resource_type, resource_id, operation, paths) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            c.id.as_str(),
            c.workspace_id.as_str(),
            c.at_ms,
            c.actor_key_id.as_str(),
            c.actor_user_id.as_str(),
            c.resource_type.as_str(),
            c.resource_id.as_str(),
            c.operation.as_str(),
            c.paths.as_str(),
        )?;
        Ok(())
    }

    async fn list_changes(
        &self, workspace_id: &WorkspaceId, filter: &ChangeFilter, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<ChangeRow>> {
        let (after_ms, after_id) = after.unzip();
        let sql = format!(
            "SELECT id, workspace_id, at_ms, actor_key_id, actor_user_id, resource_type, \
             resource_id, operation, paths FROM changes WHERE workspace_id = $1 \
             AND ($2 IS NULL OR resource_type = $2 OR resource_id = $2) \
             AND ($3 IS NULL OR actor_key_id = $3 OR actor_user_id = $3) \
             AND ($4 IS NULL OR at_ms >= $4) \
             AND ($5 IS NULL OR at_ms < $5 OR (at_ms = $5 AND id < $6)) \
             ORDER BY at_ms DESC, id DESC LIMIT {limit}"
        );
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(workspace_id.as_str())
                .bind(filter.resource.as_deref())
                .bind(filter.actor.as_deref())
                .bind(filter.after_ms)
                .bind(after_ms)
                .bind(after_id.as_deref())
                .fetch_all(pool)
                .await
        })?)
    }
}
