-- Per-day counts for the dashboard's home page, kept as the data arrives so its charts read
-- a few rows a day however many conversations and tool calls there are:
-- - tool_call_days: per tool and day (UTC days since the epoch), the calls, failures, total
--   latency and a latency histogram (b0: up to 1 ms, then 2.5, 5, 10, 25, 50, 100, 250, 500 ms,
--   1 s, 2.5 s; b11: slower), added by the audit writer with each batch;
-- - conversation_days: per day started, conversations, and how many ended a success or a
--   failure, kept by triggers, since `call_successful` changes after the start (at the end,
--   and again when the analysis judges it).
-- Both are filled from the existing rows first.
CREATE TABLE tool_call_days (
    workspace_id   TEXT NOT NULL,
    day            INTEGER NOT NULL,
    tool_id        TEXT NOT NULL,
    tool_name      TEXT NOT NULL,
    calls          INTEGER NOT NULL DEFAULT 0,
    errors         INTEGER NOT NULL DEFAULT 0,
    latency_us_sum INTEGER NOT NULL DEFAULT 0,
    b0            INTEGER NOT NULL DEFAULT 0,
    b1            INTEGER NOT NULL DEFAULT 0,
    b2            INTEGER NOT NULL DEFAULT 0,
    b3            INTEGER NOT NULL DEFAULT 0,
    b4            INTEGER NOT NULL DEFAULT 0,
    b5            INTEGER NOT NULL DEFAULT 0,
    b6            INTEGER NOT NULL DEFAULT 0,
    b7            INTEGER NOT NULL DEFAULT 0,
    b8            INTEGER NOT NULL DEFAULT 0,
    b9            INTEGER NOT NULL DEFAULT 0,
    b10           INTEGER NOT NULL DEFAULT 0,
    b11           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, tool_id)
);
INSERT INTO tool_call_days (workspace_id, day, tool_id, tool_name, calls, errors, latency_us_sum, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11)
SELECT workspace_id, timestamp_ms / 86400000, tool_id, MAX(tool_name), COUNT(*),
    SUM(CASE WHEN is_error THEN 1 ELSE 0 END), SUM(latency_us),
    SUM(CASE WHEN latency_us <= 1000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 1000 AND latency_us <= 2500 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 2500 AND latency_us <= 5000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 5000 AND latency_us <= 10000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 10000 AND latency_us <= 25000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 25000 AND latency_us <= 50000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 50000 AND latency_us <= 100000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 100000 AND latency_us <= 250000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 250000 AND latency_us <= 500000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 500000 AND latency_us <= 1000000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 1000000 AND latency_us <= 2500000 THEN 1 ELSE 0 END),
    SUM(CASE WHEN latency_us > 2500000 THEN 1 ELSE 0 END)
FROM tool_executions GROUP BY workspace_id, timestamp_ms / 86400000, tool_id;

CREATE TABLE conversation_days (
    workspace_id   TEXT NOT NULL,
    day            INTEGER NOT NULL,
    started        INTEGER NOT NULL DEFAULT 0,
    successes      INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day)
);
INSERT INTO conversation_days (workspace_id, day, started, successes, failures)
SELECT workspace_id, started_at / 86400, COUNT(*),
    SUM(CASE WHEN call_successful = 'success' THEN 1 ELSE 0 END),
    SUM(CASE WHEN call_successful = 'failure' THEN 1 ELSE 0 END)
FROM conversations GROUP BY workspace_id, started_at / 86400;

-- Test runs by workspace and time, for the home page's "tests passing".
CREATE INDEX test_runs_by_workspace ON test_runs (workspace_id, created_at);

CREATE TRIGGER conversation_days_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversation_days (workspace_id, day, started, successes, failures)
    VALUES (new.workspace_id, new.started_at / 86400, 1,
        new.call_successful = 'success', new.call_successful = 'failure')
    ON CONFLICT (workspace_id, day) DO UPDATE SET
        started = conversation_days.started + 1,
        successes = conversation_days.successes + excluded.successes,
        failures = conversation_days.failures + excluded.failures;
END;
CREATE TRIGGER conversation_days_outcome AFTER UPDATE OF call_successful ON conversations
WHEN old.call_successful IS NOT new.call_successful BEGIN
    UPDATE conversation_days SET
        successes = successes + (new.call_successful = 'success') - (old.call_successful = 'success'),
        failures = failures + (new.call_successful = 'failure') - (old.call_successful = 'failure')
    WHERE workspace_id = new.workspace_id AND day = new.started_at / 86400;
END;
