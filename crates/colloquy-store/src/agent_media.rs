//! An agent's uploaded media (its widget avatar, its hold audio): one file of each kind per
//! agent, replaced by the next upload, served at a URL that names its content.

use async_trait::async_trait;

use colloquy_core::ids::{AgentId, WorkspaceId};

use crate::db::{change_one, execute};
use crate::inline::sqlite_row;
use crate::query::{Bind, Query, fetch_optional};
use crate::{SqlStore, StoreError, StoreResult};

/// A media file and its content.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AgentMedia {
    /// Its agent.
    pub agent_id: String,
    /// `avatar` or `hold_audio`.
    pub kind: String,
    /// The start of its content's SHA-256.
    pub id: String,
    /// The name it was uploaded under.
    pub filename: String,
    /// Its type, read from its content.
    pub mime_type: String,
    /// Its size.
    pub size_bytes: i64,
    /// How long it plays (audio).
    pub duration_secs: Option<f64>,
    /// The bytes as uploaded.
    pub content: Vec<u8>,
    /// When it was uploaded (unix seconds).
    pub created_at: i64,
}
sqlite_row!(AgentMedia {
    agent_id,
    kind,
    id,
    filename,
    mime_type,
    size_bytes,
    duration_secs,
    content,
    created_at
});

const COLUMNS: &str =
    "agent_id, kind, id, filename, mime_type, size_bytes, duration_secs, content, created_at";

/// Agents' media.
#[async_trait]
pub trait AgentMediaStore {
    /// Stores `media`, replacing the agent's file of its kind.
    async fn put_agent_media(
        &self, workspace_id: &WorkspaceId, media: &AgentMedia,
    ) -> StoreResult<()>;

    /// The agent's file of `kind`, if it has one.
    async fn agent_media(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, kind: &str,
    ) -> StoreResult<Option<AgentMedia>>;

    /// The file served at an agent's media URL, whoever asks (as a CDN would serve it): the
    /// URL names the agent, the kind and the content.
    async fn published_agent_media(
        &self, agent_id: &AgentId, kind: &str, id: &str,
    ) -> StoreResult<AgentMedia>;

    /// Removes the agent's file of `kind`: `NotFound` if it has none.
    async fn delete_agent_media(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, kind: &str,
    ) -> StoreResult<()>;
}

#[async_trait]
impl AgentMediaStore for SqlStore {
    async fn put_agent_media(&self, workspace_id: &WorkspaceId, m: &AgentMedia) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO agent_media (workspace_id, agent_id, kind, id, filename, mime_type, \
             size_bytes, duration_secs, content, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (workspace_id, agent_id, kind) DO UPDATE SET id = excluded.id, \
             filename = excluded.filename, mime_type = excluded.mime_type, \
             size_bytes = excluded.size_bytes, duration_secs = excluded.duration_secs, \
             content = excluded.content, created_at = excluded.created_at",
            workspace_id.as_str(),
            &m.agent_id,
            &m.kind,
            &m.id,
            &m.filename,
            &m.mime_type,
            m.size_bytes,
            m.duration_secs,
            &m.content,
            m.created_at
        )?;
        Ok(())
    }

    async fn agent_media(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, kind: &str,
    ) -> StoreResult<Option<AgentMedia>> {
        let mut q = Query::scoped(
            format!("SELECT {COLUMNS} FROM agent_media WHERE workspace_id = $1 AND agent_id = $2"),
            workspace_id,
            agent_id.as_str(),
        );
        q.push(" AND kind = ?", Bind::Text(kind.to_owned()));
        let found: Option<AgentMedia> = fetch_optional!(self, q)?;
        Ok(found)
    }

    async fn published_agent_media(
        &self, agent_id: &AgentId, kind: &str, id: &str,
    ) -> StoreResult<AgentMedia> {
        let q = Query::new(
            format!(
                "SELECT {COLUMNS} FROM agent_media WHERE agent_id = $1 AND kind = $2 AND id = $3"
            ),
            vec![
                Bind::Text(agent_id.as_str().to_owned()),
                Bind::Text(kind.to_owned()),
                Bind::Text(id.to_owned()),
            ],
        );
        fetch_optional!(self, q)?.ok_or(StoreError::NotFound)
    }

    async fn delete_agent_media(
        &self, workspace_id: &WorkspaceId, agent_id: &AgentId, kind: &str,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "DELETE FROM agent_media WHERE workspace_id = $1 AND agent_id = $2 AND kind = $3",
            workspace_id,
            agent_id.as_str(),
            kind
        )
    }
}
