//! Agent procedures: the procedures themselves, their immutable versions and users' drafts of
//! them per branch. Which versions an agent version has is in its document's `procedures`
//! map; drafts become versions in the transaction that commits the agent (see
//! [`crate::Commit::publish`]).

use async_trait::async_trait;
use colloquy_core::ids::{AgentId, WorkspaceId};

use crate::db::{execute, run, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all, fetch_optional};
use crate::{SqlStore, StoreError, StoreResult};

/// A user's draft of a procedure on a branch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProcedureDraftRow {
    /// `agtprc_...`
    pub procedure_id: String,
    /// The draft takes the procedure out of the branch.
    pub removed: bool,
    /// Name.
    pub name: String,
    /// Instructions.
    pub content: String,
    /// `free_form`, `deterministic` or `folder`.
    pub kind: String,
    /// When the agent should start it.
    pub trigger_text: String,
    /// Its folder.
    pub folder_parent_id: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
}
sqlite_row!(ProcedureDraftRow {
    procedure_id,
    removed,
    name,
    content,
    kind,
    trigger_text,
    folder_parent_id,
    updated_at,
});

/// A version of a procedure.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProcedureVersionRow {
    /// `agtprcv_...`
    pub id: String,
    /// `agtprc_...`
    pub procedure_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Name.
    pub name: String,
    /// Instructions.
    pub content: String,
    /// `free_form`, `deterministic` or `folder`.
    pub kind: String,
    /// When the agent should start it.
    pub trigger_text: String,
    /// Its folder.
    pub folder_parent_id: Option<String>,
}
sqlite_row!(ProcedureVersionRow {
    id,
    procedure_id,
    created_at,
    name,
    content,
    kind,
    trigger_text,
    folder_parent_id,
});

/// Drafts a commit publishes: the new versions, and whose drafts of the branch they were.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    /// The drafts' author.
    pub user_id: &'a str,
    /// The versions made of them.
    pub versions: &'a [ProcedureVersionRow],
}

/// Where a draft is: the agent, branch and user.
#[derive(Debug, Clone, Copy)]
pub struct DraftScope<'a> {
    /// The workspace.
    pub workspace_id: &'a WorkspaceId,
    /// The agent.
    pub agent_id: &'a AgentId,
    /// The branch.
    pub branch_id: &'a str,
    /// The user.
    pub user_id: &'a str,
}

/// Procedures.
#[async_trait]
pub trait ProcedureStore {
    /// A new procedure of the agent, with its creator's first draft of it on a branch.
    async fn insert_procedure(
        &self, at: DraftScope<'_>, procedure_id: &str, draft: &ProcedureDraftRow, now: i64,
    ) -> StoreResult<()>;
    /// Whether the agent has this procedure.
    async fn procedure_exists(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, procedure_id: &str,
    ) -> StoreResult<bool>;
    /// The user's drafts on the branch.
    async fn procedure_drafts(&self, at: DraftScope<'_>) -> StoreResult<Vec<ProcedureDraftRow>>;
    /// The user's draft of one procedure on the branch, if any.
    async fn procedure_draft(
        &self, at: DraftScope<'_>, procedure_id: &str,
    ) -> StoreResult<Option<ProcedureDraftRow>>;
    /// Writes the user's draft of a procedure on the branch.
    async fn put_procedure_draft(
        &self, at: DraftScope<'_>, draft: &ProcedureDraftRow,
    ) -> StoreResult<()>;
    /// Discards the user's draft of a procedure on the branch; whether there was one.
    async fn delete_procedure_draft(
        &self, at: DraftScope<'_>, procedure_id: &str,
    ) -> StoreResult<bool>;
    /// Versions of the workspace's procedures among `ids`.
    async fn procedure_versions(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<ProcedureVersionRow>>;
}

const DRAFT_COLUMNS: &str = "d.procedure_id, d.removed, d.name, d.content, d.kind, \
     d.trigger_text, d.folder_parent_id, d.updated_at";

/// The drafts of `$at` (a [`DraftScope`]), with `$more` appended to the condition.
fn drafts_query(at: DraftScope<'_>, more: &str) -> Query {
    Query::new(
        format!(
            "SELECT {DRAFT_COLUMNS} FROM procedure_drafts d \
             JOIN agent_procedures p ON p.id = d.procedure_id \
             WHERE p.workspace_id = $1 AND p.agent_id = $2 AND d.branch_id = $3 \
             AND d.user_id = $4{more} ORDER BY d.procedure_id"
        ),
        vec![
            Bind::Text(at.workspace_id.to_string()),
            Bind::Text(at.agent_id.to_string()),
            Bind::Text(at.branch_id.to_owned()),
            Bind::Text(at.user_id.to_owned()),
        ],
    )
}

/// Upserts the draft `$d` of `$at` inside `$tx`.
macro_rules! upsert_draft {
    ($tx:ident, $at:expr, $d:expr) => {{
        let d: &ProcedureDraftRow = $d;
        sqlx::query(
            "INSERT INTO procedure_drafts (procedure_id, branch_id, user_id, removed, name, \
             content, kind, trigger_text, folder_parent_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (procedure_id, branch_id, user_id) DO UPDATE SET \
             removed = excluded.removed, name = excluded.name, content = excluded.content, \
             kind = excluded.kind, trigger_text = excluded.trigger_text, \
             folder_parent_id = excluded.folder_parent_id, updated_at = excluded.updated_at",
        )
        .bind(&d.procedure_id)
        .bind($at.branch_id)
        .bind($at.user_id)
        .bind(d.removed)
        .bind(&d.name)
        .bind(&d.content)
        .bind(&d.kind)
        .bind(&d.trigger_text)
        .bind(&d.folder_parent_id)
        .bind(d.updated_at)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Publishes `$publish` (a [`Publish`]) of the branch `$branch_id` inside `$tx`: inserts the
/// versions and drops the author's drafts of the branch.
macro_rules! publish_drafts {
    ($tx:ident, $branch_id:expr, $publish:expr) => {{
        let publish: &$crate::procedures::Publish<'_> = $publish;
        for v in publish.versions {
            sqlx::query(
                "INSERT INTO procedure_versions (id, procedure_id, created_by, created_at, name, \
                 content, kind, trigger_text, folder_parent_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&v.id)
            .bind(&v.procedure_id)
            .bind(publish.user_id)
            .bind(v.created_at)
            .bind(&v.name)
            .bind(&v.content)
            .bind(&v.kind)
            .bind(&v.trigger_text)
            .bind(&v.folder_parent_id)
            .execute(&mut *$tx)
            .await?;
        }
        sqlx::query("DELETE FROM procedure_drafts WHERE branch_id = $1 AND user_id = $2")
            .bind($branch_id)
            .bind(publish.user_id)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use publish_drafts;

#[async_trait]
impl ProcedureStore for SqlStore {
    async fn insert_procedure(
        &self, at: DraftScope<'_>, procedure_id: &str, draft: &ProcedureDraftRow, now: i64,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            let branch: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM agent_branches WHERE workspace_id = $1 AND agent_id = $2 \
                 AND id = $3",
            )
            .bind(at.workspace_id.as_str())
            .bind(at.agent_id.as_str())
            .bind(at.branch_id)
            .fetch_one(&mut *tx)
            .await?;
            if branch == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(
                "INSERT INTO agent_procedures (id, workspace_id, agent_id, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(procedure_id)
            .bind(at.workspace_id.as_str())
            .bind(at.agent_id.as_str())
            .bind(at.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            upsert_draft!(tx, at, draft);
            Ok(())
        })
    }

    async fn procedure_exists(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, procedure_id: &str,
    ) -> StoreResult<bool> {
        let found: i64 = run!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM agent_procedures \
                 WHERE workspace_id = $1 AND agent_id = $2 AND id = $3",
            )
            .bind(workspace_id.as_str())
            .bind(agent_id.as_str())
            .bind(procedure_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(found > 0)
    }

    async fn procedure_drafts(&self, at: DraftScope<'_>) -> StoreResult<Vec<ProcedureDraftRow>> {
        Ok(fetch_all!(self, drafts_query(at, ""))?)
    }

    async fn procedure_draft(
        &self, at: DraftScope<'_>, procedure_id: &str,
    ) -> StoreResult<Option<ProcedureDraftRow>> {
        let mut q = drafts_query(at, " AND d.procedure_id = $5");
        q.binds.push(Bind::Text(procedure_id.to_owned()));
        Ok(fetch_optional!(self, q)?)
    }

    async fn put_procedure_draft(
        &self, at: DraftScope<'_>, draft: &ProcedureDraftRow,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            upsert_draft!(tx, at, draft);
            Ok(())
        })
    }

    async fn delete_procedure_draft(
        &self, at: DraftScope<'_>, procedure_id: &str,
    ) -> StoreResult<bool> {
        let done = execute!(
            self,
            "DELETE FROM procedure_drafts WHERE branch_id = $3 AND user_id = $4 \
             AND procedure_id = $5 AND procedure_id IN \
             (SELECT id FROM agent_procedures WHERE workspace_id = $1 AND agent_id = $2)",
            at.workspace_id.as_str(),
            at.agent_id.as_str(),
            at.branch_id,
            at.user_id,
            procedure_id,
        )?;
        Ok(done > 0)
    }

    async fn procedure_versions(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<ProcedureVersionRow>> {
        let Some(q) = Query::among(
            "SELECT v.id, v.procedure_id, v.created_at, v.name, v.content, v.kind, \
             v.trigger_text, v.folder_parent_id FROM procedure_versions v \
             JOIN agent_procedures p ON p.id = v.procedure_id WHERE p.workspace_id = $1",
            workspace_id,
            "v.id",
            ids,
        ) else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }
}
