-- Auto-sync of URL documents: one with `sync_days` is read again by a knowledge-base worker
-- once `sync_due_at` has passed (a worker taking it moves `sync_due_at` past its lease, so one
-- node reads it). Folders keep the settings they pass on to the URL documents put in them,
-- with no due time. `sync_failures` counts the reads that failed in a row.
ALTER TABLE kb_documents ADD COLUMN sync_days INTEGER;
ALTER TABLE kb_documents ADD COLUMN sync_auto_remove INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kb_documents ADD COLUMN sync_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kb_documents ADD COLUMN sync_due_at INTEGER;
CREATE INDEX kb_documents_sync_due ON kb_documents (sync_due_at) WHERE sync_due_at IS NOT NULL;
