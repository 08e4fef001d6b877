//! Who may open a conversation with an agent without an API key: agents looked up by id alone,
//! share-link tokens, and single-use signed-URL signatures.

use async_trait::async_trait;

use colloquy_core::ids::{AgentId, WorkspaceId};

use crate::db::{execute, run};
use crate::{SqlStore, StoreResult};

/// Conversation access.
#[async_trait]
pub trait AccessStore {
    /// The workspace of an agent, whatever workspace it is in.
    async fn agent_workspace(&self, agent_id: &AgentId) -> StoreResult<Option<WorkspaceId>>;
    /// Whether `token` is the agent's share-link token.
    async fn check_link_token(&self, agent_id: &AgentId, token: &str) -> StoreResult<bool>;
    /// Stores a signature (by hash) for `agent_id`, valid until `expires_at`.
    async fn insert_signature(
        &self, token_hash: &str, workspace_id: &WorkspaceId, agent_id: &AgentId, expires_at: i64,
    ) -> StoreResult<()>;
    /// Uses up a signature: true when it existed for `agent_id`, was unused and unexpired at
    /// `now`. Each signature succeeds once, across every node.
    async fn consume_signature(
        &self, token_hash: &str, agent_id: &AgentId, now: i64,
    ) -> StoreResult<bool>;
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn agent_workspace(&self, agent_id: &AgentId) -> StoreResult<Option<WorkspaceId>> {
        Ok(run!(self, read, |pool| {
            sqlx::query_scalar::<_, String>("SELECT workspace_id FROM agents WHERE id = $1")
                .bind(agent_id.as_str())
                .fetch_optional(pool)
                .await
        })?
        .map(WorkspaceId::from))
    }

    async fn check_link_token(&self, agent_id: &AgentId, token: &str) -> StoreResult<bool> {
        let n: i64 = run!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE id = $1 AND link_token = $2")
                .bind(agent_id.as_str())
                .bind(token)
                .fetch_one(pool)
                .await
        })?;
        Ok(n > 0)
    }

    async fn insert_signature(
        &self, token_hash: &str, workspace_id: &WorkspaceId, agent_id: &AgentId, expires_at: i64,
    ) -> StoreResult<()> {
        execute!(
            self,
            "INSERT INTO conversation_signatures (token_hash, workspace_id, agent_id, expires_at) VALUES ($1, $2, $3, $4)",
            token_hash,
            workspace_id.as_str(),
            agent_id.as_str(),
            expires_at,
        )?;
        Ok(())
    }

    async fn consume_signature(
        &self, token_hash: &str, agent_id: &AgentId, now: i64,
    ) -> StoreResult<bool> {
        let done = execute!(
            self,
            "UPDATE conversation_signatures SET used_at = $3 \
             WHERE token_hash = $1 AND agent_id = $2 AND used_at IS NULL AND expires_at > $3",
            token_hash,
            agent_id.as_str(),
            now,
        )?;
        Ok(done == 1)
    }
}
