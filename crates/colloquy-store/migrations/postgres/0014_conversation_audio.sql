-- Recordings of voice conversations (the agent's platform_settings.privacy.record_voice): the
-- whole conversation, both sides mixed, as one MP3 file served by
-- GET /v1/convai/conversations/{id}/audio. Deleting the conversation deletes its recording.
CREATE TABLE conversation_audio (
    conversation_id    TEXT PRIMARY KEY REFERENCES conversations(id),
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    content_type       TEXT NOT NULL,
    audio              BYTEA NOT NULL,
    has_user_audio     BOOLEAN NOT NULL,
    has_response_audio BOOLEAN NOT NULL,
    created_at         BIGINT NOT NULL
);
