//! Workspaces and the users in them. A workspace is the unit of isolation: every resource
//! row carries its `workspace_id` and every query filters on it.

use async_trait::async_trait;
use colloquy_core::ids::{self, WorkspaceId};
use colloquy_core::time;

use crate::db::{run, transaction};
use crate::{SqlStore, StoreResult};

/// A workspace.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Workspace {
    /// `ws_...`
    #[sqlx(try_from = "String")]
    pub id: WorkspaceId,
    /// Unique name, as given to `colloquy keys create --workspace`.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A user: the person an API key acts as, recorded as the creator of resources.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// `user_...`
    pub id: String,
    /// Workspace the user belongs to.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// Email, unique within the workspace.
    pub email: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Workspaces and users.
#[async_trait]
pub trait WorkspaceStore {
    /// The workspace called `name`, created if it does not exist.
    async fn ensure_workspace(&self, name: &str) -> StoreResult<Workspace>;

    /// The workspace called `name`.
    async fn get_workspace_by_name(&self, name: &str) -> StoreResult<Option<Workspace>>;

    /// The user with `email` in the workspace, created (with `name`) if missing.
    async fn ensure_user(
        &self, workspace_id: &WorkspaceId, name: &str, email: &str,
    ) -> StoreResult<User>;

    /// A user's name and email.
    async fn user_name_email(&self, user_id: &str) -> StoreResult<(String, String)>;

    /// A workspace's name.
    async fn workspace_name(&self, workspace_id: &WorkspaceId) -> StoreResult<String>;

    /// The workspace's users, by email.
    async fn workspace_users(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<User>>;
}

#[async_trait]
impl WorkspaceStore for SqlStore {
    async fn ensure_workspace(&self, name: &str) -> StoreResult<Workspace> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(WorkspaceId::generate().into_string())
            .bind(name)
            .bind(time::now_secs())
            .execute(&mut *tx)
            .await?;
            let ws: Workspace =
                sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            Ok(ws)
        })
    }

    async fn get_workspace_by_name(&self, name: &str) -> StoreResult<Option<Workspace>> {
        Ok(run!(self, read, |pool| {
            sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })?)
    }

    async fn ensure_user(
        &self, workspace_id: &WorkspaceId, name: &str, email: &str,
    ) -> StoreResult<User> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO users (id, workspace_id, name, email, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id, email) DO NOTHING",
            )
            .bind(ids::new_id(ids::prefix::USER))
            .bind(workspace_id.as_str())
            .bind(name)
            .bind(email)
            .bind(time::now_secs())
            .execute(&mut *tx)
            .await?;
            let user: User = sqlx::query_as(
                "SELECT id, workspace_id, name, email, created_at FROM users \
                 WHERE workspace_id = $1 AND email = $2",
            )
            .bind(workspace_id.as_str())
            .bind(email)
            .fetch_one(&mut *tx)
            .await?;
            Ok(user)
        })
    }

    async fn user_name_email(&self, user_id: &str) -> StoreResult<(String, String)> {
        Ok(run!(self, read, |pool| {
            sqlx::query_as("SELECT name, email FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await
        })?)
    }

    async fn workspace_name(&self, workspace_id: &WorkspaceId) -> StoreResult<String> {
        Ok(run!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT name FROM workspaces WHERE id = $1")
                .bind(workspace_id.as_str())
                .fetch_one(pool)
                .await
        })?)
    }

    async fn workspace_users(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<User>> {
        Ok(run!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, workspace_id, name, email, created_at FROM users \
                 WHERE workspace_id = $1 ORDER BY email",
            )
            .bind(workspace_id.as_str())
            .fetch_all(pool)
            .await
        })?)
    }
}
