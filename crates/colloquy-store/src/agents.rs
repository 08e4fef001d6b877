//! Agents: the stored document and its indexed columns, with the keyset-paged list.

use std::sync::LazyLock;

use async_trait::async_trait;

use colloquy_core::agents::AgentSort;
use colloquy_core::ids::{AgentId, DocumentId, ToolId, WorkspaceId};

use crate::agent_versions::{ALL_TRAFFIC_PPM, Commit, OtherParents, insert_version};
use crate::db::{change_one, execute, run, transaction};
use crate::inline::{SqliteRow, concat_columns, sqlite_row, text};
use crate::page::Page;
use crate::query::{Bind, Query, bound, escape_like, fetch_all, find};
use crate::{SqlStore, StoreError, StoreResult};

/// An agent as read for a GET: its summary, and the branch, version and document.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentRow {
    /// What a list shows of it.
    #[sqlx(flatten)]
    pub summary: AgentSummaryRow,
    /// `agtbrch_...`
    pub main_branch_id: String,
    /// `agtvrsn_...` of the current version.
    pub version_id: String,
    /// The stored document (JSON object text).
    pub document: String,
}

impl SqliteRow for AgentRow {
    const COLUMNS: &'static [&'static str] = &concat_columns::<15>(
        AgentSummaryRow::COLUMNS,
        &["main_branch_id", "version_id", "document"],
    );

    fn from_row(row: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self> {
        let (head, tail) = at.split_at(AgentSummaryRow::COLUMNS.len().min(at.len()));
        let mut tail = tail.iter().copied();
        let mut next = || tail.next().unwrap_or(usize::MAX);
        Ok(AgentRow {
            summary: AgentSummaryRow::from_row(row, head)?,
            main_branch_id: row.get(next())?,
            version_id: row.get(next())?,
            document: row.get(next())?,
        })
    }
}

/// An agent as lists show it: the columns of `AgentSummaryResponseModel` and the sort keys.
/// A page reads thirty of these on every request and each text column read is an allocation,
/// so the document, branch and version a GET needs are not read at all.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentSummaryRow {
    /// `agent_...`
    #[sqlx(try_from = "String")]
    pub id: AgentId,
    /// Name.
    pub name: String,
    /// Tags as a JSON array.
    pub tags: String,
    /// Whether archived.
    pub archived: bool,
    /// `conversation_config.tts.voice_id`.
    pub voice_id: String,
    /// Creating user's id.
    pub created_by: String,
    /// Creating user's name.
    pub creator_name: String,
    /// Creating user's email.
    pub creator_email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Unix seconds of the latest conversation, if any.
    pub last_call_time: Option<i64>,
    /// Conversations in the last 7 days.
    pub call_count_7d: i64,
}
sqlite_row!(AgentSummaryRow {
    id,
    name,
    tags,
    archived,
    voice_id,
    created_by,
    creator_name,
    creator_email,
    created_at,
    updated_at,
    last_call_time,
    call_count_7d,
});

/// An [`AgentSummaryRow`] borrowed from wherever it was read: on SQLite, from the statement's
/// own buffers while a page is read, so a page of thirty costs no allocation per column (seven
/// strings a row were a sixth of a list request's CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentSummary<'a> {
    /// `agent_...`
    pub id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Tags as a JSON array.
    pub tags: &'a str,
    /// Whether archived.
    pub archived: bool,
    /// `conversation_config.tts.voice_id`.
    pub voice_id: &'a str,
    /// Creating user's id.
    pub created_by: &'a str,
    /// Creating user's name.
    pub creator_name: &'a str,
    /// Creating user's email.
    pub creator_email: &'a str,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Unix seconds of the latest conversation, if any.
    pub last_call_time: Option<i64>,
    /// Conversations in the last 7 days.
    pub call_count_7d: i64,
}

impl AgentSummaryRow {
    /// The row, borrowed.
    pub fn as_summary(&self) -> AgentSummary<'_> {
        AgentSummary {
            id: self.id.as_str(),
            name: &self.name,
            tags: &self.tags,
            archived: self.archived,
            voice_id: &self.voice_id,
            created_by: &self.created_by,
            creator_name: &self.creator_name,
            creator_email: &self.creator_email,
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_call_time: self.last_call_time,
            call_count_7d: self.call_count_7d,
        }
    }
}

impl<'r> AgentSummary<'r> {
    /// Reads a row of [`SUMMARY_COLUMNS`]; `at` as [`SqliteRow::from_row`] takes it.
    fn from_sqlite(row: &'r rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self> {
        Ok(AgentSummary {
            id: text(row, at[0])?,
            name: text(row, at[1])?,
            tags: text(row, at[2])?,
            archived: row.get(at[3])?,
            voice_id: text(row, at[4])?,
            created_by: text(row, at[5])?,
            creator_name: text(row, at[6])?,
            creator_email: text(row, at[7])?,
            created_at: row.get(at[8])?,
            updated_at: row.get(at[9])?,
            last_call_time: row.get(at[10])?,
            call_count_7d: row.get(at[11])?,
        })
    }
}

/// Receives a page of agents one row at a time, while the row is borrowed (see
/// [`AgentSummary`]), so a caller can write each out before the next is read.
pub trait SummarySink: Send {
    /// The next row of the page.
    fn row(&mut self, row: &AgentSummary<'_>);
    /// The rows given so far do not count: the read starts over (it moved from the calling
    /// thread to the pool, see [`crate::inline`]) and every row of the page comes again.
    fn restart(&mut self);
}

/// Collects the page, owned.
impl SummarySink for Vec<AgentSummaryRow> {
    fn row(&mut self, row: &AgentSummary<'_>) {
        self.push(AgentSummaryRow {
            id: row.id.into(),
            name: row.name.to_owned(),
            tags: row.tags.to_owned(),
            archived: row.archived,
            voice_id: row.voice_id.to_owned(),
            created_by: row.created_by.to_owned(),
            creator_name: row.creator_name.to_owned(),
            creator_email: row.creator_email.to_owned(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            last_call_time: row.last_call_time,
            call_count_7d: row.call_count_7d,
        });
    }

    fn restart(&mut self) {
        self.clear();
    }
}

/// The name of every agent's first branch.
pub const MAIN_BRANCH_NAME: &str = "Main";

/// A new agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// `agent_...`
    pub id: AgentId,
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// Creating user.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// `agtbrch_...`
    pub main_branch_id: String,
    /// The columns and document.
    pub content: AgentContent,
}

/// What a create or update writes.
#[derive(Debug, Clone)]
pub struct AgentContent {
    /// Name.
    pub name: String,
    /// Lower-cased name, for search.
    pub name_lower: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Whether archived.
    pub archived: bool,
    /// Voice id.
    pub voice_id: String,
    /// `agtvrsn_...` of this version.
    pub version_id: String,
    /// Document text.
    pub document: String,
    /// Tools the agent uses (`conversation_config.agent.prompt.tool_ids`).
    pub tool_ids: Vec<ToolId>,
    /// MCP servers the agent uses (`prompt.mcp_server_ids` and `native_mcp_server_ids`).
    pub mcp_server_ids: Vec<String>,
    /// Knowledge-base documents and folders the agent names (`prompt.knowledge_base`).
    pub document_ids: Vec<DocumentId>,
}

/// The column an agents page sorts on.
fn sort_column(sort: AgentSort) -> &'static str {
    match sort {
        AgentSort::Name => "a.name",
        AgentSort::CreatedAt => "a.created_at",
        AgentSort::UpdatedAt => "a.updated_at",
        AgentSort::CallCount7d => "a.call_count_7d",
    }
}

/// Filters of the agents list.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    /// Lower-cased substring of the name.
    pub search: Option<String>,
    /// Archived or not.
    pub archived: bool,
    /// Only agents created by this user.
    pub created_by: Option<String>,
    /// Any of these tags.
    pub tags: Vec<String>,
}

/// One page of agents.
pub type AgentPage = Page<AgentSort>;

/// Agents.
#[async_trait]
pub trait AgentStore {
    /// Stores a new agent.
    async fn insert_agent(&self, agent: &NewAgent) -> StoreResult<()>;
    /// One agent of the workspace, with its document.
    async fn get_agent(&self, workspace_id: &WorkspaceId, id: &AgentId) -> StoreResult<AgentRow>;
    /// Agents of the workspace among `ids`.
    async fn get_agents(
        &self, workspace_id: &WorkspaceId, ids: &[AgentId],
    ) -> StoreResult<Vec<AgentSummaryRow>>;
    /// A page of the workspace's agents, given to `sink` row by row.
    async fn list_agents(
        &self, workspace_id: &WorkspaceId, filter: &AgentFilter, page: &AgentPage,
        sink: &mut dyn SummarySink,
    ) -> StoreResult<()>;
    /// Deletes an agent.
    async fn delete_agent(&self, workspace_id: &WorkspaceId, id: &AgentId) -> StoreResult<()>;
    /// The agent's share-link token, set to `candidate` the first time it is asked for.
    async fn agent_link_token(
        &self, workspace_id: &WorkspaceId, id: &AgentId, candidate: &str,
    ) -> StoreResult<String>;
}

/// The columns of an [`AgentSummaryRow`], over `agents a JOIN users u ON u.id = a.created_by`.
pub(crate) const SUMMARY_COLUMNS: &str = "a.id, a.name, a.tags, a.archived, a.voice_id, \
     a.created_by, u.name AS creator_name, u.email AS creator_email, a.created_at, a.updated_at, \
     a.last_call_time, a.call_count_7d";

pub(crate) fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

/// An agent's tags, tools and MCP servers, as its content lists them.
macro_rules! set_agent_links {
    ($tx:ident, $mode:ident, $agent_id:expr, $content:expr) => {
        $crate::db::set_links!($tx, $mode, $crate::db::AGENT_TAGS, $agent_id, &$content.tags);
        $crate::db::set_links!($tx, $mode, $crate::db::AGENT_TOOLS, $agent_id, &$content.tool_ids);
        $crate::db::set_links!(
            $tx,
            $mode,
            $crate::db::AGENT_MCP_SERVERS,
            $agent_id,
            &$content.mcp_server_ids
        );
        $crate::db::set_links!(
            $tx,
            $mode,
            $crate::db::AGENT_DOCUMENTS,
            $agent_id,
            &$content.document_ids
        );
    };
}
pub(crate) use set_agent_links;

#[async_trait]
impl AgentStore for SqlStore {
    async fn insert_agent(&self, agent: &NewAgent) -> StoreResult<()> {
        let c = &agent.content;
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO agents (id, workspace_id, name, name_lower, tags, archived, voice_id, \
                 created_by, created_at, updated_at, main_branch_id, version_id, document) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12)",
            )
            .bind(agent.id.as_str())
            .bind(agent.workspace_id.as_str())
            .bind(&c.name)
            .bind(&c.name_lower)
            .bind(tags_json(&c.tags))
            .bind(c.archived)
            .bind(&c.voice_id)
            .bind(&agent.created_by)
            .bind(agent.created_at)
            .bind(&agent.main_branch_id)
            .bind(&c.version_id)
            .bind(&c.document)
            .execute(&mut *tx)
            .await?;
            set_agent_links!(tx, new, agent.id.as_str(), c);
            sqlx::query(
                "INSERT INTO agent_branches (id, workspace_id, agent_id, name, description, \
                 created_by, created_at, last_committed_at, head_version_id, traffic_ppm) \
                 VALUES ($1, $2, $3, $4, '', $5, $6, $6, $7, $8)",
            )
            .bind(&agent.main_branch_id)
            .bind(agent.workspace_id.as_str())
            .bind(agent.id.as_str())
            .bind(MAIN_BRANCH_NAME)
            .bind(&agent.created_by)
            .bind(agent.created_at)
            .bind(&c.version_id)
            .bind(ALL_TRAFFIC_PPM)
            .execute(&mut *tx)
            .await?;
            let first = Commit {
                branch_id: &agent.main_branch_id,
                expected_head: "",
                content: c,
                author: &agent.created_by,
                description: "",
                parents: OtherParents::default(),
                publish: None,
                now: agent.created_at,
            };
            insert_version!(tx, agent.workspace_id.as_str(), agent.id.as_str(), &first);
            Ok(())
        })
    }

    async fn get_agent(&self, workspace_id: &WorkspaceId, id: &AgentId) -> StoreResult<AgentRow> {
        // Formatted once: formatting it for every read was 1.8 % of a GET's CPU under load.
        static GET_AGENT: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {SUMMARY_COLUMNS}, a.main_branch_id, a.version_id, a.document \
                 FROM agents a JOIN users u ON u.id = a.created_by \
                 WHERE a.workspace_id = $1 AND a.id = $2"
            )
        });
        find!(self, GET_AGENT.as_str(), workspace_id, id.as_str())
    }

    async fn get_agents(
        &self, workspace_id: &WorkspaceId, ids: &[AgentId],
    ) -> StoreResult<Vec<AgentSummaryRow>> {
        let Some(q) = Query::among(
            format!(
                "SELECT {SUMMARY_COLUMNS} FROM agents a JOIN users u ON u.id = a.created_by \
                 WHERE a.workspace_id = $1"
            ),
            workspace_id,
            "a.id",
            ids,
        ) else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }

    async fn list_agents(
        &self, workspace_id: &WorkspaceId, filter: &AgentFilter, page: &AgentPage,
        sink: &mut dyn SummarySink,
    ) -> StoreResult<()> {
        let mut q = Query::new(
            format!(
                "SELECT {SUMMARY_COLUMNS} FROM agents a JOIN users u ON u.id = a.created_by \
                 WHERE a.workspace_id = $1 AND a.archived = $2"
            ),
            vec![Bind::Text(workspace_id.to_string()), Bind::Bool(filter.archived)],
        );
        if let Some(search) = &filter.search {
            q.push(
                " AND a.name_lower LIKE ? ESCAPE '\\'",
                Bind::Text(format!("%{}%", escape_like(search))),
            );
        }
        if let Some(user) = &filter.created_by {
            q.push(" AND a.created_by = ?", Bind::Text(user.clone()));
        }
        if !filter.tags.is_empty() {
            let tags: Vec<String> =
                filter.tags.iter().map(|t| q.param(Bind::Text(t.clone()))).collect();
            q.raw(&format!(
                " AND EXISTS (SELECT 1 FROM agent_tags t WHERE t.agent_id = a.id AND t.tag IN ({}))",
                tags.join(", ")
            ));
        }
        q.page(sort_column(page.sort), "a.id", page);
        if let Some(reads) = self.inline() {
            let read = reads.each(&q, AgentSummaryRow::COLUMNS, |row, at| {
                sink.row(&AgentSummary::from_sqlite(row, at)?);
                Ok(())
            });
            if read {
                return Ok(());
            }
            sink.restart();
        }
        let rows: Vec<AgentSummaryRow> = run!(self, read, |pool| {
            bound!(sqlx::query_as(sqlx::AssertSqlSafe(q.sql.clone())), q).fetch_all(pool).await
        })?;
        for row in &rows {
            sink.row(&row.as_summary());
        }
        Ok(())
    }

    async fn delete_agent(&self, workspace_id: &WorkspaceId, id: &AgentId) -> StoreResult<()> {
        execute!(
            self,
            "DELETE FROM agent_media WHERE workspace_id = $1 AND agent_id = $2",
            workspace_id.as_str(),
            id.as_str()
        )?;
        change_one!(
            self,
            "DELETE FROM agents WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id.as_str(),
        )
    }

    async fn agent_link_token(
        &self, workspace_id: &WorkspaceId, id: &AgentId, candidate: &str,
    ) -> StoreResult<String> {
        transaction!(self, |tx| {
            sqlx::query(
                "UPDATE agents SET link_token = COALESCE(link_token, $3) WHERE workspace_id = $1 AND id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id.as_str())
            .bind(candidate)
            .execute(&mut *tx)
            .await?;
            let token: Option<String> = sqlx::query_scalar(
                "SELECT link_token FROM agents WHERE workspace_id = $1 AND id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            token.ok_or(StoreError::NotFound)
        })
    }
}
