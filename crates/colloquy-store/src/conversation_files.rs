//! Files attached to a live conversation: stored whole (they are small, size-checked at
//! upload), taken by the `multimodal_message` that sends them, and withdrawable until then.

use async_trait::async_trait;

use colloquy_core::ids::{ConversationId, WorkspaceId};

use crate::db::{change_one, execute, transaction};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_all, fetch_optional};
use crate::{SqlStore, StoreError, StoreResult};

/// A file and its content.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConversationFile {
    /// `cfile_...`
    pub id: String,
    /// Its conversation.
    pub conversation_id: String,
    /// The name it was uploaded under.
    pub filename: String,
    /// Its type, read from its content.
    pub mime_type: String,
    /// Its size.
    pub size_bytes: i64,
    /// When it was uploaded (unix seconds).
    pub created_at: i64,
    /// When a message used it.
    pub used_at: Option<i64>,
    /// The bytes as uploaded.
    pub content: Vec<u8>,
}
sqlite_row!(ConversationFile {
    id,
    conversation_id,
    filename,
    mime_type,
    size_bytes,
    created_at,
    used_at,
    content
});

const COLUMNS: &str =
    "id, conversation_id, filename, mime_type, size_bytes, created_at, used_at, content";

/// Conversation files.
#[async_trait]
pub trait ConversationFileStore {
    /// The workspace and agent of the conversation `id` while it is in progress: a live
    /// conversation's participant may attach files without a key, as the official client does.
    async fn live_conversation(
        &self, id: &ConversationId,
    ) -> StoreResult<Option<(WorkspaceId, String)>>;

    /// Stores a file of a conversation of `workspace_id`.
    async fn insert_conversation_file(
        &self, workspace_id: &WorkspaceId, file: &ConversationFile,
    ) -> StoreResult<()>;

    /// How many files the conversation has had uploaded (withdrawn ones not counted).
    async fn count_conversation_files(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId,
    ) -> StoreResult<i64>;

    /// A file with its content.
    async fn conversation_file(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, id: &str,
    ) -> StoreResult<ConversationFile>;

    /// The files `ids` of the conversation, in that order, marked used at `now`; `NotFound`
    /// if one is not the conversation's (and then none is marked).
    async fn use_conversation_files(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, ids: &[String],
        now: i64,
    ) -> StoreResult<Vec<ConversationFile>>;

    /// Withdraws a file no message has used: `NotFound` if there is none, `Conflict` if a
    /// message used it.
    async fn delete_conversation_file(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, id: &str,
    ) -> StoreResult<()>;
}

#[async_trait]
impl ConversationFileStore for SqlStore {
    async fn live_conversation(
        &self, id: &ConversationId,
    ) -> StoreResult<Option<(WorkspaceId, String)>> {
        let q = Query::new(
            "SELECT workspace_id, agent_id FROM conversations \
             WHERE id = $1 AND status = 'in-progress' AND deleted = FALSE",
            vec![Bind::Text(id.as_str().to_owned())],
        );
        let found: Option<(String, String)> = fetch_optional!(self, q)?;
        Ok(found.map(|(w, agent)| (WorkspaceId::from(w), agent)))
    }

    async fn insert_conversation_file(
        &self, workspace_id: &WorkspaceId, row: &ConversationFile,
    ) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO conversation_files (id, conversation_id, workspace_id, filename, \
             mime_type, size_bytes, content, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &row.id,
            &row.conversation_id,
            workspace_id.as_str(),
            &row.filename,
            &row.mime_type,
            row.size_bytes,
            &row.content,
            row.created_at
        )?;
        Ok(())
    }

    async fn count_conversation_files(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId,
    ) -> StoreResult<i64> {
        let q = Query::scoped(
            "SELECT COUNT(*) FROM conversation_files WHERE workspace_id = $1 AND conversation_id = $2",
            workspace_id,
            conversation_id.as_str(),
        );
        let found: Option<(i64,)> = fetch_optional!(self, q)?;
        Ok(found.map_or(0, |(n,)| n))
    }

    async fn conversation_file(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, id: &str,
    ) -> StoreResult<ConversationFile> {
        let mut q = Query::scoped(
            format!(
                "SELECT {COLUMNS} FROM conversation_files \
                 WHERE workspace_id = $1 AND conversation_id = $2"
            ),
            workspace_id,
            conversation_id.as_str(),
        );
        q.push(" AND id = ?", Bind::Text(id.to_owned()));
        fetch_optional!(self, q)?.ok_or(StoreError::NotFound)
    }

    async fn use_conversation_files(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, ids: &[String],
        now: i64,
    ) -> StoreResult<Vec<ConversationFile>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Query::scoped(
            format!(
                "SELECT {COLUMNS} FROM conversation_files \
                 WHERE workspace_id = $1 AND conversation_id = $2"
            ),
            workspace_id,
            conversation_id.as_str(),
        );
        q.push_in("id", ids);
        let found: Vec<ConversationFile> = fetch_all!(self, q)?;
        let mut files = Vec::with_capacity(ids.len());
        for id in ids {
            let file = found.iter().find(|f| &f.id == id).ok_or(StoreError::NotFound)?;
            files.push(file.clone());
        }
        transaction!(self, |tx| {
            for id in ids {
                sqlx::query(
                    "UPDATE conversation_files SET used_at = $3 \
                     WHERE workspace_id = $1 AND id = $2 AND used_at IS NULL",
                )
                .bind(workspace_id.as_str())
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })?;
        Ok(files)
    }

    async fn delete_conversation_file(
        &self, workspace_id: &WorkspaceId, conversation_id: &ConversationId, id: &str,
    ) -> StoreResult<()> {
        let file = self.conversation_file(workspace_id, conversation_id, id).await?;
        if file.used_at.is_some() {
            return Err(StoreError::Conflict("a message has used the file".into()));
        }
        change_one!(
            self,
            "DELETE FROM conversation_files WHERE workspace_id = $1 AND id = $2 AND used_at IS NULL",
            workspace_id,
            id
        )
    }
}
