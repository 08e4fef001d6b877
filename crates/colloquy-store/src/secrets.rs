//! Workspace secrets. The store only ever sees sealed values; sealing and opening happen
//! above it, with the server's secret key.

use async_trait::async_trait;

use colloquy_core::ids::WorkspaceId;

use crate::db::{change_one, changed_one, delete_unused, execute, run, transaction};
use crate::inline::sqlite_row;
use crate::query::find;
use crate::{SqlStore, StoreResult};

/// A stored secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretRecord {
    /// `secret_...`
    pub id: String,
    /// Owning workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// The value sealed with the server's secret key.
    pub sealed_value: String,
    /// User who created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}
sqlite_row!(SecretRecord {
    id,
    workspace_id,
    name,
    sealed_value,
    created_by,
    created_at,
    updated_at,
});

/// Workspace secrets.
#[async_trait]
pub trait SecretStore {
    /// Stores a new secret.
    async fn insert_secret(&self, secret: &SecretRecord) -> StoreResult<()>;

    /// Secrets of a workspace by name then id, after `(name, id)`; `name_prefix` (lower case)
    /// keeps those whose lower-cased name starts with it.
    async fn list_secrets(
        &self, workspace_id: &WorkspaceId, name_prefix: Option<&str>,
        after: Option<(String, String)>, limit: Option<u32>,
    ) -> StoreResult<Vec<SecretRecord>>;

    /// One secret of the workspace.
    async fn get_secret(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<SecretRecord>;

    /// Replaces a secret's name and value.
    async fn update_secret(
        &self, workspace_id: &WorkspaceId, id: &str, name: &str, sealed_value: &str,
        updated_at: i64,
    ) -> StoreResult<()>;

    /// Deletes a secret; [`StoreError::Conflict`] while a tool refers to it.
    async fn delete_secret(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()>;

    /// Every secret of every workspace, by id after `after` (for re-sealing under a new key).
    async fn all_secrets(&self, after: &str, limit: u32) -> StoreResult<Vec<SecretRecord>>;

    /// Replaces the sealed value of a secret, keeping everything else.
    async fn reseal_secret(&self, id: &str, sealed_value: &str) -> StoreResult<()>;
}

const COLUMNS: &str =
    "SELECT id, workspace_id, name, sealed_value, created_by, created_at, updated_at FROM secrets";

#[async_trait]
impl SecretStore for SqlStore {
    async fn insert_secret(&self, s: &SecretRecord) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO secrets (id, workspace_id, name, sealed_value, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &s.id,
            s.workspace_id.as_str(),
            &s.name,
            &s.sealed_value,
            &s.created_by,
            s.created_at,
            s.updated_at,
        )?;
        Ok(())
    }

    async fn list_secrets(
        &self, workspace_id: &WorkspaceId, name_prefix: Option<&str>,
        after: Option<(String, String)>, limit: Option<u32>,
    ) -> StoreResult<Vec<SecretRecord>> {
        let (after_name, after_id) = after.unzip();
        let sql = format!(
            "{COLUMNS} WHERE workspace_id = $1 \
             AND ($2 IS NULL OR lower(substr(name, 1, length($2))) = $2) \
             AND ($3 IS NULL OR name > $3 OR (name = $3 AND id > $4)) \
             ORDER BY name, id LIMIT {}",
            limit.map_or(i64::MAX, i64::from)
        );
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(workspace_id.as_str())
                .bind(name_prefix)
                .bind(after_name)
                .bind(after_id)
                .fetch_all(pool)
                .await
        })?)
    }

    async fn get_secret(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<SecretRecord> {
        find!(self, format!("{COLUMNS} WHERE workspace_id = $1 AND id = $2"), workspace_id, id)
    }

    async fn update_secret(
        &self, workspace_id: &WorkspaceId, id: &str, name: &str, sealed_value: &str,
        updated_at: i64,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "UPDATE secrets SET name = $3, sealed_value = $4, updated_at = $5 \
             WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id,
            name,
            sealed_value,
            updated_at,
        )
    }

    async fn delete_secret(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()> {
        transaction!(self, |tx| {
            delete_unused!(
                tx,
                "secrets",
                "SELECT (SELECT COUNT(*) FROM tool_secrets WHERE secret_id = $1) \
                 + (SELECT COUNT(*) FROM mcp_server_secrets WHERE secret_id = $1) \
                 + (SELECT COUNT(*) FROM environment_variable_values v \
                 JOIN environment_variables e ON e.id = v.variable_id \
                 WHERE e.kind = 'secret' AND v.value = $1)",
                workspace_id.as_str(),
                id,
                |users| format!(
                    "the secret is used by {users} tool(s), MCP server(s) or environment variable value(s)"
                )
            );
            Ok(())
        })
    }

    async fn all_secrets(&self, after: &str, limit: u32) -> StoreResult<Vec<SecretRecord>> {
        let sql = format!("{COLUMNS} WHERE id > $1 ORDER BY id LIMIT {limit}");
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after).fetch_all(pool).await
        })?)
    }

    async fn reseal_secret(&self, id: &str, sealed_value: &str) -> StoreResult<()> {
        let done = execute!(
            self,
            "UPDATE secrets SET sealed_value = $2 WHERE id = $1",
            id,
            sealed_value,
        )?;
        changed_one(done)
    }
}
