-- Conversation state kept as the engine runs it: summary columns for lists and filters, and
-- the document (transcript, metadata, initiation data) for GET.
ALTER TABLE conversations ADD COLUMN agent_name TEXT;
ALTER TABLE conversations ADD COLUMN user_id TEXT;
ALTER TABLE conversations ADD COLUMN ended_at BIGINT;
ALTER TABLE conversations ADD COLUMN call_successful TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE conversations ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN duration_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN termination_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN feedback TEXT;
ALTER TABLE conversations ADD COLUMN document TEXT NOT NULL DEFAULT '{}';
CREATE INDEX conversations_by_start ON conversations (workspace_id, started_at, id);
