//! Transcript messages of finished conversations and their full-text search: SQLite FTS5
//! (external content kept by triggers, bm25) or PostgreSQL `tsvector` with a GIN index
//! (`ts_rank`). A query's words match any message that has one of them; one that has them
//! as a phrase ranks above one that has them scattered. For semantic search, each finished
//! conversation is queued until a node's worker stores its messages' vectors.

use async_trait::async_trait;

use colloquy_core::ids::{ConversationId, WorkspaceId};

use crate::db::{Db, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all, fetch_optional};
use crate::{SqlStore, StoreResult};

/// One message found.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageHit {
    /// Its conversation.
    pub conversation_id: String,
    /// The conversation's agent.
    pub agent_id: String,
    /// The agent's name then.
    pub agent_name: Option<String>,
    /// Its place in the transcript.
    pub transcript_index: i64,
    /// Its text.
    pub message: String,
    /// How well it matches (larger is better).
    pub score: f64,
    /// The conversation's start.
    pub started_at: i64,
}
sqlite_row!(MessageHit {
    conversation_id,
    agent_id,
    agent_name,
    transcript_index,
    message,
    score,
    started_at,
});

/// A message with its vector, for ranking by meaning.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageVector {
    /// Its conversation.
    pub conversation_id: String,
    /// The conversation's agent.
    pub agent_id: String,
    /// The agent's name then.
    pub agent_name: Option<String>,
    /// Its place in the transcript.
    pub transcript_index: i64,
    /// Its text.
    pub message: String,
    /// The conversation's start.
    pub started_at: i64,
    /// Unit-length little-endian `f32`s.
    pub vector: Vec<u8>,
}
sqlite_row!(MessageVector {
    conversation_id,
    agent_id,
    agent_name,
    transcript_index,
    message,
    started_at,
    vector,
});

/// A finished conversation whose messages wait for their vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct UnembeddedConversation {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// Its messages: (transcript index, text).
    pub messages: Vec<(i64, String)>,
}

/// A search of the workspace's messages.
#[derive(Debug, Clone, Default)]
pub struct MessageSearch {
    /// The query's words (letters and digits only), lower case.
    pub words: Vec<String>,
    /// Only this agent's conversations.
    pub agent_id: Option<String>,
    /// Only conversations with this outcome.
    pub call_successful: Option<String>,
    /// Started before this unix second.
    pub before: Option<i64>,
    /// Started after this unix second.
    pub after: Option<i64>,
    /// Only this end user's.
    pub user_id: Option<String>,
    /// Only this branch's.
    pub branch_id: Option<String>,
    /// Only this version's.
    pub version_id: Option<String>,
    /// Lasting at least this many seconds.
    pub min_duration: Option<i64>,
    /// Lasting at most this many seconds.
    pub max_duration: Option<i64>,
    /// Not in these statuses.
    pub exclude_statuses: Vec<String>,
    /// Ended for one of these reasons (`termination_reason`).
    pub termination_reasons: Vec<String>,
    /// That called one of these tools (by name), with any outcome / successfully / with an error.
    pub tool_names: [Vec<String>; 3],
    /// The same by tool id.
    pub tool_ids: [Vec<String>; 3],
    /// In which one of these agents spoke (`visited_agents`, a transfer's target too).
    pub visited_agents: Vec<String>,
    /// In which an agent of one of these branches spoke.
    pub visited_branches: Vec<String>,
    /// Whose main language is one of these.
    pub languages: Vec<String>,
    /// Text-only conversations (`true`) or those with voice (`false`).
    pub text_only: Option<bool>,
    /// Started from this client (`source_info.source`).
    pub initiation_source: Option<String>,
    /// Newest conversations first, instead of the best matches.
    pub by_start: bool,
    /// Results skipped (earlier pages).
    pub offset: u32,
    /// At most this many.
    pub limit: u32,
}

/// Messages and their search.
#[async_trait]
pub trait MessageStore {
    /// Indexes a finished conversation's messages (index, role, text), replacing any earlier.
    async fn index_messages(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId,
        messages: &[(i64, String, String)],
    ) -> StoreResult<()>;

    /// The workspace's messages that match `search`.
    async fn search_messages(
        &self, workspace_id: &WorkspaceId, search: &MessageSearch,
    ) -> StoreResult<Vec<MessageHit>>;

    /// Up to `limit` conversations waiting for their vectors, oldest first, each leased to the
    /// caller until `now + lease_secs` (one another node holds is skipped).
    async fn lease_unembedded(
        &self, now: i64, lease_secs: i64, limit: u32,
    ) -> StoreResult<Vec<UnembeddedConversation>>;

    /// Saves a conversation's message vectors under `model` and takes it off the queue.
    async fn save_message_vectors(
        &self, conversation: &UnembeddedConversation, model: &str, vectors: &[(i64, Vec<u8>)],
    ) -> StoreResult<()>;

    /// Up to `limit` of the workspace's message vectors under `model`, of conversations that
    /// pass `search`'s filters, after `after` (conversation, index) in that order.
    async fn message_vectors(
        &self, workspace_id: &WorkspaceId, model: &str, search: &MessageSearch,
        after: Option<(&str, i64)>, limit: u32,
    ) -> StoreResult<Vec<MessageVector>>;
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn index_messages(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId,
        messages: &[(i64, String, String)],
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query("DELETE FROM conversation_messages WHERE conversation_id = $1")
                .bind(conversation_id.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM conversation_message_vectors WHERE conversation_id = $1")
                .bind(conversation_id.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO message_embedding_queue (conversation_id, workspace_id, queued_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (conversation_id) \
                 DO UPDATE SET queued_at = excluded.queued_at, leased_until = 0",
            )
            .bind(conversation_id.as_str())
            .bind(workspace_id.as_str())
            .bind(colloquy_core::time::now_secs())
            .execute(&mut *tx)
            .await?;
            for (index, role, message) in messages {
                sqlx::query(
                    "INSERT INTO conversation_messages (conversation_id, workspace_id, \
                     transcript_index, role, message) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(conversation_id.as_str())
                .bind(workspace_id.as_str())
                .bind(index)
                .bind(role)
                .bind(message)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
    }

    async fn search_messages(
        &self, workspace_id: &WorkspaceId, s: &MessageSearch,
    ) -> StoreResult<Vec<MessageHit>> {
        if s.words.is_empty() {
            return Ok(Vec::new());
        }
        if let Db::Postgres(_) = &self.db {
            return Ok(fetch_all!(self, search_query(&self.db, workspace_id, s, None))?);
        }
        // SQLite: ranking costs a few microseconds a match, so a word in every tenth message of
        // a million would cost hundreds of milliseconds. The newest matches are ranked first,
        // and more of them only when the filters leave the page short.
        let fts = fts_query(&s.words);
        for window in RANKED_WINDOWS {
            let cutoff = Query::new(
                format!(
                    "SELECT rowid FROM conversation_messages_fts \
                     WHERE conversation_messages_fts MATCH $1 ORDER BY rowid DESC LIMIT 1 OFFSET {}",
                    window - 1
                ),
                vec![Bind::Text(fts.clone())],
            );
            let since: Option<(i64,)> = fetch_optional!(self, cutoff)?;
            let hits: Vec<MessageHit> =
                fetch_all!(self, search_query(&self.db, workspace_id, s, since.map(|(r,)| r)))?;
            if since.is_none() || hits.len() >= s.limit as usize {
                return Ok(hits);
            }
        }
        Ok(fetch_all!(self, search_query(&self.db, workspace_id, s, None))?)
    }

    async fn lease_unembedded(
        &self, now: i64, lease_secs: i64, limit: u32,
    ) -> StoreResult<Vec<UnembeddedConversation>> {
        // Every node asks twice a second: an empty queue is answered by a read, and only a
        // queue with conversations in it takes the write lock to lease them.
        let q = Query::new(
            format!(
                "SELECT conversation_id, workspace_id FROM message_embedding_queue \
                 WHERE leased_until <= $1 ORDER BY queued_at LIMIT {limit}"
            ),
            vec![Bind::Int(now)],
        );
        let waiting: Vec<(String, String)> = fetch_all!(self, q)?;
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self, |tx| {
            let mut leased = Vec::with_capacity(waiting.len());
            for (conversation_id, workspace_id) in waiting {
                let taken = sqlx::query(
                    "UPDATE message_embedding_queue SET leased_until = $3 \
                     WHERE conversation_id = $1 AND leased_until <= $2",
                )
                .bind(&conversation_id)
                .bind(now)
                .bind(now + lease_secs)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken != 1 {
                    continue;
                }
                let messages: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT transcript_index, message FROM conversation_messages \
                     WHERE conversation_id = $1 ORDER BY transcript_index",
                )
                .bind(&conversation_id)
                .fetch_all(&mut *tx)
                .await?;
                leased.push(UnembeddedConversation {
                    conversation_id: conversation_id.into(),
                    workspace_id: workspace_id.into(),
                    messages,
                });
            }
            Ok(leased)
        })
    }

    async fn save_message_vectors(
        &self, conversation: &UnembeddedConversation, model: &str, vectors: &[(i64, Vec<u8>)],
    ) -> StoreResult<()> {
        let id = conversation.conversation_id.as_str();
        transaction!(self, |tx| {
            sqlx::query("DELETE FROM conversation_message_vectors WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (index, vector) in vectors {
                sqlx::query(
                    "INSERT INTO conversation_message_vectors (conversation_id, transcript_index, \
                     workspace_id, model, vector) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(index)
                .bind(conversation.workspace_id.as_str())
                .bind(model)
                .bind(vector)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM message_embedding_queue WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    async fn message_vectors(
        &self, workspace_id: &WorkspaceId, model: &str, s: &MessageSearch,
        after: Option<(&str, i64)>, limit: u32,
    ) -> StoreResult<Vec<MessageVector>> {
        let mut q = Query::in_workspace(
            "SELECT v.conversation_id, c.agent_id, c.agent_name, v.transcript_index, m.message, \
             c.started_at, v.vector FROM conversation_message_vectors v \
             JOIN conversation_messages m ON m.conversation_id = v.conversation_id \
             AND m.transcript_index = v.transcript_index \
             JOIN conversations c ON c.id = v.conversation_id \
             WHERE v.workspace_id = $1 AND c.deleted = FALSE",
            workspace_id,
        );
        q.push(" AND v.model = ?", Bind::Text(model.to_owned()));
        if let Some((conversation, index)) = after {
            let conversation = q.param(Bind::Text(conversation.to_owned()));
            let index = q.param(Bind::Int(index));
            q.raw(&format!(
                " AND (v.conversation_id > {conversation} OR (v.conversation_id = {conversation} \
                 AND v.transcript_index > {index}))"
            ));
        }
        filter_conversations(&mut q, s, &self.db);
        q.order_and_limit("v.conversation_id, v.transcript_index", limit);
        Ok(fetch_all!(self, q)?)
    }
}

/// The filters on what only the conversation's document holds: the agents that spoke in it,
/// their branches, its main language, whether it was text only, the client it started from.
fn filter_document(q: &mut Query, s: &MessageSearch, db: &Db) {
    let sqlite = matches!(db, Db::Sqlite { .. });
    for (key, values) in [("agent_id", &s.visited_agents), ("branch_id", &s.visited_branches)] {
        if values.is_empty() {
            continue;
        }
        if sqlite {
            q.raw(" AND EXISTS (SELECT 1 FROM json_each(c.document, '$.visited_agents') v WHERE 1 = 1");
            q.push_in(&format!("json_extract(v.value, '$.{key}')"), values);
        } else {
            q.raw(" AND EXISTS (SELECT 1 FROM jsonb_array_elements(c.document::jsonb -> 'visited_agents') AS v(item) WHERE 1 = 1");
            q.push_in(&format!("(v.item ->> '{key}')"), values);
        }
        q.raw(")");
    }
    if !s.languages.is_empty() {
        let language = if sqlite {
            "json_extract(c.document, '$.metadata.main_language')"
        } else {
            "(c.document::jsonb -> 'metadata' ->> 'main_language')"
        };
        q.push_in(language, &s.languages);
    }
    if let Some(text_only) = s.text_only {
        // JSON booleans read back as 1/0 on SQLite, as 'true'/'false' text on PostgreSQL.
        q.raw(match (sqlite, text_only) {
            (true, true) => " AND json_extract(c.document, '$.metadata.text_only') = 1",
            (true, false) => {
                " AND COALESCE(json_extract(c.document, '$.metadata.text_only'), 0) = 0"
            }
            (false, true) => " AND (c.document::jsonb -> 'metadata' ->> 'text_only') = 'true'",
            (false, false) => {
                " AND COALESCE(c.document::jsonb -> 'metadata' ->> 'text_only', 'false') = 'false'"
            }
        });
    }
    if let Some(source) = &s.initiation_source {
        let column = if sqlite {
            "json_extract(c.document, '$.conversation_initiation_client_data.source_info.source')"
        } else {
            "(c.document::jsonb -> 'conversation_initiation_client_data' -> 'source_info' ->> 'source')"
        };
        q.push_in(column, std::slice::from_ref(source));
    }
}

/// How many of the newest matching messages SQLite ranks, in turn, before ranking them all.
const RANKED_WINDOWS: [usize; 2] = [2_000, 50_000];

/// An FTS5 query for `words`: the words as a phrase, then each alone, any of them; bm25 adds
/// up what each matched, so the phrase ranks first. Quoted, so no operator can be injected.
fn fts_query(words: &[String]) -> String {
    let mut terms = vec![format!("\"{}\"", words.join(" "))];
    terms.extend(words.iter().map(|w| format!("\"{w}\"")));
    terms.join(" OR ")
}

/// The search of `s`, on SQLite among the matches from rowid `since` on.
fn search_query(
    db: &Db, workspace_id: &WorkspaceId, s: &MessageSearch, since: Option<i64>,
) -> Query {
    let columns = "m.conversation_id, c.agent_id, c.agent_name, m.transcript_index, m.message";
    let mut q = match db {
        Db::Sqlite { .. } => {
            let mut q = Query::in_workspace(
                format!(
                    "SELECT {columns}, -bm25(conversation_messages_fts) AS score, \
                     c.started_at FROM conversation_messages_fts \
                     JOIN conversation_messages m ON m.rowid = conversation_messages_fts.rowid \
                     JOIN conversations c ON c.id = m.conversation_id \
                     WHERE m.workspace_id = $1"
                ),
                workspace_id,
            );
            q.push(" AND conversation_messages_fts MATCH ?", Bind::Text(fts_query(&s.words)));
            if let Some(since) = since {
                q.push(" AND conversation_messages_fts.rowid >= ?", Bind::Int(since));
            }
            q
        }
        // PostgreSQL: any of the words, plus the phrase's rank on top.
        Db::Postgres(_) => {
            let mut q = Query::in_workspace(String::new(), workspace_id);
            let any = q.param(Bind::Text(s.words.join(" | ")));
            let phrase = q.param(Bind::Text(s.words.join(" ")));
            q.raw(&format!(
                "SELECT {columns}, (ts_rank(m.terms, to_tsquery('english', {any})) \
                 + ts_rank(m.terms, phraseto_tsquery('english', {phrase})))::float8 AS score, \
                 c.started_at FROM conversation_messages m \
                 JOIN conversations c ON c.id = m.conversation_id \
                 WHERE m.workspace_id = $1 AND m.terms @@ to_tsquery('english', {any})"
            ));
            q
        }
    };
    q.raw(" AND c.deleted = FALSE");
    filter_conversations(&mut q, s, db);
    let order = if s.by_start {
        "c.started_at DESC, m.conversation_id, m.transcript_index"
    } else {
        "score DESC, m.conversation_id, m.transcript_index"
    };
    q.order_and_limit(order, s.limit);
    q.raw(&format!(" OFFSET {}", s.offset));
    q
}

/// The search's conversation filters, over `c` (the conversation of each message).
fn filter_conversations(q: &mut Query, s: &MessageSearch, db: &Db) {
    filter_document(q, s, db);
    for (column, value) in [
        ("c.agent_id", &s.agent_id),
        ("c.call_successful", &s.call_successful),
        ("c.user_id", &s.user_id),
        ("c.branch_id", &s.branch_id),
        ("c.version_id", &s.version_id),
    ] {
        if let Some(v) = value {
            q.push(&format!(" AND {column} = ?"), Bind::Text(v.clone()));
        }
    }
    if let Some(before) = s.before {
        q.push(" AND c.started_at < ?", Bind::Int(before));
    }
    if let Some(after) = s.after {
        q.push(" AND c.started_at > ?", Bind::Int(after));
    }
    if let Some(min) = s.min_duration {
        q.push(" AND c.duration_secs >= ?", Bind::Int(min));
    }
    if let Some(max) = s.max_duration {
        q.push(" AND c.duration_secs <= ?", Bind::Int(max));
    }
    if !s.exclude_statuses.is_empty() {
        q.raw(" AND NOT (1 = 1");
        q.push_in("c.status", &s.exclude_statuses);
        q.raw(")");
    }
    if !s.termination_reasons.is_empty() {
        q.push_in("c.termination_reason", &s.termination_reasons);
    }
    let outcomes = ["", " AND NOT t.is_error", " AND t.is_error"];
    let by_name = s.tool_names.iter().zip(outcomes).map(|(v, o)| ("t.tool_name", v, o));
    let by_id = s.tool_ids.iter().zip(outcomes).map(|(v, o)| ("t.tool_id", v, o));
    for (column, names, outcome) in by_name.chain(by_id) {
        if !names.is_empty() {
            q.raw(" AND EXISTS (SELECT 1 FROM tool_executions t WHERE t.conversation_id = c.id");
            q.push_in(column, names);
            q.raw(outcome);
            q.raw(")");
        }
    }
}
