-- An agent's uploaded media: its widget avatar (POST /v1/convai/agents/{id}/avatar) and the
-- hold audio its callers hear (POST /v1/convai/agents/{id}/hold-audio), one of each kind,
-- replaced by the next upload. `id` is the start of the content's SHA-256: it is in the URL
-- the file is served at, so a new upload gets a new URL and a served file never changes.
CREATE TABLE agent_media (
    workspace_id       TEXT NOT NULL,
    agent_id           TEXT NOT NULL,
    kind               TEXT NOT NULL,
    id                 TEXT NOT NULL,
    filename           TEXT NOT NULL,
    mime_type          TEXT NOT NULL,
    size_bytes         BIGINT NOT NULL,
    duration_secs      DOUBLE PRECISION,
    content            BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, agent_id, kind)
);
CREATE INDEX agent_media_by_agent ON agent_media (agent_id, kind);
