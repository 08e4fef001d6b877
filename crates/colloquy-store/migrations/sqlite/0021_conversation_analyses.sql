-- A conversation's analysis (ConversationHistoryAnalysisCommonModel as JSON), kept beside
-- it; NULL until one succeeded.
ALTER TABLE conversations ADD COLUMN analysis TEXT;

-- Post-call analyses as leased jobs, one per conversation (id: the conversation's): any node's
-- analyser takes a queued job, or a held one whose lease ran out (its node died). A try that
-- failed and will be tried again is left held by nobody until its backoff ends, so it is taken
-- then like an expired lease. `deliver`: the post-call webhook waits for this analysis.
CREATE TABLE conversation_analyses (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    -- 'queued', 'running', 'succeeded' or 'failed'.
    status        TEXT NOT NULL,
    deliver       BOOLEAN NOT NULL,
    error         TEXT,
    worker        TEXT,
    lease_until   INTEGER,
    attempt       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX conversation_analyses_queue ON conversation_analyses (status, lease_until);
