//! API keys: created by the `colloquy keys` CLI (or once at bootstrap), looked up by the hash
//! of the presented token on every request.

use async_trait::async_trait;
use colloquy_core::{ids, keys, time};

use colloquy_core::ids::WorkspaceId;

use crate::db::{execute, run, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_optional};
use crate::{Backend, SqlStore, Store, StoreError, StoreResult, WorkspaceStore};

/// Name of the workspace the bootstrap key is created in.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A key to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Workspace name (created if missing).
    pub workspace: String,
    /// The user's display name.
    pub user_name: String,
    /// The user's email (the user is created if missing).
    pub user_email: String,
    /// A label for the key.
    pub name: String,
    /// Scopes, in their text form (`agents:read,tools:write` or `admin`).
    pub scopes: String,
}

/// A key as listed: everything but the token, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyRecord {
    /// `key_...`, the handle used to revoke it.
    pub id: String,
    /// Name of the key's workspace.
    pub workspace: String,
    /// Email of the key's user.
    pub user_email: String,
    /// The key's label.
    pub name: String,
    /// First characters of the token, to recognise it.
    pub token_hint: String,
    /// Scopes in text form.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

/// What a request authenticated by a key acts as.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuthKey {
    /// The key's id.
    pub key_id: String,
    /// The caller's workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// The caller's user.
    pub user_id: String,
    /// Scopes in text form.
    pub scopes: String,
    /// Set when the key was revoked.
    pub revoked_at: Option<i64>,
}
sqlite_row!(AuthKey { key_id, workspace_id, user_id, scopes, revoked_at });

/// API keys.
#[async_trait]
pub trait KeyStore {
    /// Creates a key for `new` with the given token (its hash is stored, never the token).
    async fn create_key(&self, new: &NewApiKey, token: &str) -> StoreResult<ApiKeyRecord>;

    /// On a database with no keys at all, creates an admin key in the `default` workspace with
    /// `token` and returns `true`; otherwise does nothing and returns `false`. Safe when
    /// several nodes start at once: exactly one creates the key.
    async fn bootstrap_key(&self, token: &str) -> StoreResult<bool>;

    /// Keys ordered by creation, after `(created_at, id)`, optionally of one workspace.
    async fn list_keys(
        &self, workspace: Option<&str>, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<ApiKeyRecord>>;

    /// Marks a key revoked; later requests with it get 401. [`StoreError::NotFound`] if there is
    /// no such key.
    async fn revoke_key(&self, key_id: &str) -> StoreResult<String>;

    /// The key whose token hashes to `token_hash`, revoked or not.
    async fn find_key(&self, token_hash: &str) -> StoreResult<Option<AuthKey>>;
}

const LIST_COLUMNS: &str = "SELECT k.id, w.name AS workspace, u.email AS user_email, k.name, \
     k.token_hint, k.scopes, k.created_at, k.revoked_at \
     FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id JOIN users u ON u.id = k.user_id";

#[async_trait]
impl KeyStore for SqlStore {
    async fn create_key(&self, new: &NewApiKey, token: &str) -> StoreResult<ApiKeyRecord> {
        let ws = self.ensure_workspace(&new.workspace).await?;
        let user = self.ensure_user(&ws.id, &new.user_name, &new.user_email).await?;
        let id = ids::new_id(ids::prefix::API_KEY);
        let record = ApiKeyRecord {
            id: id.clone(),
            workspace: ws.name,
            user_email: user.email,
            name: new.name.clone(),
            token_hint: keys::token_hint(token),
            scopes: new.scopes.clone(),
            created_at: time::now_secs(),
            revoked_at: None,
        };
        execute!(
            self,
            "INSERT INTO api_keys (id, workspace_id, user_id, name, token_hash, token_hint, \
             scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &id,
            ws.id.as_str(),
            &user.id,
            &record.name,
            keys::hash_token(token),
            &record.token_hint,
            &record.scopes,
            record.created_at,
        )?;
        Ok(record)
    }

    async fn bootstrap_key(&self, token: &str) -> StoreResult<bool> {
        let is_postgres = self.backend() == Backend::Postgres;
        let now = time::now_secs();
        transaction!(self, |tx| {
            if is_postgres {
                // Serialises concurrent starts; released at commit. SQLite's BEGIN IMMEDIATE
                // already holds the database's write lock.
                sqlx::query("SELECT pg_advisory_xact_lock(8950001)").execute(&mut *tx).await?;
            }
            let existing: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM api_keys").fetch_one(&mut *tx).await?;
            if existing > 0 {
                return Ok(false);
            }
            let ws_id = ids::new_id(ids::prefix::WORKSPACE);
            sqlx::query(
                "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&ws_id)
            .bind(DEFAULT_WORKSPACE)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let ws_id: String = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = $1")
                .bind(DEFAULT_WORKSPACE)
                .fetch_one(&mut *tx)
                .await?;
            let user_id = ids::new_id(ids::prefix::USER);
            sqlx::query(
                "INSERT INTO users (id, workspace_id, name, email, created_at) \
                 VALUES ($1, $2, 'admin', 'admin@localhost', $3) \
                 ON CONFLICT (workspace_id, email) DO NOTHING",
            )
            .bind(&user_id)
            .bind(&ws_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let user_id: String = sqlx::query_scalar(
                "SELECT id FROM users WHERE workspace_id = $1 AND email = 'admin@localhost'",
            )
            .bind(&ws_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO api_keys (id, workspace_id, user_id, name, token_hash, token_hint, \
                 scopes, created_at) VALUES ($1, $2, $3, 'bootstrap', $4, $5, 'admin', $6)",
            )
            .bind(ids::new_id(ids::prefix::API_KEY))
            .bind(&ws_id)
            .bind(&user_id)
            .bind(keys::hash_token(token))
            .bind(keys::token_hint(token))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(true)
        })
    }

    async fn list_keys(
        &self, workspace: Option<&str>, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<ApiKeyRecord>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, String::new()));
        let sql = format!(
            "{LIST_COLUMNS} WHERE ($1 IS NULL OR w.name = $1) \
             AND (k.created_at > $2 OR (k.created_at = $2 AND k.id > $3)) \
             ORDER BY k.created_at, k.id LIMIT {limit}"
        );
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(workspace)
                .bind(after_at)
                .bind(after_id)
                .fetch_all(pool)
                .await
        })?)
    }

    async fn revoke_key(&self, key_id: &str) -> StoreResult<String> {
        let now = time::now_secs();
        let workspace: Option<String> = run!(self, write, |pool| {
            sqlx::query_scalar(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
                 RETURNING workspace_id",
            )
            .bind(key_id)
            .bind(now)
            .fetch_optional(pool)
            .await
        })?;
        workspace.ok_or(StoreError::NotFound)
    }

    async fn find_key(&self, token_hash: &str) -> StoreResult<Option<AuthKey>> {
        let q = Query::new(
            "SELECT id AS key_id, workspace_id, user_id, scopes, revoked_at \
             FROM api_keys WHERE token_hash = $1",
            vec![Bind::Text(token_hash.to_owned())],
        );
        Ok(fetch_optional!(self, q)?)
    }
}
