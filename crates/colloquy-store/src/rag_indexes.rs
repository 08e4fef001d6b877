//! Embedding indexes of documents and their vectors. An index is a leased job: a node's
//! indexer leases it, saves vectors batch by batch (each save renews the lease and fails once
//! the lease is lost), and finishes it; a job whose holder died is leased again when its lease
//! runs out, and starts over.

use async_trait::async_trait;

use colloquy_core::ids::{DocumentId, WorkspaceId};

use crate::db::{run, transaction};
use crate::jobs::{RAG_INDEXES, take_job};
use crate::query::{Query, bound};
use crate::{SqlStore, StoreError, StoreResult};

/// An index as read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RagIndexRow {
    /// Its id.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// The document indexed.
    pub document_id: String,
    /// The reference's embedding model name.
    pub model: String,
    /// `created`, `processing`, `succeeded`, `failed` or `rag_limit_exceeded`.
    pub status: String,
    /// Percent done.
    pub progress: i64,
    /// Bytes of vectors stored.
    pub used_bytes: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// The indexer holding it.
    pub worker: Option<String>,
    /// Leases taken so far; a save or finish names the one it holds.
    pub attempt: i64,
}

/// A stored vector with its chunk.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VectorRow {
    /// The chunk.
    pub chunk_id: String,
    /// Its document.
    pub document_id: String,
    /// Its text.
    pub content: String,
    /// Unit-length little-endian `f32`s.
    pub vector: Vec<u8>,
}

/// Embedding indexes.
#[async_trait]
pub trait RagIndexStore {
    /// The document's index for `model`, created (queued) if it has none, and queued again if
    /// it failed.
    async fn ensure_rag_index(
        &self, workspace_id: &WorkspaceId, document_id: &DocumentId, model: &str, new_id: &str,
        now: i64,
    ) -> StoreResult<RagIndexRow>;
    /// A document's indexes.
    async fn document_rag_indexes(
        &self, workspace_id: &WorkspaceId, document_id: &DocumentId,
    ) -> StoreResult<Vec<RagIndexRow>>;
    /// Deletes an index and its vectors; the index as it was.
    async fn delete_rag_index(
        &self, workspace_id: &WorkspaceId, document_id: &DocumentId, index_id: &str,
    ) -> StoreResult<RagIndexRow>;
    /// Bytes of vectors per model in the workspace.
    async fn rag_usage(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<(String, i64)>>;
    /// Leases the oldest queued index, or one whose lease ran out, for `worker`; its old
    /// vectors are dropped (the job starts over).
    async fn lease_rag_index(
        &self, worker: &str, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<RagIndexRow>>;
    /// Saves vectors as (chunk id, vector) and the progress, renewing the lease until
    /// `lease_until`; `false` when the lease was lost (nothing saved).
    async fn save_vectors(
        &self, index: &RagIndexRow, vectors: &[(String, Vec<u8>)], progress: i64, lease_until: i64,
    ) -> StoreResult<bool>;
    /// Ends a leased index with `status`; `false` when the lease was lost.
    async fn finish_rag_index(
        &self, index: &RagIndexRow, status: &str, error: Option<&str>, now: i64,
    ) -> StoreResult<bool>;
    /// The vectors of the finished `model` indexes of `documents` (of the whole workspace when
    /// `None`).
    async fn indexed_vectors(
        &self, workspace_id: &WorkspaceId, model: &str, documents: Option<&[DocumentId]>,
    ) -> StoreResult<Vec<VectorRow>>;
}

const COLUMNS: &str =
    "id, workspace_id, document_id, model, status, progress, used_bytes, error, worker, attempt";

#[async_trait]
impl RagIndexStore for SqlStore {
    async fn ensure_rag_index(
        &self, workspace_id: &WorkspaceId, document_id: &DocumentId, model: &str, new_id: &str,
        now: i64,
    ) -> StoreResult<RagIndexRow> {
        transaction!(self, |tx| {
            sqlx::query(
                "INSERT INTO kb_rag_indexes (id, workspace_id, document_id, model, status, progress, \
                 used_bytes, attempt, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'created', 0, 0, 0, $5, $5) \
                 ON CONFLICT (document_id, model) DO NOTHING",
            )
            .bind(new_id)
            .bind(workspace_id.as_str())
            .bind(document_id.as_str())
            .bind(model)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE kb_rag_indexes SET status = 'created', progress = 0, error = NULL, \
                 updated_at = $3 WHERE document_id = $1 AND model = $2 AND status = 'failed'",
            )
            .bind(document_id.as_str())
            .bind(model)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let row: RagIndexRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM kb_rag_indexes WHERE workspace_id = $1 AND document_id = $2 AND model = $3"
            )))
            .bind(workspace_id.as_str())
            .bind(document_id.as_str())
            .bind(model)
            .fetch_one(&mut *tx)
            .await?;
            Ok(row)
        })
    }

    async fn document_rag_indexes(
        &self, workspace_id: &WorkspaceId, document_id: &DocumentId,
    ) -> StoreResult<Vec<RagIndexRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM kb_rag_indexes WHERE workspace_id = $1 AND document_id = $2 \
             ORDER BY created_at, id"
        );
        Ok(run!(self, read, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(workspace_id.as_str())
                .bind(document_id.as_str())
                .fetch_all(pool)
                .await
        })?)
    }

    async fn delete_rag_index(
        &self, workspace_id: &WorkspaceId, document_id: &DocumentId, index_id: &str,
    ) -> StoreResult<RagIndexRow> {
        transaction!(self, |tx| {
            let row: Option<RagIndexRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM kb_rag_indexes WHERE workspace_id = $1 AND document_id = $2 AND id = $3"
            )))
            .bind(workspace_id.as_str())
            .bind(document_id.as_str())
            .bind(index_id)
            .fetch_optional(&mut *tx)
            .await?;
            let row = row.ok_or(StoreError::NotFound)?;
            sqlx::query("DELETE FROM kb_chunk_vectors WHERE index_id = $1")
                .bind(index_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM kb_rag_indexes WHERE id = $1")
                .bind(index_id)
                .execute(&mut *tx)
                .await?;
            Ok(row)
        })
    }

    async fn rag_usage(&self, workspace_id: &WorkspaceId) -> StoreResult<Vec<(String, i64)>> {
        Ok(run!(self, read, |pool| {
            sqlx::query_as(
                "SELECT model, CAST(SUM(used_bytes) AS BIGINT) FROM kb_rag_indexes \
                 WHERE workspace_id = $1 GROUP BY model ORDER BY model",
            )
            .bind(workspace_id.as_str())
            .fetch_all(pool)
            .await
        })?)
    }

    async fn lease_rag_index(
        &self, worker: &str, now: i64, lease_secs: i64,
    ) -> StoreResult<Option<RagIndexRow>> {
        transaction!(self, |tx| {
            let taken = take_job!(
                self,
                tx,
                RAG_INDEXES,
                ", progress = 0, used_bytes = 0",
                worker,
                now,
                lease_secs
            );
            let Some(id) = taken else { return Ok(None) };
            sqlx::query("DELETE FROM kb_chunk_vectors WHERE index_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let row: RagIndexRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM kb_rag_indexes WHERE id = $1"
            )))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            Ok(Some(row))
        })
    }

    async fn save_vectors(
        &self, index: &RagIndexRow, vectors: &[(String, Vec<u8>)], progress: i64, lease_until: i64,
    ) -> StoreResult<bool> {
        let bytes: usize = vectors.iter().map(|(_, v)| v.len()).sum();
        transaction!(self, |tx| {
            let held = sqlx::query(sqlx::AssertSqlSafe(
                RAG_INDEXES.held("progress = $4, lease_until = $5, used_bytes = used_bytes + $6"),
            ))
            .bind(&index.id)
            .bind(&index.worker)
            .bind(index.attempt)
            .bind(progress)
            .bind(lease_until)
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if held == 0 {
                return Ok(false);
            }
            for (chunk_id, vector) in vectors {
                sqlx::query(
                    "INSERT INTO kb_chunk_vectors (index_id, chunk_id, document_id, workspace_id, model, vector) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&index.id)
                .bind(chunk_id)
                .bind(&index.document_id)
                .bind(&index.workspace_id)
                .bind(&index.model)
                .bind(vector)
                .execute(&mut *tx)
                .await?;
            }
            Ok(true)
        })
    }

    async fn finish_rag_index(
        &self, index: &RagIndexRow, status: &str, error: Option<&str>, now: i64,
    ) -> StoreResult<bool> {
        let done = run!(self, write, |pool| {
            let done = sqlx::query(sqlx::AssertSqlSafe(RAG_INDEXES.held(
                "status = $4, error = $5, lease_until = NULL, updated_at = $6, \
                 progress = CASE WHEN $4 = 'succeeded' THEN 100 ELSE progress END",
            )))
            .bind(&index.id)
            .bind(&index.worker)
            .bind(index.attempt)
            .bind(status)
            .bind(error)
            .bind(now)
            .execute(pool)
            .await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        })?;
        Ok(done == 1)
    }

    async fn indexed_vectors(
        &self, workspace_id: &WorkspaceId, model: &str, documents: Option<&[DocumentId]>,
    ) -> StoreResult<Vec<VectorRow>> {
        const SELECT: &str = "SELECT v.chunk_id, v.document_id, c.content, v.vector FROM kb_chunk_vectors v \
             JOIN kb_rag_indexes i ON i.id = v.index_id JOIN kb_chunks c ON c.id = v.chunk_id \
             WHERE v.workspace_id = $1 AND i.status = 'succeeded'";
        let mut q = match documents {
            None => Query::in_workspace(SELECT, workspace_id),
            Some(documents) => match Query::among(SELECT, workspace_id, "v.document_id", documents)
            {
                Some(q) => q,
                None => return Ok(Vec::new()),
            },
        };
        q.push(" AND v.model = ?", crate::query::Bind::Text(model.to_owned()));
        Ok(run!(self, read, |pool| {
            bound!(sqlx::query_as(sqlx::AssertSqlSafe(q.sql.clone())), q).fetch_all(pool).await
        })?)
    }
}
