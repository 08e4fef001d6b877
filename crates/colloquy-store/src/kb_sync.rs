//! Auto-sync of URL documents (`enable_auto_sync`): each keeps how often it is read again,
//! whether it goes when its page does, its failures in a row and when it is next due. Any
//! node's knowledge-base worker takes a due document by moving its due time past a lease
//! (compare-and-swap, so two nodes never read one page at once) and records the outcome.

use async_trait::async_trait;
use colloquy_core::ids::{DocumentId, WorkspaceId};

use crate::db::{change_one, execute, transaction};
use crate::{SqlStore, StoreResult};

/// Seconds in a day, the unit of `minimum_frequency_days`.
pub const DAY_SECS: i64 = 86_400;

/// A document's or folder's auto-sync settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoSync {
    /// Read again at least this often (`minimum_frequency_days`, 1–180).
    pub days: i64,
    /// Delete the document when its page is gone (`auto_remove`).
    pub auto_remove: bool,
}

/// A URL document due to be read again.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueSync {
    /// The document.
    #[sqlx(try_from = "String")]
    pub id: DocumentId,
    /// Its workspace.
    #[sqlx(try_from = "String")]
    pub workspace_id: WorkspaceId,
    /// Its page.
    pub url: String,
    /// Its frequency, in days.
    pub days: i64,
    /// `auto_remove`, as 0 or 1.
    pub auto_remove: i64,
    /// Reads that failed in a row before this one.
    pub failures: i64,
}

/// Auto-sync of URL documents.
#[async_trait]
pub trait DocumentSyncStore {
    /// Sets (or with `None` turns off) a document's or folder's auto-sync; a URL document is
    /// next due `days` after `now`, and its failures are forgotten.
    async fn set_document_sync(
        &self, workspace_id: &WorkspaceId, id: &DocumentId, sync: Option<AutoSync>, now: i64,
    ) -> StoreResult<()>;
    /// Takes the URL document due longest ago, if one is due at `now`, moving its due time to
    /// `now + lease_secs` so no other worker takes it meanwhile.
    async fn take_due_sync(&self, now: i64, lease_secs: i64) -> StoreResult<Option<DueSync>>;
    /// Records a read's outcome: the failures in a row (0 after a success) and when it is due
    /// next.
    async fn finish_sync(&self, id: &DocumentId, failures: i64, due_at: i64) -> StoreResult<()>;
}

#[async_trait]
impl DocumentSyncStore for SqlStore {
    async fn set_document_sync(
        &self, workspace_id: &WorkspaceId, id: &DocumentId, sync: Option<AutoSync>, now: i64,
    ) -> StoreResult<()> {
        change_one!(
            self,
            "UPDATE kb_documents SET sync_days = $3, sync_auto_remove = $4, sync_failures = 0, \
             sync_due_at = CASE WHEN doc_type = 'url' AND $3 IS NOT NULL THEN $5 + $3 * $6 END \
             WHERE workspace_id = $1 AND id = $2",
            workspace_id,
            id.as_str(),
            sync.map(|s| s.days),
            i64::from(sync.is_some_and(|s| s.auto_remove)),
            now,
            DAY_SECS
        )
    }

    async fn take_due_sync(&self, now: i64, lease_secs: i64) -> StoreResult<Option<DueSync>> {
        transaction!(self, |tx| {
            let due: Option<(String, i64)> = sqlx::query_as(
                "SELECT id, sync_due_at FROM kb_documents \
                 WHERE sync_due_at IS NOT NULL AND sync_due_at <= $1 \
                 ORDER BY sync_due_at LIMIT 1",
            )
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, due_at)) = due else { return Ok(None) };
            let taken = sqlx::query(
                "UPDATE kb_documents SET sync_due_at = $3 WHERE id = $1 AND sync_due_at = $2",
            )
            .bind(&id)
            .bind(due_at)
            .bind(now + lease_secs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken != 1 {
                return Ok(None);
            }
            let row: Option<DueSync> = sqlx::query_as(
                "SELECT id, workspace_id, url, sync_days AS days, sync_auto_remove AS auto_remove, \
                 sync_failures AS failures FROM kb_documents WHERE id = $1 AND url IS NOT NULL",
            )
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
            Ok(row)
        })
    }

    async fn finish_sync(&self, id: &DocumentId, failures: i64, due_at: i64) -> StoreResult<()> {
        execute!(
            self,
            "UPDATE kb_documents SET sync_failures = $2, sync_due_at = $3 \
             WHERE id = $1 AND sync_days IS NOT NULL",
            id.as_str(),
            failures,
            due_at
        )?;
        Ok(())
    }
}
