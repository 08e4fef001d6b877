-- A workspace's settings documents, by name: 'convai' (/v1/convai/settings) and 'dashboard'
-- (/v1/convai/settings/dashboard), each the wire document with its defaults filled.
-- `revision` moves with every write, so a PATCH commits only over the document it read.
CREATE TABLE workspace_settings (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    document      TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

-- Workspace webhooks (/v1/workspace/webhooks): where post-call events are delivered, signed
-- with an HMAC secret sealed with the server's secret key (opened only to sign a delivery).
-- `consecutive_failures` and `last_success_at` decide the automatic disabling.
CREATE TABLE workspace_webhooks (
    id                    TEXT PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces(id),
    name                  TEXT NOT NULL,
    url                   TEXT NOT NULL,
    auth_type             TEXT NOT NULL,
    sealed_secret         TEXT NOT NULL,
    -- JSON object of header names to values.
    request_headers       TEXT NOT NULL,
    -- JSON array of WorkspaceWebhookEventType.
    events                TEXT NOT NULL,
    is_disabled           INTEGER NOT NULL,
    is_auto_disabled      INTEGER NOT NULL,
    -- NULL until a PATCH sets it: Colloquy then retries transient failures.
    retry_enabled         INTEGER,
    consecutive_failures  INTEGER NOT NULL,
    last_success_at       INTEGER,
    last_failure_code     INTEGER,
    last_failure_at       INTEGER,
    created_by            TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX workspace_webhooks_by_workspace ON workspace_webhooks (workspace_id, created_at, id);
