//! Environments and environment variables. A variable's values are rows of their own (one per
//! environment), so a list can ask for the variables that have an environment, deleting an
//! environment is one statement, and a conversation reads one label's value in one query.

use async_trait::async_trait;

use colloquy_core::environments::PRODUCTION;
use colloquy_core::ids::WorkspaceId;

use crate::db::{execute, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, escape_like, fetch_all, fetch_optional, find};
use crate::{SqlStore, StoreError, StoreResult};

/// An environment besides `production`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnvironmentRow {
    /// Its name, unique in the workspace.
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was created or one of its values last changed.
    pub updated_at: i64,
}
sqlite_row!(EnvironmentRow { name, created_by, created_at, updated_at });

/// An environment variable, without its values.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnvVarRow {
    /// `envvar_...`
    pub id: String,
    /// Owning workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// Unique in the workspace; what configurations name.
    pub label: String,
    /// `string` or `secret`.
    pub kind: String,
    /// Who created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}
sqlite_row!(EnvVarRow { id, workspace_id, label, kind, created_by, created_at, updated_at });

/// One environment's value of a variable: the text, or the secret id of a `secret` variable.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnvValueRow {
    /// The variable.
    pub variable_id: String,
    /// The environment.
    pub environment: String,
    /// The value.
    pub value: String,
}
sqlite_row!(EnvValueRow { variable_id, environment, value });

/// The value a conversation in some environment reads for a label.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ResolvedEnvVar {
    /// `string` or `secret`.
    pub kind: String,
    /// The text, or the secret id.
    pub value: String,
}
sqlite_row!(ResolvedEnvVar { kind, value });

/// Which variables a list shows, and from where.
#[derive(Debug, Clone, Default)]
pub struct EnvVarFilter {
    /// Exactly this label.
    pub label: Option<String>,
    /// Only variables with a value for this environment.
    pub environment: Option<String>,
    /// Only variables of this kind.
    pub kind: Option<String>,
    /// After this (label, id).
    pub after: Option<(String, String)>,
    /// At most this many.
    pub limit: u32,
}

/// Environments and their variables.
#[async_trait]
pub trait EnvironmentStore {
    /// The workspace's environments besides `production`, by name.
    async fn list_environments(
        &self, workspace_id: &WorkspaceId,
    ) -> StoreResult<Vec<EnvironmentRow>>;

    /// Adds an environment; [`StoreError::Conflict`] when it exists.
    async fn insert_environment(
        &self, workspace_id: &WorkspaceId, environment: &EnvironmentRow,
    ) -> StoreResult<()>;

    /// Deletes an environment and every variable's value for it.
    async fn delete_environment(&self, workspace_id: &WorkspaceId, name: &str) -> StoreResult<()>;

    /// Stores a new variable with its values; [`StoreError::Conflict`] when the label is taken.
    async fn insert_env_var(&self, row: &EnvVarRow, values: &[(String, String)])
    -> StoreResult<()>;

    /// The workspace's variables by label, as `filter` says.
    async fn list_env_vars(
        &self, workspace_id: &WorkspaceId, filter: &EnvVarFilter,
    ) -> StoreResult<Vec<EnvVarRow>>;

    /// One variable of the workspace.
    async fn get_env_var(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<EnvVarRow>;

    /// The values of these variables.
    async fn env_var_values(&self, ids: &[String]) -> StoreResult<Vec<EnvValueRow>>;

    /// Sets (`Some`) or removes (`None`) values of a variable of the workspace.
    async fn update_env_var(
        &self, workspace_id: &WorkspaceId, id: &str, changes: &[(String, Option<String>)], now: i64,
    ) -> StoreResult<()>;

    /// Deletes a variable; [`StoreError::Conflict`] while a tool, an MCP server or the
    /// workspace's settings (the initiation webhook's headers) contain `locator` (its label as
    /// configurations name it). Agents are not checked, as in the reference: a custom LLM that
    /// names a deleted variable fails its conversations with that said.
    async fn delete_env_var(
        &self, workspace_id: &WorkspaceId, id: &str, locator: &str,
    ) -> StoreResult<()>;

    /// The value of the variable `label` in `environment`, else its production value.
    async fn resolve_env_var(
        &self, workspace_id: &WorkspaceId, label: &str, environment: &str,
    ) -> StoreResult<Option<ResolvedEnvVar>>;
}

const VAR_COLUMNS: &str = "SELECT id, workspace_id, label, kind, created_by, created_at, \
     updated_at FROM environment_variables";

/// Moves `updated_at` of the environments among `names` that have a row.
const TOUCH_ENVIRONMENTS: &str =
    "UPDATE environments SET updated_at = $2 WHERE workspace_id = $1 AND name = $3";

#[async_trait]
impl EnvironmentStore for SqlStore {
    async fn list_environments(
        &self, workspace_id: &WorkspaceId,
    ) -> StoreResult<Vec<EnvironmentRow>> {
        let q = Query::in_workspace(
            "SELECT name, created_by, created_at, updated_at FROM environments \
             WHERE workspace_id = $1 ORDER BY name",
            workspace_id,
        );
        Ok(fetch_all!(self, q)?)
    }

    async fn insert_environment(
        &self, workspace_id: &WorkspaceId, e: &EnvironmentRow,
    ) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO environments (workspace_id, name, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
            workspace_id.as_str(),
            &e.name,
            &e.created_by,
            e.created_at,
            e.updated_at,
        )?;
        Ok(())
    }

    async fn delete_environment(&self, workspace_id: &WorkspaceId, name: &str) -> StoreResult<()> {
        transaction!(self, |tx| {
            let done =
                sqlx::query("DELETE FROM environments WHERE workspace_id = $1 AND name = $2")
                    .bind(workspace_id.as_str())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "DELETE FROM environment_variable_values WHERE environment = $2 AND variable_id IN \
                 (SELECT id FROM environment_variables WHERE workspace_id = $1)",
            )
            .bind(workspace_id.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn insert_env_var(&self, v: &EnvVarRow, values: &[(String, String)]) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO environment_variables (id, workspace_id, label, kind, created_by, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&v.id)
            .bind(v.workspace_id.as_str())
            .bind(&v.label)
            .bind(&v.kind)
            .bind(&v.created_by)
            .bind(v.created_at)
            .bind(v.updated_at)
            .execute(&mut *tx)
            .await?;
            for (environment, value) in values {
                sqlx::query(
                    "INSERT INTO environment_variable_values (variable_id, environment, value) \
                     VALUES ($1, $2, $3)",
                )
                .bind(&v.id)
                .bind(environment)
                .bind(value)
                .execute(&mut *tx)
                .await?;
                sqlx::query(TOUCH_ENVIRONMENTS)
                    .bind(v.workspace_id.as_str())
                    .bind(v.updated_at)
                    .bind(environment)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
    }

    async fn list_env_vars(
        &self, workspace_id: &WorkspaceId, f: &EnvVarFilter,
    ) -> StoreResult<Vec<EnvVarRow>> {
        let mut q =
            Query::in_workspace(format!("{VAR_COLUMNS} WHERE workspace_id = $1"), workspace_id);
        if let Some(label) = &f.label {
            q.push(" AND label = ?", Bind::Text(label.clone()));
        }
        if let Some(kind) = &f.kind {
            q.push(" AND kind = ?", Bind::Text(kind.clone()));
        }
        if let Some(env) = &f.environment {
            q.push(
                " AND EXISTS (SELECT 1 FROM environment_variable_values v \
                 WHERE v.variable_id = environment_variables.id AND v.environment = ?)",
                Bind::Text(env.clone()),
            );
        }
        if let Some((label, id)) = &f.after {
            let l = q.param(Bind::Text(label.clone()));
            let i = q.param(Bind::Text(id.clone()));
            q.raw(&format!(" AND (label > {l} OR (label = {l} AND id > {i}))"));
        }
        q.order_and_limit("label, id", f.limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn get_env_var(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<EnvVarRow> {
        find!(self, format!("{VAR_COLUMNS} WHERE workspace_id = $1 AND id = $2"), workspace_id, id)
    }

    async fn env_var_values(&self, ids: &[String]) -> StoreResult<Vec<EnvValueRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Query::new(
            "SELECT variable_id, environment, value FROM environment_variable_values WHERE 1 = 1",
            Vec::new(),
        );
        q.push_in("variable_id", ids);
        q.raw(" ORDER BY variable_id, environment");
        Ok(fetch_all!(self, q)?)
    }

    async fn update_env_var(
        &self, workspace_id: &WorkspaceId, id: &str, changes: &[(String, Option<String>)], now: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            let done = sqlx::query(
                "UPDATE environment_variables SET updated_at = $3 \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            for (environment, value) in changes {
                let statement = match value {
                    Some(_) => {
                        "INSERT INTO environment_variable_values (variable_id, environment, value) \
                         VALUES ($1, $2, $3) ON CONFLICT (variable_id, environment) \
                         DO UPDATE SET value = excluded.value"
                    }
                    // `$3` is production here, whose value is never removed.
                    None => {
                        "DELETE FROM environment_variable_values \
                         WHERE variable_id = $1 AND environment = $2 AND environment <> $3"
                    }
                };
                sqlx::query(statement)
                    .bind(id)
                    .bind(environment)
                    .bind(value.as_deref().unwrap_or(PRODUCTION))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(TOUCH_ENVIRONMENTS)
                    .bind(workspace_id.as_str())
                    .bind(now)
                    .bind(environment)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
    }

    async fn delete_env_var(
        &self, workspace_id: &WorkspaceId, id: &str, locator: &str,
    ) -> StoreResult<()> {
        let pattern = format!("%{}%", escape_like(locator));
        transaction!(self, |tx| {
            let users: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM tools WHERE workspace_id = $1 \
                 AND document LIKE $2 ESCAPE '\\') \
                 + (SELECT COUNT(*) FROM mcp_servers WHERE workspace_id = $1 \
                 AND document LIKE $2 ESCAPE '\\') \
                 + (SELECT COUNT(*) FROM workspace_settings WHERE workspace_id = $1 \
                 AND document LIKE $2 ESCAPE '\\')",
            )
            .bind(workspace_id.as_str())
            .bind(&pattern)
            .fetch_one(&mut *tx)
            .await?;
            if users > 0 {
                return Err(StoreError::Conflict(format!(
                    "{users} tool(s), MCP server(s) or workspace setting(s) use it"
                )));
            }
            sqlx::query("DELETE FROM environment_variable_values WHERE variable_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query(
                "DELETE FROM environment_variables WHERE workspace_id = $1 AND id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    async fn resolve_env_var(
        &self, workspace_id: &WorkspaceId, label: &str, environment: &str,
    ) -> StoreResult<Option<ResolvedEnvVar>> {
        // The environment's own value sorts before production's.
        let q = Query::new(
            "SELECT e.kind, v.value FROM environment_variables e \
             JOIN environment_variable_values v ON v.variable_id = e.id \
             WHERE e.workspace_id = $1 AND e.label = $2 AND v.environment IN ($3, $4) \
             ORDER BY CASE WHEN v.environment = $3 THEN 0 ELSE 1 END LIMIT 1",
            vec![
                Bind::Text(workspace_id.to_string()),
                Bind::Text(label.to_owned()),
                Bind::Text(environment.to_owned()),
                Bind::Text(PRODUCTION.to_owned()),
            ],
        );
        Ok(fetch_optional!(self, q)?)
    }
}
