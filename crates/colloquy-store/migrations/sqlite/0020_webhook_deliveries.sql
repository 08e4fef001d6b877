-- Post-call events queued for a workspace webhook. A delivery is tried until it succeeds, fails
-- for good or runs out of tries; while 'pending', `due_at` is its next try, and a worker
-- taking it moves `due_at` past its lease (compare-and-swap), so one node sends each try and a
-- dead node's delivery is taken over. The payload is fixed when queued: every try sends the
-- same bytes under the same id (the receiver's idempotency key).
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces(id),
    -- No foreign key: the log of a deleted webhook stays readable.
    webhook_id       TEXT NOT NULL,
    conversation_id  TEXT,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    -- 'pending', 'success' or 'failed'.
    status           TEXT NOT NULL,
    tries            INTEGER NOT NULL,
    due_at           INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE due_at IS NOT NULL;

-- The delivery log: one row per try ('success' or 'failed', with what the receiver answered),
-- and one 'pending' row for the try a waiting delivery will make next.
CREATE TABLE webhook_attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES webhook_deliveries(id),
    workspace_id     TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    conversation_id  TEXT,
    event_type       TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    status           TEXT NOT NULL,
    response_code    INTEGER,
    latency_ms       INTEGER,
    error            TEXT,
    response_body    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_workspace ON webhook_attempts (workspace_id, created_at, id);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, attempt);
