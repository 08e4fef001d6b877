-- A workspace's settings documents, by name: 'convai' (/v1/convai/settings) and 'dashboard'
-- (/v1/convai/settings/dashboard), each the wire document with its defaults filled.
-- `revision` moves with every write, so a PATCH commits only over the document it read.
CREATE TABLE workspace_settings (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    document      TEXT NOT NULL,
    revision      BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
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
    is_disabled           BIGINT NOT NULL,
    is_auto_disabled      BIGINT NOT NULL,
    -- NULL until a PATCH sets it: Colloquy then retries transient failures.
    retry_enabled         BIGINT,
    consecutive_failures  BIGINT NOT NULL,
    last_success_at       BIGINT,
    last_failure_code     BIGINT,
    last_failure_at       BIGINT,
    created_by            TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX workspace_webhooks_by_workspace ON workspace_webhooks (workspace_id, created_at, id);
