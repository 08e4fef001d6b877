//! Conversations as the engine runs them: who and where at the start ([`ConversationRecord`]),
//! what changes as they go on ([`ConversationProgress`]), summary columns for lists and the
//! document for GET.

use async_trait::async_trait;

use crate::db::{change_one, changed_one, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all, fetch_optional, find};
use colloquy_core::ids::{AgentId, ConversationId, WorkspaceId};

use crate::{SqlStore, StoreResult};

/// What a conversation is and where it comes from, fixed at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// UUIDv7.
    pub id: ConversationId,
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// The agent talked to.
    pub agent_id: AgentId,
    /// The agent's branch.
    pub branch_id: Option<String>,
    /// The version of the branch it ran.
    pub version_id: Option<String>,
    /// `ws`, `simulation` or `test`.
    pub source: String,
    /// Unix seconds.
    pub started_at: i64,
    /// The Slack message or Zendesk ticket it is about (`colloquy_core::references`).
    pub external_reference: Option<String>,
}

/// What changes as a conversation goes on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationProgress {
    /// `initiated`, `in-progress`, `processing`, `done` or `failed`.
    pub status: String,
    /// The agent's name at the start.
    pub agent_name: Option<String>,
    /// The end user's id, if the client gave one.
    pub user_id: Option<String>,
    /// Unix seconds of the end.
    pub ended_at: Option<i64>,
    /// `success`, `failure` or `unknown`.
    pub call_successful: String,
    /// Transcript entries.
    pub message_count: i64,
    /// Seconds from start to end (or to now).
    pub duration_secs: i64,
    /// Why it ended.
    pub termination_reason: String,
    /// Document: transcript, metadata extras, initiation data (JSON text).
    pub document: String,
}

/// A conversation as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationRow {
    /// UUIDv7.
    #[sqlx(try_from = "String")]
    pub id: ConversationId,
    /// The agent.
    #[sqlx(try_from = "String")]
    pub agent_id: AgentId,
    /// The agent's branch.
    pub branch_id: Option<String>,
    /// The version of the branch it ran.
    pub version_id: Option<String>,
    /// `ws`, `simulation` or `test`.
    pub source: String,
    /// Lifecycle status.
    pub status: String,
    /// Unix seconds.
    pub started_at: i64,
    /// The agent's name.
    pub agent_name: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Unix seconds.
    pub ended_at: Option<i64>,
    /// `success`, `failure` or `unknown`.
    pub call_successful: String,
    /// Transcript entries.
    pub message_count: i64,
    /// Seconds.
    pub duration_secs: i64,
    /// Why it ended.
    pub termination_reason: String,
    /// `like` or `dislike`.
    pub feedback: Option<String>,
    /// Document (empty in list rows).
    pub document: String,
    /// The last analysis that succeeded (`ConversationHistoryAnalysisCommonModel`, JSON).
    pub analysis: Option<String>,
}
sqlite_row!(ConversationRow {
    id,
    agent_id,
    branch_id,
    version_id,
    source,
    status,
    started_at,
    agent_name,
    user_id,
    ended_at,
    call_successful,
    message_count,
    duration_secs,
    termination_reason,
    feedback,
    document,
    analysis,
});

/// Filters of the conversations list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this agent's.
    pub agent_id: Option<AgentId>,
    /// Only with this outcome.
    pub call_successful: Option<String>,
    /// Started before (exclusive) this unix second.
    pub before: Option<i64>,
    /// Started after (exclusive) this unix second.
    pub after: Option<i64>,
    /// Sources to include.
    pub sources: Vec<String>,
    /// Only this end user's.
    pub user_id: Option<String>,
    /// Only those carrying any of these tags.
    pub tag_ids: Vec<String>,
}

/// A conversation's recording.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationAudio {
    /// Its MIME type.
    pub content_type: String,
    /// The file.
    pub audio: Vec<u8>,
    /// The user's voice is in it.
    pub has_user_audio: bool,
    /// The agent's voice is in it.
    pub has_response_audio: bool,
}
sqlite_row!(ConversationAudio { content_type, audio, has_user_audio, has_response_audio });

/// A conversation's state replaced: `$1` workspace, `$2` id, then the progress's columns.
const UPDATE_PROGRESS: &str = "UPDATE conversations SET status = $3, ended_at = $4, \
     call_successful = $5, message_count = $6, duration_secs = $7, termination_reason = $8, \
     document = $9 WHERE workspace_id = $1 AND id = $2 AND deleted = FALSE";

/// Conversations.
#[async_trait]
pub trait ConversationStore {
    /// Records a new conversation and marks its agent as called now.
    async fn start_conversation(
        &self, record: &ConversationRecord, state: &ConversationProgress,
    ) -> StoreResult<()>;
    /// Replaces a conversation's state.
    async fn update_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, state: &ConversationProgress,
    ) -> StoreResult<()>;
    /// Replaces the state of several conversations in one transaction (one commit for many
    /// conversations' turns). A conversation deleted meanwhile is passed over.
    async fn update_conversations(
        &self, updates: &[(WorkspaceId, ConversationId, ConversationProgress)],
    ) -> StoreResult<()>;
    /// Whether the workspace has this conversation (deleted ones it has not): a check that
    /// reads no document.
    async fn has_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<bool>;
    /// The agent's newest conversation about `reference` (a canonical key), if any.
    async fn conversation_by_reference(
        &self, workspace_id: &WorkspaceId, agent_id: &str, reference: &str,
    ) -> StoreResult<Option<ConversationId>>;
    /// One conversation with its document; deleted ones are not found.
    async fn get_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<ConversationRow>;
    /// Conversations newest first, after `(started_at, id)`.
    async fn list_conversations(
        &self, workspace_id: &WorkspaceId, filter: &ConversationFilter,
        after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<ConversationRow>>;
    /// Deletes a conversation's content: the transcript and the payloads of its tool calls go,
    /// the counts and latencies stay (DESIGN.md §4.1).
    async fn delete_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<()>;
    /// Records the end user's feedback.
    async fn set_conversation_feedback(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, feedback: Option<&str>,
    ) -> StoreResult<()>;
    /// Keeps a conversation's recording (replacing any earlier one).
    async fn save_conversation_audio(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, audio: &ConversationAudio,
    ) -> StoreResult<()>;
    /// A conversation's recording, if it has one; `with_audio` false reads only what it holds
    /// (the file comes back empty).
    async fn conversation_audio(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, with_audio: bool,
    ) -> StoreResult<Option<ConversationAudio>>;
}

const COLUMNS: &str = "id, agent_id, branch_id, version_id, source, status, started_at, agent_name, user_id, ended_at, \
     call_successful, message_count, duration_secs, termination_reason, feedback, analysis";

#[async_trait]
impl ConversationStore for SqlStore {
    async fn start_conversation(
        &self, c: &ConversationRecord, s: &ConversationProgress,
    ) -> StoreResult<()> {
        let week_ago = c.started_at - 7 * 86_400;
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO conversations (id, workspace_id, agent_id, branch_id, source, status, started_at, deleted, \
                 agent_name, user_id, ended_at, call_successful, message_count, duration_secs, termination_reason, document, \
                 version_id, external_reference) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(c.id.as_str())
            .bind(c.workspace_id.as_str())
            .bind(c.agent_id.as_str())
            .bind(&c.branch_id)
            .bind(&c.source)
            .bind(&s.status)
            .bind(c.started_at)
            .bind(&s.agent_name)
            .bind(&s.user_id)
            .bind(s.ended_at)
            .bind(&s.call_successful)
            .bind(s.message_count)
            .bind(s.duration_secs)
            .bind(&s.termination_reason)
            .bind(&s.document)
            .bind(&c.version_id)
            .bind(&c.external_reference)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE agents SET last_call_time = $3, call_count_7d = \
                 (SELECT COUNT(*) FROM conversations WHERE workspace_id = $1 AND agent_id = $2 AND started_at >= $4) \
                 WHERE workspace_id = $1 AND id = $2",
            )
            .bind(c.workspace_id.as_str())
            .bind(c.agent_id.as_str())
            .bind(c.started_at)
            .bind(week_ago)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn update_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, s: &ConversationProgress,
    ) -> StoreResult<()> {
        change_one!(
            self,
            UPDATE_PROGRESS,
            workspace_id,
            id.as_str(),
            &s.status,
            s.ended_at,
            &s.call_successful,
            s.message_count,
            s.duration_secs,
            &s.termination_reason,
            &s.document,
        )
    }

    async fn update_conversations(
        &self, updates: &[(WorkspaceId, ConversationId, ConversationProgress)],
    ) -> StoreResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        transaction!(self, |tx| {
            for (workspace_id, id, s) in updates {
                sqlx::query(UPDATE_PROGRESS)
                    .bind(workspace_id.as_str())
                    .bind(id.as_str())
                    .bind(&s.status)
                    .bind(s.ended_at)
                    .bind(&s.call_successful)
                    .bind(s.message_count)
                    .bind(s.duration_secs)
                    .bind(&s.termination_reason)
                    .bind(&s.document)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
    }

    async fn has_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<bool> {
        let q = Query::scoped(
            "SELECT COUNT(*) FROM conversations WHERE workspace_id = $1 AND id = $2 AND deleted = FALSE",
            workspace_id,
            id.as_str(),
        );
        let found: Vec<(i64,)> = fetch_all!(self, q)?;
        Ok(found.first().is_some_and(|(n,)| *n > 0))
    }

    async fn conversation_by_reference(
        &self, workspace_id: &WorkspaceId, agent_id: &str, reference: &str,
    ) -> StoreResult<Option<ConversationId>> {
        let mut q = Query::scoped(
            "SELECT id FROM conversations WHERE workspace_id = $1 AND agent_id = $2 AND deleted = FALSE",
            workspace_id,
            agent_id,
        );
        q.push(" AND external_reference = ?", Bind::Text(reference.to_owned()));
        q.order_and_limit("started_at DESC, id DESC", 1);
        let found: Option<(String,)> = fetch_optional!(self, q)?;
        Ok(found.map(|(id,)| ConversationId::from(id)))
    }

    async fn get_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<ConversationRow> {
        find!(
            self,
            format!(
                "SELECT {COLUMNS}, document FROM conversations WHERE workspace_id = $1 AND id = $2 AND deleted = FALSE"
            ),
            workspace_id,
            id.as_str()
        )
    }

    async fn list_conversations(
        &self, workspace_id: &WorkspaceId, filter: &ConversationFilter,
        after: Option<(i64, String)>, limit: u32,
    ) -> StoreResult<Vec<ConversationRow>> {
        let mut q = Query::in_workspace(
            format!(
                "SELECT {COLUMNS}, '' AS document FROM conversations WHERE workspace_id = $1 AND deleted = FALSE"
            ),
            workspace_id,
        );
        if let Some(a) = &filter.agent_id {
            q.push(" AND agent_id = ?", Bind::Text(a.to_string()));
        }
        if let Some(c) = &filter.call_successful {
            q.push(" AND call_successful = ?", Bind::Text(c.clone()));
        }
        if let Some(u) = &filter.user_id {
            q.push(" AND user_id = ?", Bind::Text(u.clone()));
        }
        if let Some(b) = filter.before {
            q.push(" AND started_at < ?", Bind::Int(b));
        }
        if let Some(a) = filter.after {
            q.push(" AND started_at > ?", Bind::Int(a));
        }
        if !filter.sources.is_empty() {
            q.push_in("source", &filter.sources);
        }
        if !filter.tag_ids.is_empty() {
            q.raw(
                " AND EXISTS (SELECT 1 FROM conversation_tag_links l \
                 WHERE l.conversation_id = conversations.id",
            );
            q.push_in("l.tag_id", &filter.tag_ids);
            q.raw(")");
        }
        if let Some((at, id)) = after {
            let a = q.param(Bind::Int(at));
            let i = q.param(Bind::Text(id));
            q.raw(&format!(" AND (started_at < {a} OR (started_at = {a} AND id < {i}))"));
        }
        q.order_and_limit("started_at DESC, id DESC", limit);
        Ok(fetch_all!(self, q)?)
    }

    async fn delete_conversation(
        &self, workspace_id: &WorkspaceId, id: &ConversationId,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            let done = sqlx::query(
                "UPDATE conversations SET deleted = TRUE, document = '{}', analysis = NULL \
                 WHERE workspace_id = $1 AND id = $2 AND deleted = FALSE",
            )
            .bind(workspace_id.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            changed_one(done)?;
            sqlx::query(
                "DELETE FROM conversation_audio WHERE workspace_id = $1 AND conversation_id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE tool_executions SET request_payload = NULL, response_payload = NULL, \
                 tool_call_details = NULL, error_message = NULL WHERE workspace_id = $1 AND conversation_id = $2",
            )
            .bind(workspace_id.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            for delete in [
                "DELETE FROM conversation_messages WHERE conversation_id = $1",
                "DELETE FROM conversation_message_vectors WHERE conversation_id = $1",
                "DELETE FROM message_embedding_queue WHERE conversation_id = $1",
                "DELETE FROM conversation_files WHERE conversation_id = $1",
            ] {
                sqlx::query(delete).bind(id.as_str()).execute(&mut *tx).await?;
            }
            Ok(())
        })
    }

    async fn set_conversation_feedback(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, feedback: Option<&str>,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "UPDATE conversations SET feedback = $3 WHERE workspace_id = $1 AND id = $2 AND deleted = FALSE",
            workspace_id,
            id.as_str(),
            feedback,
        )
    }

    async fn save_conversation_audio(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, a: &ConversationAudio,
    ) -> StoreResult<()> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO conversation_audio (conversation_id, workspace_id, content_type, audio, \
                 has_user_audio, has_response_audio, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (conversation_id) DO UPDATE SET content_type = excluded.content_type, \
                 audio = excluded.audio, has_user_audio = excluded.has_user_audio, \
                 has_response_audio = excluded.has_response_audio",
            )
            .bind(id.as_str())
            .bind(workspace_id.as_str())
            .bind(&a.content_type)
            .bind(&a.audio)
            .bind(a.has_user_audio)
            .bind(a.has_response_audio)
            .bind(colloquy_core::time::now_secs())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    async fn conversation_audio(
        &self, workspace_id: &WorkspaceId, id: &ConversationId, with_audio: bool,
    ) -> StoreResult<Option<ConversationAudio>> {
        let audio = if with_audio { "audio" } else { "substr(audio, 1, 0) AS audio" };
        let q = Query::scoped(
            format!(
                "SELECT content_type, {audio}, has_user_audio, has_response_audio FROM conversation_audio \
                 WHERE workspace_id = $1 AND conversation_id = $2"
            ),
            workspace_id,
            id.as_str(),
        );
        let found: Vec<ConversationAudio> = fetch_all!(self, q)?;
        Ok(found.into_iter().next())
    }
}
