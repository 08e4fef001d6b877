//! Finished conversations' messages by meaning, for the transcripts' smart search: the node's
//! knowledge worker computes the vectors of conversations queued when they ended, under the
//! first of the reference's embedding models this server has a provider for, and a search
//! ranks the workspace's vectors against the query's. Without a provider nothing is computed
//! (the queue keeps the conversations until one is configured) and search stays lexical.

use colloquy_core::knowledge::EMBEDDING_MODELS;
use colloquy_core::time;
use colloquy_store::{MessageHit, MessageSearch, MessageVector, StoreError};

use super::embeddings::{self, Embeddings};
use crate::EngineDeps;

/// Conversations leased per round.
const CONVERSATIONS_PER_ROUND: u32 = 16;
/// Texts per request to the provider.
const TEXTS_PER_REQUEST: usize = 64;
/// Vectors read per page while ranking.
const VECTORS_PER_PAGE: u32 = 2_000;

/// The model messages are embedded with here, if any.
pub fn model(embeddings: &Embeddings) -> Option<&'static str> {
    EMBEDDING_MODELS.iter().copied().find(|m| embeddings.has(m))
}

/// Embeds one round of waiting conversations; whether there was any to embed. A provider
/// failure leaves them leased until their lease runs out, then they are tried again.
pub(crate) async fn embed_waiting(deps: &EngineDeps) -> bool {
    let Some(model) = model(&deps.embeddings) else { return false };
    let now = time::now_secs();
    let lease = deps.limits.job_lease_secs.max(60);
    let waiting = match deps.store.lease_unembedded(now, lease, CONVERSATIONS_PER_ROUND).await {
        Ok(waiting) => waiting,
        Err(e) => {
            tracing::warn!(error = %e, "could not lease conversations to embed");
            return false;
        }
    };
    if waiting.is_empty() {
        return false;
    }
    for conversation in &waiting {
        let mut vectors = Vec::with_capacity(conversation.messages.len());
        for batch in conversation.messages.chunks(TEXTS_PER_REQUEST) {
            let texts: Vec<String> = batch.iter().map(|(_, text)| text.clone()).collect();
            match deps.embeddings.embed(model, &texts).await {
                Ok(computed) => vectors.extend(
                    batch.iter().zip(computed).map(|((i, _), v)| (*i, embeddings::to_bytes(&v))),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, conversation_id = %conversation.conversation_id, "could not embed a conversation's messages");
                    return false;
                }
            }
        }
        if let Err(e) = deps.store.save_message_vectors(conversation, model, &vectors).await {
            tracing::warn!(error = %e, "could not save a conversation's message vectors");
        }
    }
    true
}

/// Why a search by meaning could not run.
#[derive(Debug, thiserror::Error)]
pub enum NearestError {
    /// No provider computes any of the reference's models.
    #[error("no embedding provider is configured")]
    NoModel,
    /// The provider failed on the query.
    #[error(transparent)]
    Provider(#[from] embeddings::EmbeddingsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `skip + take` messages of the workspace nearest `query` among the conversations
/// `search` filters, best first, score 1 − cosine distance. Every vector is read, a page at a
/// time, and only the best are kept, so memory stays bounded by the page and the result.
pub async fn nearest(
    deps: &EngineDeps, workspace_id: &colloquy_core::ids::WorkspaceId, search: &MessageSearch,
    query: &str, keep: usize,
) -> Result<Vec<MessageHit>, NearestError> {
    let model = model(&deps.embeddings).ok_or(NearestError::NoModel)?;
    let question = deps.embeddings.embed_one(model, query).await?;
    let question = embeddings::from_bytes(&embeddings::to_bytes(&question));
    let mut best: Vec<(f32, MessageVector)> = Vec::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let page = deps
            .store
            .message_vectors(
                workspace_id,
                model,
                search,
                after.as_ref().map(|(c, i)| (c.as_str(), *i)),
                VECTORS_PER_PAGE,
            )
            .await?;
        let full = page.len() == VECTORS_PER_PAGE as usize;
        after = page.last().map(|v| (v.conversation_id.clone(), v.transcript_index));
        for mut row in page {
            let distance = embeddings::distance(&question, &row.vector);
            row.vector = Vec::new();
            best.push((distance, row));
        }
        if best.len() > keep.saturating_mul(2).max(VECTORS_PER_PAGE as usize) {
            best.sort_by(|a, b| a.0.total_cmp(&b.0));
            best.truncate(keep);
        }
        if !full {
            break;
        }
    }
    best.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then_with(|| a.1.conversation_id.cmp(&b.1.conversation_id))
            .then_with(|| a.1.transcript_index.cmp(&b.1.transcript_index))
    });
    best.truncate(keep);
    Ok(best
        .into_iter()
        .map(|(distance, v)| MessageHit {
            conversation_id: v.conversation_id,
            agent_id: v.agent_id,
            agent_name: v.agent_name,
            transcript_index: v.transcript_index,
            message: v.message,
            score: f64::from(1.0 - distance),
            started_at: v.started_at,
        })
        .collect())
}
