-- Files a user attaches to a live conversation (POST /v1/convai/conversations/{id}/files),
-- then sends with a `multimodal_message`; `used_at` is set when a message used it (after
-- which it can no longer be withdrawn). Removed with the conversation's content.
CREATE TABLE conversation_files (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    filename         TEXT NOT NULL,
    mime_type        TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    content          BYTEA NOT NULL,
    created_at       BIGINT NOT NULL,
    used_at          BIGINT
);
CREATE INDEX conversation_files_by_conversation ON conversation_files (conversation_id, created_at);
