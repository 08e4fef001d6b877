-- Test invocations and their runs. Runs are durable jobs: workers lease them (status
-- 'running' with a lease deadline), a lease that expires makes the run available again, and a
-- run completes only from the lease that holds it (matched by worker and attempt).
CREATE TABLE test_invocations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL,
    branch_id     TEXT,
    name          TEXT,
    repeat_count  BIGINT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    document      TEXT NOT NULL
);
CREATE INDEX test_invocations_by_created ON test_invocations (workspace_id, created_at, id);

CREATE TABLE test_runs (
    id             TEXT PRIMARY KEY,
    invocation_id  TEXT NOT NULL REFERENCES test_invocations(id),
    workspace_id   TEXT NOT NULL,
    test_id        TEXT NOT NULL,
    test_name      TEXT NOT NULL,
    -- 'pending', 'running', 'passed', 'failed'.
    status         TEXT NOT NULL,
    attempt        BIGINT NOT NULL DEFAULT 0,
    worker         TEXT,
    lease_until    BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    result         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX test_runs_by_invocation ON test_runs (invocation_id, created_at, id);
CREATE INDEX test_runs_queue ON test_runs (status, created_at);
