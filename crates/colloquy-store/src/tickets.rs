//! Triage tickets: the ticket's own fields, the conversations it is about, and its notes
//! (comments, turn comments, status and priority changes), which are only ever appended.

use async_trait::async_trait;

use colloquy_core::ids::WorkspaceId;

use crate::db::transaction;
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, escape_like, fetch_all, fetch_optional, find};
use crate::{SqlStore, StoreError, StoreResult};

/// A ticket's own fields.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketRow {
    /// `tkt_...`
    pub id: String,
    /// Owning workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// The agent it is about.
    pub agent_id: String,
    /// Who raised it (a user id, or `agent` for one raised by the analysis).
    pub owner_user_id: String,
    /// `qa`, `agent` or `manual`.
    pub source: String,
    /// One-line headline.
    pub title: Option<String>,
    /// The finding, over the whole conversation.
    pub qa_comment: Option<String>,
    /// `open`, `in_progress`, `resolved`, `cancelled`, `merged`.
    pub status: String,
    /// `low`, `medium`, `high`, `urgent`.
    pub priority: Option<String>,
    /// 0 (none) to 4 (urgent).
    pub priority_rank: i64,
    /// Who is to resolve it.
    pub assignee_user_id: Option<String>,
    /// The ticket it was merged into.
    pub merged_into_ticket_id: Option<String>,
    /// Start of its earliest conversation.
    pub first_seen: Option<i64>,
    /// Start of its latest conversation.
    pub last_seen: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// What the list it came from is ordered by (0 outside lists).
    pub sort_key: i64,
}
sqlite_row!(TicketRow {
    id,
    workspace_id,
    agent_id,
    owner_user_id,
    source,
    title,
    qa_comment,
    status,
    priority,
    priority_rank,
    assignee_user_id,
    merged_into_ticket_id,
    first_seen,
    last_seen,
    created_at,
    updated_at,
    sort_key,
});

/// Something said on a ticket or done to it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketNoteRow {
    /// `tnote_...`
    pub id: String,
    /// The ticket.
    pub ticket_id: String,
    /// `comment`, `turn_comment`, `status`, `priority`.
    pub kind: String,
    /// The commented turn (turn comments).
    pub turn_index: Option<i64>,
    /// The comment, or the new status or priority.
    pub text: Option<String>,
    /// The tool call a turn comment points at (the audit record's id).
    pub tool_execution_id: Option<String>,
    /// Who.
    pub user_id: Option<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Order among the notes added at once.
    pub position: i64,
}
sqlite_row!(TicketNoteRow {
    id,
    ticket_id,
    kind,
    turn_index,
    text,
    tool_execution_id,
    user_id,
    at_ms,
    position,
});

/// A conversation a ticket is about.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TicketConversationRow {
    /// The ticket.
    pub ticket_id: String,
    /// The conversation.
    pub conversation_id: String,
}
sqlite_row!(TicketConversationRow { ticket_id, conversation_id });

/// How a ticket list is ordered (newest first within each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TicketSort {
    /// By creation.
    #[default]
    CreatedAt,
    /// By priority, then creation.
    Priority,
    /// By its latest conversation (creation when it has none).
    LastReported,
}

impl TicketSort {
    /// The sort value of a row: one integer, so a cursor holds it. The priority sort puts the
    /// rank above the creation time (unix seconds stay below 10^10 until the year 2286).
    fn key(self) -> &'static str {
        match self {
            TicketSort::CreatedAt => "t.created_at",
            TicketSort::Priority => "(t.priority_rank * 10000000000 + t.created_at)",
            TicketSort::LastReported => "COALESCE(t.last_seen, t.created_at)",
        }
    }
}

/// Which tickets a list keeps.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only those about this conversation.
    pub conversation_id: Option<String>,
    /// Only in this status.
    pub status: Option<String>,
    /// Only raised these ways.
    pub sources: Vec<String>,
    /// Only of these priorities.
    pub priorities: Vec<String>,
    /// Only raised by.
    pub owner_user_id: Option<String>,
    /// Only assigned to (`None` inside: unassigned).
    pub assignee: Option<Option<String>>,
    /// Only merged into this one.
    pub merged_into_ticket_id: Option<String>,
    /// Only those whose title, description or comments hold this text (any case).
    pub search: Option<String>,
    /// Order.
    pub sort: TicketSort,
    /// After this (sort value, id).
    pub after: Option<(i64, String)>,
    /// At most this many.
    pub limit: u32,
}

/// Triage tickets.
#[async_trait]
pub trait TicketStore {
    /// Stores a new ticket with its conversations and notes.
    async fn insert_ticket(
        &self, ticket: &TicketRow, conversation_ids: &[String], notes: &[TicketNoteRow],
    ) -> StoreResult<()>;

    /// Writes a ticket's own fields and appends notes and conversations to it.
    async fn update_ticket(
        &self, ticket: &TicketRow, conversation_ids: &[String], notes: &[TicketNoteRow],
    ) -> StoreResult<()>;

    /// One ticket of the workspace.
    async fn get_ticket(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<TicketRow>;

    /// The workspace's tickets among `ids`.
    async fn get_tickets(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<TicketRow>>;

    /// The workspace's tickets a filter keeps, in its order.
    async fn list_tickets(
        &self, workspace_id: &WorkspaceId, filter: &TicketFilter,
    ) -> StoreResult<Vec<TicketRow>>;

    /// The open (or in-progress) ticket about a conversation, if there is one.
    async fn open_ticket_of(
        &self, workspace_id: &WorkspaceId, conversation_id: &str,
    ) -> StoreResult<Option<TicketRow>>;

    /// These tickets' conversations.
    async fn ticket_conversations(
        &self, ticket_ids: &[String],
    ) -> StoreResult<Vec<TicketConversationRow>>;

    /// These tickets' notes, oldest first.
    async fn ticket_notes(&self, ticket_ids: &[String]) -> StoreResult<Vec<TicketNoteRow>>;

    /// Folds `sources` into `target` (whose fields are written as given): their conversations
    /// move onto it and they become `merged` into it, each with a status note.
    async fn merge_tickets(
        &self, target: &TicketRow, sources: &[String], notes: &[TicketNoteRow],
    ) -> StoreResult<()>;

    /// Deletes a ticket with its notes and links.
    async fn delete_ticket(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()>;
}

const COLUMNS: &str = "t.id, t.workspace_id, t.agent_id, t.owner_user_id, t.source, t.title, \
     t.qa_comment, t.status, t.priority, t.priority_rank, t.assignee_user_id, \
     t.merged_into_ticket_id, t.first_seen, t.last_seen, t.created_at, t.updated_at";

const NOTE_COLUMNS: &str =
    "id, ticket_id, kind, turn_index, text, tool_execution_id, user_id, at_ms, position";

/// Writes links and notes inside a transaction, on either backend.
macro_rules! append {
    ($tx:ident, $ticket:expr, $conversation_ids:expr, $notes:expr) => {{
        for conversation in $conversation_ids {
            sqlx::query(
                "INSERT INTO triage_ticket_conversations (ticket_id, conversation_id) \
                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&$ticket.id)
            .bind(conversation)
            .execute(&mut *$tx)
            .await?;
        }
        for n in $notes {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO triage_ticket_notes ({NOTE_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )))
            .bind(&n.id)
            .bind(&n.ticket_id)
            .bind(&n.kind)
            .bind(n.turn_index)
            .bind(n.text.as_deref())
            .bind(n.tool_execution_id.as_deref())
            .bind(n.user_id.as_deref())
            .bind(n.at_ms)
            .bind(n.position)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// Writes a ticket's own fields inside a transaction; `NotFound` when it is gone.
macro_rules! write_fields {
    ($tx:ident, $t:expr) => {{
        let done = sqlx::query(
            "UPDATE triage_tickets SET title = $3, qa_comment = $4, status = $5, priority = $6, \
             priority_rank = $7, assignee_user_id = $8, merged_into_ticket_id = $9, \
             first_seen = $10, last_seen = $11, updated_at = $12 \
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind($t.workspace_id.as_str())
        .bind(&$t.id)
        .bind($t.title.as_deref())
        .bind($t.qa_comment.as_deref())
        .bind(&$t.status)
        .bind($t.priority.as_deref())
        .bind($t.priority_rank)
        .bind($t.assignee_user_id.as_deref())
        .bind($t.merged_into_ticket_id.as_deref())
        .bind($t.first_seen)
        .bind($t.last_seen)
        .bind($t.updated_at)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound);
        }
    }};
}

/// Appends the filter's conditions and order to `q` (whose `$1` is the workspace).
fn filter_tickets(q: &mut Query, f: &TicketFilter) {
    for (column, value) in [
        ("t.agent_id", &f.agent_id),
        ("t.status", &f.status),
        ("t.owner_user_id", &f.owner_user_id),
        ("t.merged_into_ticket_id", &f.merged_into_ticket_id),
    ] {
        if let Some(v) = value {
            q.push(&format!(" AND {column} = ?"), Bind::Text(v.clone()));
        }
    }
    match &f.assignee {
        Some(Some(user)) => q.push(" AND t.assignee_user_id = ?", Bind::Text(user.clone())),
        Some(None) => q.raw(" AND t.assignee_user_id IS NULL"),
        None => {}
    }
    if !f.sources.is_empty() {
        q.push_in("t.source", &f.sources);
    }
    if !f.priorities.is_empty() {
        q.push_in("t.priority", &f.priorities);
    }
    if let Some(conversation) = &f.conversation_id {
        q.push(
            " AND EXISTS (SELECT 1 FROM triage_ticket_conversations c \
             WHERE c.ticket_id = t.id AND c.conversation_id = ?)",
            Bind::Text(conversation.clone()),
        );
    }
    if let Some(text) = &f.search {
        let p = q.param(Bind::Text(format!("%{}%", escape_like(&text.to_lowercase()))));
        q.raw(&format!(
            " AND (LOWER(COALESCE(t.title, '')) LIKE {p} ESCAPE '\\' \
             OR LOWER(COALESCE(t.qa_comment, '')) LIKE {p} ESCAPE '\\' \
             OR EXISTS (SELECT 1 FROM triage_ticket_notes n WHERE n.ticket_id = t.id \
             AND n.kind IN ('comment', 'turn_comment') AND LOWER(n.text) LIKE {p} ESCAPE '\\'))"
        ));
    }
    let key = f.sort.key();
    if let Some((at, id)) = &f.after {
        let a = q.param(Bind::Int(*at));
        let i = q.param(Bind::Text(id.clone()));
        q.raw(&format!(" AND ({key} < {a} OR ({key} = {a} AND t.id < {i}))"));
    }
    q.order_and_limit("sort_key DESC, t.id DESC", f.limit);
}

#[async_trait]
impl TicketStore for SqlStore {
    async fn insert_ticket(
        &self, t: &TicketRow, conversation_ids: &[String], notes: &[TicketNoteRow],
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO triage_tickets ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16)",
                COLUMNS.replace("t.", "")
            )))
            .bind(&t.id)
            .bind(t.workspace_id.as_str())
            .bind(&t.agent_id)
            .bind(&t.owner_user_id)
            .bind(&t.source)
            .bind(t.title.as_deref())
            .bind(t.qa_comment.as_deref())
            .bind(&t.status)
            .bind(t.priority.as_deref())
            .bind(t.priority_rank)
            .bind(t.assignee_user_id.as_deref())
            .bind(t.merged_into_ticket_id.as_deref())
            .bind(t.first_seen)
            .bind(t.last_seen)
            .bind(t.created_at)
            .bind(t.updated_at)
            .execute(&mut *tx)
            .await?;
            append!(tx, t, conversation_ids, notes);
            Ok(())
        })
    }

    async fn update_ticket(
        &self, t: &TicketRow, conversation_ids: &[String], notes: &[TicketNoteRow],
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            write_fields!(tx, t);
            append!(tx, t, conversation_ids, notes);
            Ok(())
        })
    }

    async fn get_ticket(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<TicketRow> {
        find!(
            self,
            format!(
                "SELECT {COLUMNS}, CAST(0 AS BIGINT) AS sort_key FROM triage_tickets t \
                 WHERE t.workspace_id = $1 AND t.id = $2"
            ),
            workspace_id,
            id
        )
    }

    async fn get_tickets(
        &self, workspace_id: &WorkspaceId, ids: &[String],
    ) -> StoreResult<Vec<TicketRow>> {
        let sql = format!(
            "SELECT {COLUMNS}, CAST(0 AS BIGINT) AS sort_key FROM triage_tickets t WHERE t.workspace_id = $1"
        );
        let Some(q) = Query::among(sql, workspace_id, "t.id", ids) else {
            return Ok(Vec::new());
        };
        Ok(fetch_all!(self, q)?)
    }

    async fn list_tickets(
        &self, workspace_id: &WorkspaceId, filter: &TicketFilter,
    ) -> StoreResult<Vec<TicketRow>> {
        let mut q = Query::in_workspace(
            format!(
                "SELECT {COLUMNS}, {} AS sort_key FROM triage_tickets t WHERE t.workspace_id = $1",
                filter.sort.key()
            ),
            workspace_id,
        );
        filter_tickets(&mut q, filter);
        Ok(fetch_all!(self, q)?)
    }

    async fn open_ticket_of(
        &self, workspace_id: &WorkspaceId, conversation_id: &str,
    ) -> StoreResult<Option<TicketRow>> {
        let mut q = Query::in_workspace(
            format!(
                "SELECT {COLUMNS}, CAST(0 AS BIGINT) AS sort_key FROM triage_tickets t \
                 JOIN triage_ticket_conversations c ON c.ticket_id = t.id \
                 WHERE t.workspace_id = $1 AND t.status IN ('open', 'in_progress')"
            ),
            workspace_id,
        );
        q.push(" AND c.conversation_id = ?", Bind::Text(conversation_id.to_owned()));
        q.order_and_limit("t.created_at DESC, t.id DESC", 1);
        Ok(fetch_optional!(self, q)?)
    }

    async fn ticket_conversations(
        &self, ticket_ids: &[String],
    ) -> StoreResult<Vec<TicketConversationRow>> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Query::new(
            "SELECT ticket_id, conversation_id FROM triage_ticket_conversations WHERE 1 = 1",
            Vec::new(),
        );
        q.push_in("ticket_id", ticket_ids);
        q.raw(" ORDER BY ticket_id, conversation_id");
        Ok(fetch_all!(self, q)?)
    }

    async fn ticket_notes(&self, ticket_ids: &[String]) -> StoreResult<Vec<TicketNoteRow>> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Query::new(
            format!("SELECT {NOTE_COLUMNS} FROM triage_ticket_notes WHERE 1 = 1"),
            vec![],
        );
        q.push_in("ticket_id", ticket_ids);
        q.raw(" ORDER BY ticket_id, at_ms, position");
        Ok(fetch_all!(self, q)?)
    }

    async fn merge_tickets(
        &self, target: &TicketRow, sources: &[String], notes: &[TicketNoteRow],
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            write_fields!(tx, target);
            for source in sources {
                sqlx::query(
                    "INSERT INTO triage_ticket_conversations (ticket_id, conversation_id) \
                     SELECT $1, conversation_id FROM triage_ticket_conversations \
                     WHERE ticket_id = $2 ON CONFLICT DO NOTHING",
                )
                .bind(&target.id)
                .bind(source)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM triage_ticket_conversations WHERE ticket_id = $1")
                    .bind(source)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE triage_tickets SET status = 'merged', merged_into_ticket_id = $3, \
                     updated_at = $4 WHERE workspace_id = $1 AND id = $2",
                )
                .bind(target.workspace_id.as_str())
                .bind(source)
                .bind(&target.id)
                .bind(target.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            append!(tx, target, std::iter::empty::<&String>(), notes);
            Ok(())
        })
    }

    async fn delete_ticket(&self, workspace_id: &WorkspaceId, id: &str) -> StoreResult<()> {
        transaction!(self, |tx| {
            let done =
                sqlx::query("DELETE FROM triage_tickets WHERE workspace_id = $1 AND id = $2")
                    .bind(workspace_id.as_str())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if done == 0 {
                return Err(StoreError::NotFound);
            }
            for table in ["triage_ticket_conversations", "triage_ticket_notes"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE ticket_id = $1"
                )))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }
}
