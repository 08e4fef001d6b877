//! Tools, which agents use them, and which secrets they refer to.

use async_trait::async_trait;

use crate::agents::SUMMARY_COLUMNS;
use colloquy_core::ids::{AgentId, ToolId, WorkspaceId};
use colloquy_core::tools::{ToolKind, ToolSort};

use crate::db::{TOOL_SECRETS, changed_one, delete_unused, run, set_links, transaction};
use crate::inline::sqlite_row;
use crate::page::{Page, SortValue};
use crate::query::{Bind, Query, bound, fetch_all, find};
use crate::{AgentSummaryRow, SqlStore, StoreResult};

/// A tool as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ToolRow {
    /// `tool_...`
    #[sqlx(try_from = "String")]
    pub id: ToolId,
    /// `tool_config.name`.
    pub name: String,
    /// `tool_config.type`.
    #[sqlx(try_from = "String")]
    pub tool_type: ToolKind,
    /// Creating user.
    pub created_by: String,
    /// Creating user's name.
    pub creator_name: String,
    /// Creating user's email.
    pub creator_email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// `{tool_config, response_mocks}` as JSON text.
    pub document: String,
}
sqlite_row!(ToolRow {
    id,
    name,
    tool_type,
    created_by,
    creator_name,
    creator_email,
    created_at,
    updated_at,
    document,
});

/// What a create or update writes.
#[derive(Debug, Clone)]
pub struct ToolContent {
    /// `tool_config.name`.
    pub name: String,
    /// Lower-cased name, for search.
    pub name_lower: String,
    /// `tool_config.type`.
    pub tool_type: ToolKind,
    /// Document text.
    pub document: String,
    /// Secrets the tool refers to.
    pub secret_ids: Vec<String>,
    /// The MCP server a `type: "mcp"` tool calls.
    pub mcp_server_id: Option<String>,
}

/// A new tool.
#[derive(Debug, Clone)]
pub struct NewTool {
    /// `tool_...`
    pub id: ToolId,
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// Creating user.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Columns and document.
    pub content: ToolContent,
}

/// A tool or MCP server that refers to a secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecretDependent {
    /// The secret.
    pub secret_id: String,
    /// `tool` or `mcp_server`.
    pub kind: String,
    /// The tool or server.
    pub tool_id: String,
    /// Its name.
    pub name: String,
    /// Its creation time.
    pub created_at: i64,
}

/// Filters of the tools list.
#[derive(Debug, Clone, Default)]
pub struct ToolFilter {
    /// Lower-cased name prefix.
    pub name_prefix: Option<String>,
    /// Any of these types.
    pub types: Vec<ToolKind>,
    /// Only tools created by this user.
    pub created_by: Option<String>,
    /// Only tools this agent uses.
    pub used_by_agent: Option<AgentId>,
}

/// One page of tools.
pub type ToolPage = Page<ToolSort>;

/// Calls recorded for a tool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolUsage {
    /// Number of calls.
    pub total_calls: i64,
    /// Mean latency in seconds (0 without calls).
    pub avg_latency_secs: f64,
}

/// Tools.
#[async_trait]
pub trait ToolStore {
    /// Stores a new tool.
    async fn insert_tool(&self, tool: &NewTool) -> StoreResult<()>;
    /// One tool of the workspace.
    async fn get_tool(&self, workspace_id: &WorkspaceId, id: &ToolId) -> StoreResult<ToolRow>;
    /// The workspace's tools among `ids`.
    async fn get_tools(
        &self, workspace_id: &WorkspaceId, ids: &[ToolId],
    ) -> StoreResult<Vec<ToolRow>>;
    /// A page of the workspace's tools.
    async fn list_tools(
        &self, workspace_id: &WorkspaceId, filter: &ToolFilter, page: &ToolPage,
    ) -> StoreResult<Vec<ToolRow>>;
    /// Replaces a tool's content.
    async fn update_tool(
        &self, workspace_id: &WorkspaceId, id: &ToolId, content: &ToolContent, now: i64,
    ) -> StoreResult<()>;
    /// Deletes a tool; [`StoreError::Conflict`] while an agent uses it.
    async fn delete_tool(&self, workspace_id: &WorkspaceId, id: &ToolId) -> StoreResult<()>;
    /// Agents using a tool, by creation time then id, after `(created_at, id)`.
    async fn tool_dependents(
        &self, workspace_id: &WorkspaceId, tool_id: &ToolId, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<AgentSummaryRow>>;
    /// Tools referring to any of `secret_ids`, by creation time then id.
    async fn secret_dependents(
        &self, workspace_id: &WorkspaceId, secret_ids: &[String],
    ) -> StoreResult<Vec<SecretDependent>>;
    /// Calls and mean latency of each of `tool_ids` that has been called, from the audit log.
    async fn tool_usage(
        &self, workspace_id: &WorkspaceId, tool_ids: &[ToolId],
    ) -> StoreResult<Vec<(ToolId, ToolUsage)>>;
}

const SELECT: &str = "SELECT t.id, t.name, t.tool_type, t.created_by, u.name AS creator_name, \
     u.email AS creator_email, t.created_at, t.updated_at, t.document \
     FROM tools t JOIN users u ON u.id = t.created_by";

#[async_trait]
impl ToolStore for SqlStore {
    async fn insert_tool(&self, tool: &NewTool) -> StoreResult<()> {
        let c = &tool.content;
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO tools (id, workspace_id, name, name_lower, tool_type, created_by, \
                 created_at, updated_at, document, mcp_server_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)",
            )
            .bind(tool.id.as_str())
            .bind(tool.workspace_id.as_str())
            .bind(&c.name)
            .bind(&c.name_lower)
            .bind(c.tool_type.as_str())
            .bind(&tool.created_by)
            .bind(tool.created_at)
            .bind(&c.document)
            .bind(&c.mcp_server_id)
            .execute(&mut *tx)
            .await?;
            set_links!(tx, new, TOOL_SECRETS, tool.id.as_str(), &c.secret_ids);
            Ok(())
        })
    }

    async fn get_tool(&self, workspace_id: &WorkspaceId, id: &ToolId) -> StoreResult<ToolRow> {
        find!(
            self,
            format!("{SELECT} WHERE t.workspace_id = $1 AND t.id = $2"),
            workspace_id,
            id.as_str()
        )
    }

    async fn get_tools(
        &self, workspace_id: &WorkspaceId, ids: &[ToolId],
    ) -> StoreResult<Vec<ToolRow>> {
        let Some(q) =
            Query::among(format!("{SELECT} WHERE t.workspace_id = $1"), workspace_id, "t.id", ids)
        else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }

    async fn list_tools(
        &self, workspace_id: &WorkspaceId, filter: &ToolFilter, page: &ToolPage,
    ) -> StoreResult<Vec<ToolRow>> {
        let mut q =
            Query::in_workspace(format!("{SELECT} WHERE t.workspace_id = $1"), workspace_id);
        if let Some(prefix) = &filter.name_prefix {
            let p = q.param(Bind::Text(prefix.clone()));
            q.raw(&format!(" AND substr(t.name_lower, 1, length({p})) = {p}"));
        }
        if !filter.types.is_empty() {
            let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
            q.push_in("t.tool_type", &types);
        }
        if let Some(user) = &filter.created_by {
            q.push(" AND t.created_by = ?", Bind::Text(user.clone()));
        }
        if let Some(agent) = &filter.used_by_agent {
            q.push(
                " AND EXISTS (SELECT 1 FROM agent_tools x WHERE x.tool_id = t.id AND x.agent_id = ?)",
                Bind::Text(agent.to_string()),
            );
        }
        let column = match page.sort {
            ToolSort::CreatedAt => "t.created_at",
            ToolSort::Name => "t.name",
        };
        q.page(column, "t.id", page);
        Ok(fetch_all!(self, q)?)
    }

    async fn update_tool(
        &self, workspace_id: &WorkspaceId, id: &ToolId, c: &ToolContent, now: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            let done = sqlx::query(
                "UPDATE tools SET name = $3, name_lower = $4, tool_type = $5, document = $6, updated_at = $7, \
                 mcp_server_id = $8 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id.as_str())
            .bind(&c.name)
            .bind(&c.name_lower)
            .bind(c.tool_type.as_str())
            .bind(&c.document)
            .bind(now)
            .bind(&c.mcp_server_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            changed_one(done)?;
            set_links!(tx, replace, TOOL_SECRETS, id.as_str(), &c.secret_ids);
            Ok(())
        })
    }

    async fn delete_tool(&self, workspace_id: &WorkspaceId, id: &ToolId) -> StoreResult<()> {
        transaction!(self, |tx| {
            delete_unused!(
                tx,
                "tools",
                "SELECT COUNT(*) FROM agent_tools WHERE tool_id = $1",
                workspace_id.as_str(),
                id.as_str(),
                |users| format!("the tool is used by {users} agent(s)")
            );
            Ok(())
        })
    }

    async fn tool_dependents(
        &self, workspace_id: &WorkspaceId, tool_id: &ToolId, after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<AgentSummaryRow>> {
        let mut q = Query::scoped(
            format!(
                "SELECT {SUMMARY_COLUMNS} FROM agent_tools x JOIN agents a ON a.id = x.agent_id \
                 JOIN users u ON u.id = a.created_by WHERE a.workspace_id = $1 AND x.tool_id = $2"
            ),
            workspace_id,
            tool_id.as_str(),
        );
        let after = after.map(|(at, id)| (SortValue::Int(at), id));
        q.page("a.created_at", "a.id", &Page { sort: (), descending: false, after, limit });
        Ok(fetch_all!(self, q)?)
    }

    async fn secret_dependents(
        &self, workspace_id: &WorkspaceId, secret_ids: &[String],
    ) -> StoreResult<Vec<SecretDependent>> {
        if secret_ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> =
            (0..secret_ids.len()).map(|i| format!("${}", i + 2)).collect();
        let list = placeholders.join(", ");
        let sql = format!(
            "SELECT s.secret_id, 'tool' AS kind, t.id AS tool_id, t.name, t.created_at FROM tool_secrets s \
             JOIN tools t ON t.id = s.tool_id WHERE t.workspace_id = $1 AND s.secret_id IN ({list}) \
             UNION ALL \
             SELECT s.secret_id, 'mcp_server' AS kind, m.id AS tool_id, m.name, m.created_at FROM mcp_server_secrets s \
             JOIN mcp_servers m ON m.id = s.mcp_server_id WHERE m.workspace_id = $1 AND s.secret_id IN ({list}) \
             ORDER BY created_at, tool_id"
        );
        Ok(run!(self, read, |pool| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(workspace_id.as_str());
            for id in secret_ids {
                q = q.bind(id.as_str());
            }
            q.fetch_all(pool).await
        })?)
    }

    async fn tool_usage(
        &self, workspace_id: &WorkspaceId, tool_ids: &[ToolId],
    ) -> StoreResult<Vec<(ToolId, ToolUsage)>> {
        let Some(q) = Query::among(
            "SELECT tool_id, total_calls, total_latency_us FROM tool_stats WHERE workspace_id = $1",
            workspace_id,
            "tool_id",
            tool_ids,
        ) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, i64, i64)> = run!(self, read, |pool| {
            bound!(sqlx::query_as(sqlx::AssertSqlSafe(q.sql.clone())), q).fetch_all(pool).await
        })?;
        Ok(rows
            .into_iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(id, n, total)| {
                let usage = ToolUsage {
                    total_calls: n,
                    avg_latency_secs: total as f64 / n as f64 / 1_000_000.0,
                };
                (ToolId::from(id), usage)
            })
            .collect())
    }
}
