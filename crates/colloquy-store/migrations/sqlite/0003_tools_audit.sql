-- Tools: the wire document ({tool_config, response_mocks}) plus listed columns.
CREATE TABLE tools (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    name_lower    TEXT NOT NULL,
    tool_type     TEXT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    document      TEXT NOT NULL
);
CREATE INDEX tools_by_created ON tools (workspace_id, created_at, id);
CREATE INDEX tools_by_name ON tools (workspace_id, name, id);

-- Which agents use which tools (conversation_config.agent.prompt.tool_ids).
CREATE TABLE agent_tools (
    agent_id  TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tool_id   TEXT NOT NULL REFERENCES tools(id),
    PRIMARY KEY (agent_id, tool_id)
);
CREATE INDEX agent_tools_by_tool ON agent_tools (tool_id, agent_id);

-- Which tools refer to which secrets (request headers), for `used_by` and delete checks.
CREATE TABLE tool_secrets (
    tool_id    TEXT NOT NULL REFERENCES tools(id) ON DELETE CASCADE,
    secret_id  TEXT NOT NULL REFERENCES secrets(id),
    PRIMARY KEY (tool_id, secret_id)
);
CREATE INDEX tool_secrets_by_secret ON tool_secrets (secret_id, tool_id);

-- Conversations: the columns the audit APIs need; the transcript arrives with the engine.
CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL,
    branch_id     TEXT,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    deleted       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX conversations_by_agent ON conversations (workspace_id, agent_id, started_at, id);

-- The tool-call audit log: append-only, one row per call of any kind.
CREATE TABLE tool_executions (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL,
    tool_id            TEXT NOT NULL,
    tool_name          TEXT NOT NULL,
    tool_type          TEXT NOT NULL,
    tool_request_id    TEXT NOT NULL,
    conversation_id    TEXT NOT NULL,
    agent_id           TEXT NOT NULL,
    branch_id          TEXT,
    timestamp_ms       INTEGER NOT NULL,
    latency_us         INTEGER NOT NULL,
    status             TEXT NOT NULL,
    is_error           BOOLEAN NOT NULL,
    error_type         TEXT,
    error_message      TEXT,
    request_payload    TEXT,
    response_payload   TEXT,
    tool_call_details  TEXT
);
CREATE INDEX tool_executions_by_tool ON tool_executions (workspace_id, tool_id, timestamp_ms, id);
CREATE INDEX tool_executions_by_tool_agent ON tool_executions (workspace_id, tool_id, agent_id, timestamp_ms, id);
CREATE INDEX tool_executions_by_tool_error ON tool_executions (workspace_id, tool_id, is_error, timestamp_ms, id);
CREATE INDEX tool_executions_by_conversation ON tool_executions (conversation_id, timestamp_ms, id);

-- Per-tool call counts and total latency, kept with each audit batch, so usage_stats is one
-- row read (and survives the blanking of deleted conversations).
CREATE TABLE tool_stats (
    workspace_id      TEXT NOT NULL,
    tool_id           TEXT NOT NULL,
    total_calls       INTEGER NOT NULL,
    total_latency_us  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, tool_id)
);
