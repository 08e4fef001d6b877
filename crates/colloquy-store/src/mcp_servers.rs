//! MCP servers, which agents use them, and which secrets they refer to.

use async_trait::async_trait;

use crate::agents::SUMMARY_COLUMNS;
use colloquy_core::ids::WorkspaceId;

use crate::db::{MCP_SERVER_SECRETS, exists, set_links, transaction, update_versioned};
use crate::inline::sqlite_row;
use crate::query::{Query, fetch_all, find};
use crate::{AgentSummaryRow, SqlStore, StoreError, StoreResult};

/// An MCP server as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct McpServerRow {
    /// `mcp_...`
    pub id: String,
    /// `config.name`.
    pub name: String,
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
    /// Bumped by every write; updates name the version they read.
    pub version: i64,
    /// The configuration as JSON text.
    pub document: String,
}
sqlite_row!(McpServerRow {
    id,
    name,
    created_by,
    creator_name,
    creator_email,
    created_at,
    updated_at,
    version,
    document,
});

/// What a create or update writes.
#[derive(Debug, Clone)]
pub struct McpServerContent {
    /// `config.name`.
    pub name: String,
    /// Configuration text.
    pub document: String,
    /// Secrets the configuration refers to.
    pub secret_ids: Vec<String>,
}

/// MCP servers.
#[async_trait]
pub trait McpServerStore {
    /// Stores a new server.
    async fn insert_mcp_server(
        &self, workspace_id: &WorkspaceId, id: &str, created_by: &str, now: i64,
        content: &McpServerContent,
    ) -> StoreResult<()>;
    /// One server of the workspace.
    async fn get_mcp_server(
        &self, workspace_id: &WorkspaceId, id: &str,
    ) -> StoreResult<McpServerRow>;
    /// The workspace's servers among `ids`.
    async fn get_mcp_servers(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<McpServerRow>>;
    /// Every server of the workspace, newest first.
    async fn list_mcp_servers(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<McpServerRow>>;
    /// Replaces a server's content if it is still at `expected_version`
    /// ([`StoreError::Conflict`] otherwise).
    async fn update_mcp_server(
        &self, workspace_id: &WorkspaceId, id: &str, content: &McpServerContent, now: i64,
        expected_version: i64,
    ) -> StoreResult<()>;
    /// Deletes a server; [`StoreError::Conflict`] while an agent or a tool uses it.
    async fn delete_mcp_server(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()>;
    /// Agents using a server, by creation time then id.
    async fn mcp_server_dependents(
        &self, workspace_id: &WorkspaceId, id: &str,
    ) -> StoreResult<Vec<AgentSummaryRow>>;
}

const SELECT: &str = "SELECT m.id, m.name, m.created_by, u.name AS creator_name, \
     u.email AS creator_email, m.created_at, m.updated_at, m.version, m.document \
     FROM mcp_servers m JOIN users u ON u.id = m.created_by";

#[async_trait]
impl McpServerStore for SqlStore {
    async fn insert_mcp_server(
        &self, workspace_id: &WorkspaceId, id: &str, created_by: &str, now: i64,
        c: &McpServerContent,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO mcp_servers (id, workspace_id, name, created_by, created_at, \
                 updated_at, version, document) VALUES ($1, $2, $3, $4, $5, $5, 1, $6)",
            )
            .bind(id)
            .bind(workspace_id.as_str())
            .bind(&c.name)
            .bind(created_by)
            .bind(now)
            .bind(&c.document)
            .execute(&mut *tx)
            .await?;
            set_links!(tx, new, MCP_SERVER_SECRETS, id, &c.secret_ids);
            Ok(())
        })
    }

    async fn get_mcp_server(
        &self, workspace_id: &WorkspaceId, id: &str,
    ) -> StoreResult<McpServerRow> {
        find!(self, format!("{SELECT} WHERE m.workspace_id = $1 AND m.id = $2"), workspace_id, id)
    }

    async fn get_mcp_servers(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<McpServerRow>> {
        let Some(q) =
            Query::among(format!("{SELECT} WHERE m.workspace_id = $1"), workspace_id, "m.id", ids)
        else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }

    async fn list_mcp_servers(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<McpServerRow>> {
        let sql =
            format!("{SELECT} WHERE m.workspace_id = $1 ORDER BY m.created_at DESC, m.id DESC");
        Ok(fetch_all!(self, Query::in_workspace(sql, workspace_id))?)
    }

    async fn update_mcp_server(
        &self, workspace_id: &WorkspaceId, id: &str, c: &McpServerContent, now: i64,
        expected_version: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            update_versioned!(
                tx,
                "mcp_servers",
                "UPDATE mcp_servers SET name = $3, document = $4, updated_at = $5, \
                 version = version + 1 WHERE workspace_id = $1 AND id = $2 AND version = $6",
                workspace_id.as_str(),
                id,
                [&c.name, &c.document, now, expected_version],
                "the MCP server changed meanwhile"
            );
            set_links!(tx, replace, MCP_SERVER_SECRETS, id, &c.secret_ids);
            Ok(())
        })
    }

    async fn delete_mcp_server(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()> {
        transaction!(self, |tx| {
            if !exists!(tx, "mcp_servers", workspace_id.as_str(), id) {
                return Err(StoreError::NotFound);
            }
            let (agents, tools): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM agent_mcp_servers WHERE mcp_server_id = $1), \
                 (SELECT COUNT(*) FROM tools WHERE mcp_server_id = $1)",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if agents > 0 || tools > 0 {
                return Err(StoreError::Conflict(format!(
                    "the MCP server is used by {agents} agent(s) and {tools} tool(s)"
                )));
            }
            sqlx::query("DELETE FROM mcp_servers WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn mcp_server_dependents(
        &self, workspace_id: &WorkspaceId, id: &str,
    ) -> StoreResult<Vec<AgentSummaryRow>> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM agent_mcp_servers x JOIN agents a ON a.id = x.agent_id \
             JOIN users u ON u.id = a.created_by \
             WHERE a.workspace_id = $1 AND x.mcp_server_id = $2 ORDER BY a.created_at, a.id"
        );
        Ok(fetch_all!(self, Query::scoped(sql, workspace_id, id))?)
    }
}
