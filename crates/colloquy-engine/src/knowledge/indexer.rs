//! The embedding indexer: a leased index's document chunks embedded batch by batch, each
//! batch saved with the progress, which also renews the lease; a lost lease stops the work,
//! and only the holder's finish counts.

use colloquy_core::ids::{DocumentId, WorkspaceId};
use colloquy_core::time;
use colloquy_store::RagIndexRow;

use super::embeddings;
use crate::EngineDeps;

/// Chunks embedded per request to the provider.
const BATCH: usize = 32;

/// Why an index was not computed.
enum Failure {
    /// The workspace's vectors would exceed `COLLOQUY_KB_MAX_INDEX_BYTES`.
    Limit(String),
    /// The provider or the store failed, or the document has no text.
    Failed(String),
}

#[tracing::instrument(name = "rag.index", skip_all, fields(index = %index.id, model = %index.model))]
pub(crate) async fn build(deps: &EngineDeps, index: &RagIndexRow) {
    let (status, error) = match compute(deps, index).await {
        Ok(true) => ("succeeded", None),
        // Another node holds it now; its finish is the one that counts.
        Ok(false) => return,
        Err(Failure::Limit(why)) => ("rag_limit_exceeded", Some(why)),
        Err(Failure::Failed(why)) => ("failed", Some(why)),
    };
    if let Err(e) =
        deps.store.finish_rag_index(index, status, error.as_deref(), time::now_secs()).await
    {
        tracing::warn!(error = %e, "could not finish an embedding index; its lease will run out");
    }
}

/// Embeds every chunk; `Ok(false)` when the lease was lost on the way.
async fn compute(deps: &EngineDeps, index: &RagIndexRow) -> Result<bool, Failure> {
    let failed = |e: &dyn std::fmt::Display| Failure::Failed(e.to_string());
    let workspace = WorkspaceId::from(index.workspace_id.as_str());
    let document = DocumentId::from(index.document_id.as_str());
    let chunks = deps
        .store
        .list_chunks(&workspace, &document, None, u32::MAX)
        .await
        .map_err(|e| failed(&e))?;
    if chunks.is_empty() {
        return Err(Failure::Failed("the document holds no text".into()));
    }
    let usage: i64 = deps
        .store
        .rag_usage(&workspace)
        .await
        .map_err(|e| failed(&e))?
        .iter()
        .map(|(_, bytes)| bytes)
        .sum();
    let mut added: i64 = 0;
    for (done, batch) in chunks.chunks(BATCH).enumerate() {
        let texts: Vec<String> = batch.iter().map(|c| c.content.clone()).collect();
        let vectors = deps.embeddings.embed(&index.model, &texts).await.map_err(|e| failed(&e))?;
        let rows: Vec<(String, Vec<u8>)> = batch
            .iter()
            .zip(&vectors)
            .map(|(c, v)| (c.id.clone(), embeddings::to_bytes(v)))
            .collect();
        added += rows.iter().map(|(_, v)| i64::try_from(v.len()).unwrap_or(i64::MAX)).sum::<i64>();
        let cap = deps.limits.kb_max_index_bytes;
        if usage + added > cap {
            return Err(Failure::Limit(format!(
                "the workspace's embedding indexes would exceed {cap} bytes (COLLOQUY_KB_MAX_INDEX_BYTES)"
            )));
        }
        let progress =
            i64::try_from((done * BATCH + batch.len()) * 100 / chunks.len()).unwrap_or(100);
        let lease_until = time::now_secs() + deps.limits.job_lease_secs;
        if !deps
            .store
            .save_vectors(index, &rows, progress, lease_until)
            .await
            .map_err(|e| failed(&e))?
        {
            return Ok(false);
        }
    }
    Ok(true)
}
