//! An agent's branches, their immutable versions, users' drafts and the traffic split between
//! branches. A branch points at its head version; a commit moves the head only from the head
//! its writer read, so two writers racing on one branch make two versions in a line or one
//! of them retries, never a lost update. The `agents` row keeps a copy of the main branch's
//! head, which every read that does not name a branch or version uses.

use async_trait::async_trait;

use colloquy_core::ids::{self, AgentId, WorkspaceId};

use crate::agents::{AgentContent, AgentRow, set_agent_links, tags_json};
use crate::db::{execute, run, transaction, update_versioned};
use crate::inline::{SqliteRow, concat_columns, sqlite_row};
use crate::procedures::{Publish, publish_drafts};
use crate::query::{Bind, Query, fetch_all, fetch_optional};
use crate::{SqlStore, StoreError, StoreResult};

/// A branch's share of traffic when it has all of it, in millionths.
pub const ALL_TRAFFIC_PPM: i64 = 1_000_000;

/// An agent as a version holds it: the agent's row with the version's name, tags, document
/// and id, and the branch the version is on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentAtRow {
    /// The agent, with the version's content.
    #[sqlx(flatten)]
    pub row: AgentRow,
    /// `agtbrch_...` of the version's branch.
    pub branch_id: String,
}

impl SqliteRow for AgentAtRow {
    const COLUMNS: &'static [&'static str] =
        &concat_columns::<16>(AgentRow::COLUMNS, &["branch_id"]);

    fn from_row(row: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self> {
        let (head, tail) = at.split_at(AgentRow::COLUMNS.len().min(at.len()));
        Ok(AgentAtRow {
            row: AgentRow::from_row(row, head)?,
            branch_id: row.get(tail.first().copied().unwrap_or(usize::MAX))?,
        })
    }
}

/// A branch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BranchRow {
    /// `agtbrch_...`
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// Unique within the agent.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The creating user.
    pub created_by: String,
    /// Their name.
    pub creator_name: String,
    /// Their email.
    pub creator_email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of its head's commit.
    pub last_committed_at: i64,
    /// Archived branches serve no traffic and take no commits.
    pub archived: bool,
    /// `writer_perms_required` or `admin_perms_required`.
    pub protection_status: String,
    /// The branch it was created from.
    pub parent_branch_id: Option<String>,
    /// That branch's name.
    pub parent_branch_name: Option<String>,
    /// `agtvrsn_...` of its head.
    pub head_version_id: String,
    /// Its share of new conversations, in millionths.
    pub traffic_ppm: i64,
    /// Conversations on it in the last 7 days.
    pub calls_7d: i64,
}
sqlite_row!(BranchRow {
    id,
    agent_id,
    name,
    description,
    created_by,
    creator_name,
    creator_email,
    created_at,
    last_committed_at,
    archived,
    protection_status,
    parent_branch_id,
    parent_branch_name,
    head_version_id,
    traffic_ppm,
    calls_7d,
});

/// What a version records besides its content.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionMeta {
    /// `agtvrsn_...`
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// Its branch.
    pub branch_id: String,
    /// 1 for a branch's first version, then one more for each.
    pub seq_no: i64,
    /// The author.
    pub created_by: String,
    /// Their name.
    pub creator_name: String,
    /// Their email.
    pub creator_email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The change's summary.
    pub description: String,
    /// The previous version of the same branch.
    pub in_branch_parent_id: Option<String>,
    /// The version of another branch a branch's first version was made from.
    pub out_of_branch_parent_id: Option<String>,
    /// The branch this version was later merged into.
    pub merged_into_branch_id: Option<String>,
    /// For a merge: the branch merged in.
    pub merged_from_branch_id: Option<String>,
    /// For a merge: the version merged in.
    pub merged_from_version_id: Option<String>,
    /// For a rebase: the version of main rebased onto.
    pub rebased_from_version_id: Option<String>,
}
sqlite_row!(VersionMeta {
    id,
    agent_id,
    branch_id,
    seq_no,
    created_by,
    creator_name,
    creator_email,
    created_at,
    description,
    in_branch_parent_id,
    out_of_branch_parent_id,
    merged_into_branch_id,
    merged_from_branch_id,
    merged_from_version_id,
    rebased_from_version_id,
});

impl VersionMeta {
    /// Every version this one was made from.
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        [
            &self.in_branch_parent_id,
            &self.out_of_branch_parent_id,
            &self.merged_from_version_id,
            &self.rebased_from_version_id,
        ]
        .into_iter()
        .filter_map(|p| p.as_deref())
    }
}

/// The parents of a new version other than the branch's previous head.
#[derive(Debug, Clone, Default)]
pub struct OtherParents {
    /// A new branch's first version: the version it was made from.
    pub out_of_branch: Option<String>,
    /// A merge: the branch and version merged in.
    pub merged_from: Option<(String, String)>,
    /// A rebase: the version of main rebased onto.
    pub rebased_from: Option<String>,
}

/// A new version of a branch.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    /// The branch.
    pub branch_id: &'a str,
    /// The head the writer read: if it moved meanwhile the commit is refused
    /// ([`StoreError::Conflict`]).
    pub expected_head: &'a str,
    /// The version's content; `content.version_id` is its id.
    pub content: &'a AgentContent,
    /// The author.
    pub author: &'a str,
    /// The change's summary.
    pub description: &'a str,
    /// Parents besides the previous head.
    pub parents: OtherParents,
    /// Procedure drafts the commit publishes.
    pub publish: Option<Publish<'a>>,
    /// Unix seconds.
    pub now: i64,
}

/// A new branch.
#[derive(Debug, Clone)]
pub struct NewBranch<'a> {
    /// `agtbrch_...`
    pub id: &'a str,
    /// Unique within the agent.
    pub name: &'a str,
    /// Free text.
    pub description: &'a str,
    /// The branch of the version it starts from.
    pub parent_branch_id: &'a str,
    /// Its first version; its `expected_head` is the version it starts from.
    pub first: Commit<'a>,
}

/// A user's draft of a branch.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DraftRow {
    /// Unix seconds it was first written.
    pub created_at: i64,
    /// The draft body, JSON text.
    pub document: String,
}
sqlite_row!(DraftRow { created_at, document });

/// Branches, versions, drafts and deployments.
#[async_trait]
pub trait AgentVersionStore {
    /// The agent at one of its versions.
    async fn agent_at_version(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, version_id: &str,
    ) -> StoreResult<AgentAtRow>;
    /// The agent at the head of one of its branches.
    async fn agent_at_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str,
    ) -> StoreResult<AgentAtRow>;
    /// Adds a version to a branch and makes it the head (see [`Commit`]); on the main branch,
    /// the agent's row follows.
    async fn commit_agent(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, commit: &Commit<'_>,
    ) -> StoreResult<()>;
    /// A new branch with its first version.
    async fn insert_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch: &NewBranch<'_>,
    ) -> StoreResult<()>;
    /// The agent's branches, archived ones too when asked, oldest first.
    async fn list_branches(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, include_archived: bool, limit: u32,
        now: i64,
    ) -> StoreResult<Vec<BranchRow>>;
    /// A branch's name, whether it is archived, and its protection: what a commit to it must
    /// pass.
    async fn branch_gate(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str,
    ) -> StoreResult<(String, bool, String)>;
    /// One branch.
    async fn get_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, now: i64,
    ) -> StoreResult<BranchRow>;
    /// Renames, describes, archives or protects a branch (what is `Some`). Archiving takes
    /// its traffic away, which goes to the main branch.
    async fn update_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str,
        change: &BranchChange,
    ) -> StoreResult<()>;
    /// One version's metadata.
    async fn get_version(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, version_id: &str,
    ) -> StoreResult<VersionMeta>;
    /// Every version of the agent (metadata only), for walking its history.
    async fn agent_versions(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId,
    ) -> StoreResult<Vec<VersionMeta>>;
    /// A user's draft of a branch, if any.
    async fn get_draft(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, user_id: &str,
    ) -> StoreResult<Option<DraftRow>>;
    /// Writes a user's draft of a branch.
    async fn put_draft(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, user_id: &str,
        document: &str, now: i64,
    ) -> StoreResult<()>;
    /// Discards a user's draft of a branch; whether there was one.
    async fn delete_draft(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, user_id: &str,
    ) -> StoreResult<bool>;
    /// Sets the traffic split: each listed branch's share, every other branch none; recorded
    /// in the deployment history as set by `user_id`, for `source` (`manual`, `duplicate`).
    async fn deploy(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, split: &[(String, i64)],
        user_id: &str, now: i64, source: &str,
    ) -> StoreResult<()>;
    /// A page of the deployment history, newest first (`offset` rows skipped), and how many
    /// there are in all.
    async fn list_deployments(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, offset: u32, limit: u32,
    ) -> StoreResult<(Vec<DeploymentRow>, i64)>;
    /// The branches that serve new conversations, with their shares.
    async fn live_split(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId,
    ) -> StoreResult<Vec<(String, i64)>>;
}

/// A traffic split once set.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeploymentRow {
    /// `agtdpl_...`
    pub id: String,
    /// Who set it.
    pub created_by: String,
    /// Their name.
    pub creator_name: String,
    /// Their email.
    pub creator_email: String,
    /// Unix seconds.
    pub created_at: i64,
    /// `manual`, `branch_merge` or `duplicate`.
    pub source: String,
    /// The shares as JSON: `[[branch_id, millionths], ...]`.
    pub split: String,
}
sqlite_row!(DeploymentRow {
    id,
    created_by,
    creator_name,
    creator_email,
    created_at,
    source,
    split
});

/// Records the agent's current traffic split in its deployment history, inside `$tx`.
macro_rules! record_split {
    ($tx:ident, $workspace_id:expr, $agent_id:expr, $user_id:expr, $now:expr, $source:expr) => {{
        let split: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, traffic_ppm FROM agent_branches WHERE workspace_id = $1 AND agent_id = $2 \
             AND traffic_ppm > 0 ORDER BY created_at, id",
        )
        .bind($workspace_id)
        .bind($agent_id)
        .fetch_all(&mut *$tx)
        .await?;
        sqlx::query(
            "INSERT INTO agent_deployments (id, workspace_id, agent_id, created_by, created_at, \
             source, split) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(ids::new_id(ids::prefix::DEPLOYMENT))
        .bind($workspace_id)
        .bind($agent_id)
        .bind($user_id)
        .bind($now)
        .bind($source)
        .bind(serde_json::to_string(&split).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *$tx)
        .await?;
    }};
}

/// What a branch update changes.
#[derive(Debug, Clone, Default)]
pub struct BranchChange {
    /// Who changes it.
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    /// What the traffic moved by archiving is recorded as in the deployment history
    /// (`manual`, `branch_merge`).
    pub source: &'static str,
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Archive or restore.
    pub archived: Option<bool>,
    /// New protection.
    pub protection_status: Option<String>,
}

/// The agent's row with a version's content: `$3` names the version (by the join in `$from`).
fn agent_at_sql(from: &str) -> String {
    format!(
        "SELECT a.id, v.name, v.tags, v.archived, v.voice_id, a.created_by, u.name AS creator_name, \
         u.email AS creator_email, a.created_at, v.created_at AS updated_at, a.last_call_time, \
         a.call_count_7d, a.main_branch_id, v.id AS version_id, v.document, v.branch_id \
         FROM agents a JOIN users u ON u.id = a.created_by {from} \
         WHERE a.workspace_id = $1 AND a.id = $2"
    )
}

/// The columns of a [`BranchRow`] over `agent_branches b JOIN users u` (`$now` the current
/// time, for the calls of the last 7 days).
fn branch_sql(condition: &str) -> String {
    format!(
        "SELECT b.id, b.agent_id, b.name, b.description, b.created_by, u.name AS creator_name, \
         u.email AS creator_email, b.created_at, b.last_committed_at, b.archived, \
         b.protection_status, b.parent_branch_id, p.name AS parent_branch_name, \
         b.head_version_id, b.traffic_ppm, \
         (SELECT COUNT(*) FROM conversations c WHERE c.workspace_id = b.workspace_id \
          AND c.agent_id = b.agent_id AND c.branch_id = b.id AND c.started_at >= $3) AS calls_7d \
         FROM agent_branches b JOIN users u ON u.id = b.created_by \
         LEFT JOIN agent_branches p ON p.id = b.parent_branch_id \
         WHERE b.workspace_id = $1 AND b.agent_id = $2 {condition}"
    )
}

const VERSION_COLUMNS: &str = "v.id, v.agent_id, v.branch_id, v.seq_no, v.created_by, \
     u.name AS creator_name, u.email AS creator_email, v.created_at, v.description, \
     v.in_branch_parent_id, v.out_of_branch_parent_id, v.merged_into_branch_id, \
     v.merged_from_branch_id, v.merged_from_version_id, v.rebased_from_version_id \
     FROM agent_versions v JOIN users u ON u.id = v.created_by";

/// Seconds in the "last 7 days" of a branch's call count.
const WEEK_SECS: i64 = 7 * 86_400;

/// Inserts the version `$commit` of `$agent_id` on its branch, numbered after the branch's
/// last, inside `$tx`.
macro_rules! insert_version {
    ($tx:ident, $workspace_id:expr, $agent_id:expr, $commit:expr) => {{
        let commit: &Commit<'_> = $commit;
        let c = commit.content;
        let seq_no: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq_no), 0) + 1 FROM agent_versions WHERE branch_id = $1",
        )
        .bind(commit.branch_id)
        .fetch_one(&mut *$tx)
        .await?;
        let in_branch = (seq_no > 1).then_some(commit.expected_head);
        let (merged_branch, merged_version) = commit.parents.merged_from.clone().unzip();
        sqlx::query(
            "INSERT INTO agent_versions (id, workspace_id, agent_id, branch_id, seq_no, \
             created_by, created_at, description, in_branch_parent_id, out_of_branch_parent_id, \
             merged_from_branch_id, merged_from_version_id, rebased_from_version_id, name, tags, \
             archived, voice_id, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&c.version_id)
        .bind($workspace_id)
        .bind($agent_id)
        .bind(commit.branch_id)
        .bind(seq_no)
        .bind(commit.author)
        .bind(commit.now)
        .bind(commit.description)
        .bind(in_branch)
        .bind(commit.parents.out_of_branch.as_deref())
        .bind(merged_branch.as_deref())
        .bind(merged_version.as_deref())
        .bind(commit.parents.rebased_from.as_deref())
        .bind(&c.name)
        .bind(tags_json(&c.tags))
        .bind(c.archived)
        .bind(&c.voice_id)
        .bind(&c.document)
        .execute(&mut *$tx)
        .await?;
        if let Some((_, merged)) = &commit.parents.merged_from {
            sqlx::query("UPDATE agent_versions SET merged_into_branch_id = $1 WHERE id = $2")
                .bind(commit.branch_id)
                .bind(merged)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_version;

#[async_trait]
impl AgentVersionStore for SqlStore {
    async fn agent_at_version(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, version_id: &str,
    ) -> StoreResult<AgentAtRow> {
        let sql = agent_at_sql("JOIN agent_versions v ON v.agent_id = a.id AND v.id = $3");
        let mut q = Query::scoped(sql, workspace_id, agent_id.as_str());
        q.binds.push(Bind::Text(version_id.to_owned()));
        fetch_optional!(self, q)?.ok_or(StoreError::NotFound)
    }

    async fn agent_at_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str,
    ) -> StoreResult<AgentAtRow> {
        let sql = agent_at_sql(
            "JOIN agent_branches b ON b.agent_id = a.id AND b.id = $3 \
             JOIN agent_versions v ON v.id = b.head_version_id",
        );
        let mut q = Query::scoped(sql, workspace_id, agent_id.as_str());
        q.binds.push(Bind::Text(branch_id.to_owned()));
        fetch_optional!(self, q)?.ok_or(StoreError::NotFound)
    }

    async fn commit_agent(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, commit: &Commit<'_>,
    ) -> StoreResult<()> {
        let (ws, id) = (workspace_id.as_str(), agent_id.as_str());
        let c = commit.content;
        transaction!(self, |tx| {
            update_versioned!(
                tx,
                "agent_branches",
                "UPDATE agent_branches SET head_version_id = $3, last_committed_at = $4 \
                 WHERE workspace_id = $1 AND id = $2 AND agent_id = $5 AND head_version_id = $6",
                ws,
                commit.branch_id,
                [&c.version_id, commit.now, id, commit.expected_head],
                "the branch changed meanwhile"
            );
            insert_version!(tx, ws, id, commit);
            if let Some(publish) = &commit.publish {
                publish_drafts!(tx, commit.branch_id, publish);
            }
            let main = sqlx::query(
                "UPDATE agents SET name = $3, name_lower = $4, tags = $5, archived = $6, \
                 voice_id = $7, version_id = $8, document = $9, updated_at = $10 \
                 WHERE workspace_id = $1 AND id = $2 AND main_branch_id = $11",
            )
            .bind(ws)
            .bind(id)
            .bind(&c.name)
            .bind(&c.name_lower)
            .bind(tags_json(&c.tags))
            .bind(c.archived)
            .bind(&c.voice_id)
            .bind(&c.version_id)
            .bind(&c.document)
            .bind(commit.now)
            .bind(commit.branch_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if main > 0 {
                set_agent_links!(tx, replace, id, c);
            }
            Ok(())
        })
    }

    async fn insert_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch: &NewBranch<'_>,
    ) -> StoreResult<()> {
        let (ws, id) = (workspace_id.as_str(), agent_id.as_str());
        let first = &branch.first;
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO agent_branches (id, workspace_id, agent_id, name, description, \
                 created_by, created_at, last_committed_at, parent_branch_id, head_version_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)",
            )
            .bind(branch.id)
            .bind(ws)
            .bind(id)
            .bind(branch.name)
            .bind(branch.description)
            .bind(first.author)
            .bind(first.now)
            .bind(branch.parent_branch_id)
            .bind(&first.content.version_id)
            .execute(&mut *tx)
            .await?;
            insert_version!(tx, ws, id, first);
            Ok(())
        })
    }

    async fn list_branches(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, include_archived: bool, limit: u32,
        now: i64,
    ) -> StoreResult<Vec<BranchRow>> {
        let archived = if include_archived { "" } else { " AND b.archived = FALSE" };
        let sql = branch_sql(&format!("{archived} ORDER BY b.created_at, b.id LIMIT {limit}"));
        let mut q = Query::scoped(sql, workspace_id, agent_id.as_str());
        q.binds.push(Bind::Int(now - WEEK_SECS));
        Ok(fetch_all!(self, q)?)
    }

    async fn get_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, now: i64,
    ) -> StoreResult<BranchRow> {
        let mut q = Query::scoped(branch_sql("AND b.id = $4"), workspace_id, agent_id.as_str());
        q.binds.push(Bind::Int(now - WEEK_SECS));
        q.binds.push(Bind::Text(branch_id.to_owned()));
        fetch_optional!(self, q)?.ok_or(StoreError::NotFound)
    }

    async fn branch_gate(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str,
    ) -> StoreResult<(String, bool, String)> {
        let gate: Option<(String, bool, String)> = run!(self, read, |pool| {
            sqlx::query_as(
                "SELECT name, archived, protection_status FROM agent_branches \
                 WHERE workspace_id = $1 AND agent_id = $2 AND id = $3",
            )
            .bind(workspace_id.as_str())
            .bind(agent_id.as_str())
            .bind(branch_id)
            .fetch_optional(pool)
            .await
        })?;
        gate.ok_or(StoreError::NotFound)
    }

    async fn update_branch(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str,
        change: &BranchChange,
    ) -> StoreResult<()> {
        let (ws, id) = (workspace_id.as_str(), agent_id.as_str());
        transaction!(self, |tx| {
            let traffic: Option<i64> = sqlx::query_scalar(
                "SELECT traffic_ppm FROM agent_branches \
                 WHERE workspace_id = $1 AND agent_id = $2 AND id = $3",
            )
            .bind(ws)
            .bind(id)
            .bind(branch_id)
            .fetch_optional(&mut *tx)
            .await?;
            let traffic = traffic.ok_or(StoreError::NotFound)?;
            let archive = change.archived == Some(true);
            sqlx::query(
                "UPDATE agent_branches SET name = COALESCE($4, name), \
                 description = COALESCE($5, description), archived = COALESCE($6, archived), \
                 protection_status = COALESCE($7, protection_status), \
                 traffic_ppm = CASE WHEN $8 THEN 0 ELSE traffic_ppm END \
                 WHERE workspace_id = $1 AND agent_id = $2 AND id = $3",
            )
            .bind(ws)
            .bind(id)
            .bind(branch_id)
            .bind(change.name.as_deref())
            .bind(change.description.as_deref())
            .bind(change.archived)
            .bind(change.protection_status.as_deref())
            .bind(archive)
            .execute(&mut *tx)
            .await?;
            if archive && traffic > 0 {
                sqlx::query(
                    "UPDATE agent_branches SET traffic_ppm = traffic_ppm + $3 WHERE id = \
                     (SELECT main_branch_id FROM agents WHERE workspace_id = $1 AND id = $2)",
                )
                .bind(ws)
                .bind(id)
                .bind(traffic)
                .execute(&mut *tx)
                .await?;
                record_split!(tx, ws, id, &change.by, change.at, change.source);
            }
            Ok(())
        })
    }

    async fn get_version(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, version_id: &str,
    ) -> StoreResult<VersionMeta> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} WHERE v.workspace_id = $1 AND v.agent_id = $2 AND v.id = $3"
        );
        let mut q = Query::scoped(sql, workspace_id, agent_id.as_str());
        q.binds.push(Bind::Text(version_id.to_owned()));
        fetch_optional!(self, q)?.ok_or(StoreError::NotFound)
    }

    async fn agent_versions(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId,
    ) -> StoreResult<Vec<VersionMeta>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} WHERE v.workspace_id = $1 AND v.agent_id = $2 \
             ORDER BY v.created_at, v.seq_no"
        );
        Ok(fetch_all!(self, Query::scoped(sql, workspace_id, agent_id.as_str()))?)
    }

    async fn get_draft(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, user_id: &str,
    ) -> StoreResult<Option<DraftRow>> {
        let mut q = Query::scoped(
            "SELECT d.created_at, d.document FROM agent_drafts d \
             JOIN agent_branches b ON b.id = d.branch_id \
             WHERE b.workspace_id = $1 AND d.agent_id = $2 AND d.branch_id = $3 AND d.user_id = $4"
                .to_owned(),
            workspace_id,
            agent_id.as_str(),
        );
        q.binds.push(Bind::Text(branch_id.to_owned()));
        q.binds.push(Bind::Text(user_id.to_owned()));
        Ok(fetch_optional!(self, q)?)
    }

    async fn put_draft(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, user_id: &str,
        document: &str, now: i64,
    ) -> StoreResult<()> {
        let done = execute!(
            self,
            "INSERT INTO agent_drafts (branch_id, user_id, agent_id, created_at, updated_at, document) \
             SELECT b.id, $4, b.agent_id, $5, $5, $6 FROM agent_branches b \
             WHERE b.workspace_id = $1 AND b.agent_id = $2 AND b.id = $3 \
             ON CONFLICT (branch_id, user_id) DO UPDATE SET document = excluded.document, \
             updated_at = excluded.updated_at",
            workspace_id.as_str(),
            agent_id.as_str(),
            branch_id,
            user_id,
            now,
            document,
        )?;
        crate::db::changed_one(done)
    }

    async fn delete_draft(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, branch_id: &str, user_id: &str,
    ) -> StoreResult<bool> {
        let done = execute!(
            self,
            "DELETE FROM agent_drafts WHERE agent_id = $2 AND branch_id = $3 AND user_id = $4 \
             AND EXISTS (SELECT 1 FROM agents a WHERE a.workspace_id = $1 AND a.id = $2)",
            workspace_id.as_str(),
            agent_id.as_str(),
            branch_id,
            user_id,
        )?;
        Ok(done > 0)
    }

    async fn deploy(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, split: &[(String, i64)],
        user_id: &str, now: i64, source: &str,
    ) -> StoreResult<()> {
        let (ws, id) = (workspace_id.as_str(), agent_id.as_str());
        transaction!(self, |tx| {
            sqlx::query(
                "UPDATE agent_branches SET traffic_ppm = 0 WHERE workspace_id = $1 AND agent_id = $2",
            )
            .bind(ws)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            for (branch_id, ppm) in split {
                let done = sqlx::query(
                    "UPDATE agent_branches SET traffic_ppm = $4 \
                     WHERE workspace_id = $1 AND agent_id = $2 AND id = $3 AND archived = FALSE",
                )
                .bind(ws)
                .bind(id)
                .bind(branch_id)
                .bind(ppm)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound);
                }
            }
            record_split!(tx, ws, id, user_id, now, source);
            Ok(())
        })
    }

    async fn list_deployments(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, offset: u32, limit: u32,
    ) -> StoreResult<(Vec<DeploymentRow>, i64)> {
        let sql = format!(
            "SELECT d.id, d.created_by, u.name AS creator_name, u.email AS creator_email, \
             d.created_at, d.source, d.split FROM agent_deployments d \
             JOIN users u ON u.id = d.created_by WHERE d.workspace_id = $1 AND d.agent_id = $2 \
             ORDER BY d.created_at DESC, d.id DESC LIMIT {limit} OFFSET {offset}"
        );
        let rows = fetch_all!(self, Query::scoped(sql, workspace_id, agent_id.as_str()))?;
        let total: i64 = run!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM agent_deployments WHERE workspace_id = $1 AND agent_id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(agent_id.as_str())
            .fetch_one(pool)
            .await
        })?;
        Ok((rows, total))
    }

    async fn live_split(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId,
    ) -> StoreResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = run!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, traffic_ppm FROM agent_branches WHERE workspace_id = $1 \
                 AND agent_id = $2 AND traffic_ppm > 0 AND archived = FALSE ORDER BY created_at, id",
            )
            .bind(workspace_id.as_str())
            .bind(agent_id.as_str())
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}
