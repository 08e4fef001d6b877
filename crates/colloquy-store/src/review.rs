//! Reviewing conversations: tags and which conversations carry them, the people who talked to
//! the workspace's agents (read from the conversations), and the conversations live on some
//! node now.

use async_trait::async_trait;

use colloquy_core::ids::{ConversationId, WorkspaceId};

use crate::db::{change_one, execute, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all, fetch_optional, find};
use crate::{SqlStore, StoreError, StoreResult};

/// A conversation tag.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagRow {
    /// `ctag_...`
    pub id: String,
    /// Owning workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// Who created it.
    pub owner_user_id: String,
    /// Display title.
    pub title: String,
    /// Free text.
    pub description: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}
sqlite_row!(TagRow { id, workspace_id, owner_user_id, title, description, created_at });

/// One person who talked to the workspace's agents, over the conversations a filter keeps.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    /// The end user's id.
    pub user_id: String,
    /// Their first conversation's start.
    pub first_contact: i64,
    /// Their last conversation's start.
    pub last_contact: i64,
    /// How many conversations.
    pub conversation_count: i64,
}
sqlite_row!(UserRow { user_id, first_contact, last_contact, conversation_count });

/// A user's latest conversation.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LastContactRow {
    /// The end user's id.
    pub user_id: String,
    /// The conversation.
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// The agent's name then.
    pub agent_name: Option<String>,
    /// Its start.
    pub started_at: i64,
}
sqlite_row!(LastContactRow { user_id, id, agent_id, agent_name, started_at });

/// Which conversations the users list reads, and in what order.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only conversations with this agent.
    pub agent_id: Option<String>,
    /// Only conversations on this branch.
    pub branch_id: Option<String>,
    /// Started before this unix second.
    pub before: Option<i64>,
    /// Started after this unix second.
    pub after: Option<i64>,
    /// Exactly this user.
    pub user_id: Option<String>,
    /// Sort by conversation count (else by last contact).
    pub by_count: bool,
    /// Descending.
    pub descending: bool,
    /// After this (sort value, user id).
    pub after_key: Option<(i64, String)>,
    /// At most this many.
    pub limit: u32,
}

/// Tags, users, live conversations.
#[async_trait]
pub trait ReviewStore {
    /// Stores a new tag.
    async fn insert_tag(&self, tag: &TagRow) -> StoreResult<()>;

    /// The workspace's tags, newest first, after (created_at, id).
    async fn list_tags(
        &self, workspace_id: &WorkspaceId, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<TagRow>>;

    /// One tag of the workspace.
    async fn get_tag(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<TagRow>;

    /// These tags of the workspace (those that exist).
    async fn get_tags(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<TagRow>>;

    /// Replaces a tag's title and description.
    async fn update_tag(
        &self, workspace_id: &WorkspaceId, id: &str, title: &str, description: Option<&str>,
    ) -> StoreResult<()>;

    /// Deletes a tag and takes it off every conversation.
    async fn delete_tag(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()>;

    /// Puts tags (of the workspace, checked by the caller) on a conversation; tags it already
    /// has are left as they are.
    async fn tag_conversation(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, tag_ids: &[String],
    ) -> StoreResult<()>;

    /// Takes a tag off a conversation; [`StoreError::NotFound`] when it did not have it.
    async fn untag_conversation(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, tag_id: &str,
    ) -> StoreResult<()>;

    /// A conversation's tags' ids.
    async fn conversation_tag_ids(
        &self, conversation_id: &ConversationId,
    ) -> StoreResult<Vec<String>>;

    /// The people who talked to the workspace's agents, as `filter` says.
    async fn list_users(
        &self, workspace_id: &WorkspaceId, filter: &UserFilter,
    ) -> StoreResult<Vec<UserRow>>;

    /// Each of these users' latest conversation among those `filter` keeps.
    async fn last_contacts(
        &self, workspace_id: &WorkspaceId, filter: &UserFilter, user_ids: &[String],
    ) -> StoreResult<Vec<LastContactRow>>;

    /// A conversation goes live on `node_id`.
    async fn live_started(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, agent_id: &str,
        node_id: &str, now: i64,
    ) -> StoreResult<()>;

    /// A live conversation ended.
    async fn live_ended(&self, conversation_id: &ConversationId) -> StoreResult<()>;

    /// `node_id` still holds its live conversations; rows not seen since `forget_before` (a
    /// dead node's) go.
    async fn live_seen(&self, node_id: &str, now: i64, forget_before: i64) -> StoreResult<()>;

    /// The workspace's conversations seen live since `since`, of these agents (all when none).
    async fn live_count(
        &self, workspace_id: &WorkspaceId, agent_ids: &[String], since: i64,
    ) -> StoreResult<i64>;
}

const TAG_COLUMNS: &str = "SELECT id, workspace_id, owner_user_id, title, description, created_at \
     FROM conversation_tags";

/// Appends the conversations the users list reads to `q` (whose `$1` is the workspace).
fn user_conversations(q: &mut Query, filter: &UserFilter) {
    q.raw(
        "FROM conversations WHERE workspace_id = $1 AND deleted = FALSE \
         AND user_id IS NOT NULL AND user_id <> ''",
    );
    if let Some(agent) = &filter.agent_id {
        q.push(" AND agent_id = ?", Bind::Text(agent.clone()));
    }
    if let Some(branch) = &filter.branch_id {
        q.push(" AND branch_id = ?", Bind::Text(branch.clone()));
    }
    if let Some(before) = filter.before {
        q.push(" AND started_at < ?", Bind::Int(before));
    }
    if let Some(after) = filter.after {
        q.push(" AND started_at > ?", Bind::Int(after));
    }
    if let Some(user) = &filter.user_id {
        q.push(" AND user_id = ?", Bind::Text(user.clone()));
    }
}

/// One text column.
#[derive(Debug, sqlx::FromRow)]
struct TextValue {
    value: String,
}
sqlite_row!(TextValue { value });

/// One count.
#[derive(Debug, sqlx::FromRow)]
struct CountValue {
    value: i64,
}
sqlite_row!(CountValue { value });

#[async_trait]
impl ReviewStore for SqlStore {
    async fn insert_tag(&self, t: &TagRow) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO conversation_tags (id, workspace_id, owner_user_id, title, description, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &t.id,
            t.workspace_id.as_str(),
            &t.owner_user_id,
            &t.title,
            t.description.as_deref(),
            t.created_at,
        )?;
        Ok(())
    }

    async fn list_tags(
        &self, workspace_id: &WorkspaceId, after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<TagRow>> {
        let mut q =
            Query::in_workspace(format!("{TAG_COLUMNS} WHERE workspace_id = $1"), workspace_id);
        if let Some((at, id)) = after {
            let a = q.param(Bind::Int(at));
            let i = q.param(Bind::Text(id));
            q.raw(&format!(" AND (created_at < {a} OR (created_at = {a} AND id < {i}))"));
        }
        q.order_and_limit("created_at DESC, id DESC", limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn get_tag(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<TagRow> {
        find!(self, format!("{TAG_COLUMNS} WHERE workspace_id = $1 AND id = $2"), workspace_id, id)
    }

    async fn get_tags(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<TagRow>> {
        let Some(q) =
            Query::among(format!("{TAG_COLUMNS} WHERE workspace_id = $1"), workspace_id, "id", ids)
        else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }

    async fn update_tag(
        &self, workspace_id: &WorkspaceId, id: &str, title: &str, description: Option<&str>,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "UPDATE conversation_tags SET title = $3, description = $4 \
             WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id,
            title,
            description,
        )
    }

    async fn delete_tag(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()> {
        transaction!(self, |tx| {
            let done =
                sqlx::query("DELETE FROM conversation_tags WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM conversation_tag_links WHERE tag_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn tag_conversation(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, tag_ids: &[String],
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            let found: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM conversations WHERE workspace_id = $1 AND id = $2 \
                 AND deleted = FALSE",
            )
            .bind(workspace_id.as_str())
            .bind(conversation_id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if found == 0 {
                return Err(StoreError::NotFound);
            }
            for tag in tag_ids {
                sqlx::query(
                    "INSERT INTO conversation_tag_links (conversation_id, tag_id) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(conversation_id.as_str())
                .bind(tag)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    async fn untag_conversation(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, tag_id: &str,
    ) -> StoreResult<()> {
        let done = execute!(
            self,
            "DELETE FROM conversation_tag_links WHERE conversation_id = $1 AND tag_id = $2 \
             AND tag_id IN (SELECT id FROM conversation_tags WHERE workspace_id = $3)",
            conversation_id.as_str(),
            tag_id,
            workspace_id.as_str(),
        )?;
        crate::db::changed_one(done)
    }

    async fn conversation_tag_ids(
        &self, conversation_id: &ConversationId,
    ) -> StoreResult<Vec<String>> {
        let q = Query::new(
            "SELECT tag_id AS value FROM conversation_tag_links WHERE conversation_id = $1 \
             ORDER BY tag_id",
            vec![Bind::Text(conversation_id.to_string())],
        );
        let rows: Vec<TextValue> = fetch_all!(self, q)?;
        Ok(rows.into_iter().map(|r| r.value).collect())
    }

    async fn list_users(
        &self, workspace_id: &WorkspaceId, f: &UserFilter,
    ) -> StoreResult<Vec<UserRow>> {
        let mut q = Query::in_workspace(
            "SELECT user_id, MIN(started_at) AS first_contact, MAX(started_at) AS last_contact, \
             COUNT(*) AS conversation_count ",
            workspace_id,
        );
        user_conversations(&mut q, f);
        q.raw(" GROUP BY user_id");
        let key = if f.by_count { "COUNT(*)" } else { "MAX(started_at)" };
        let (cmp, dir) = if f.descending { ("<", "DESC") } else { (">", "ASC") };
        if let Some((value, user)) = &f.after_key {
            let v = q.param(Bind::Int(*value));
            let u = q.param(Bind::Text(user.clone()));
            q.raw(&format!(" HAVING ({key} {cmp} {v} OR ({key} = {v} AND user_id {cmp} {u}))"));
        }
        q.order_and_limit(&format!("{key} {dir}, user_id {dir}"), f.limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn last_contacts(
        &self, workspace_id: &WorkspaceId, f: &UserFilter, user_ids: &[String],
    ) -> StoreResult<Vec<LastContactRow>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Query::in_workspace(
            "SELECT user_id, id, agent_id, agent_name, started_at ",
            workspace_id,
        );
        user_conversations(&mut q, f);
        q.push_in("user_id", user_ids);
        q.raw(" ORDER BY started_at DESC, id DESC");
        Ok(fetch_all!(self, q)?)
    }

    async fn live_started(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, agent_id: &str,
        node_id: &str, now: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO live_conversations (conversation_id, workspace_id, agent_id, node_id, \
             seen_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (conversation_id) DO NOTHING",
            conversation_id.as_str(),
            workspace_id.as_str(),
            agent_id,
            node_id,
            now,
        )?;
        Ok(())
    }

    async fn live_ended(&self, conversation_id: &ConversationId) -> StoreResult<()> {
        execute!(
            self,
            "DELETE FROM live_conversations WHERE conversation_id = $1",
            conversation_id.as_str(),
        )?;
        Ok(())
    }

    async fn live_seen(&self, node_id: &str, now: i64, forget_before: i64) -> StoreResult<()> {
        execute!(
            self,
            "UPDATE live_conversations SET seen_at = $2 WHERE node_id = $1",
            node_id,
            now
        )?;
        execute!(self, "DELETE FROM live_conversations WHERE seen_at < $1", forget_before)?;
        Ok(())
    }

    async fn live_count(
        &self, workspace_id: &WorkspaceId, agent_ids: &[String], since: i64,
    ) -> StoreResult<i64> {
        let mut q = Query::in_workspace(
            "SELECT COUNT(*) AS value FROM live_conversations WHERE workspace_id = $1",
            workspace_id,
        );
        q.push(" AND seen_at >= ?", Bind::Int(since));
        if !agent_ids.is_empty() {
            q.push_in("agent_id", agent_ids);
        }
        let row: Option<CountValue> = fetch_optional!(self, q)?;
        Ok(row.map_or(0, |r| r.value))
    }
}
