-- MCP servers: the wire configuration (MCPServerConfig) plus listed columns. `version` makes
-- read-modify-write updates (approvals, tool configs) safe against concurrent writers.
CREATE TABLE mcp_servers (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT COLLATE "C" NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    document      TEXT NOT NULL
);
CREATE INDEX mcp_servers_by_created ON mcp_servers (workspace_id, created_at, id);

-- Which agents use which MCP servers (prompt.mcp_server_ids and native_mcp_server_ids).
CREATE TABLE agent_mcp_servers (
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    mcp_server_id  TEXT NOT NULL REFERENCES mcp_servers(id),
    PRIMARY KEY (agent_id, mcp_server_id)
);
CREATE INDEX agent_mcp_servers_by_server ON agent_mcp_servers (mcp_server_id, agent_id);

-- Which MCP servers refer to which secrets (url, secret_token, headers), for used_by and deletes.
CREATE TABLE mcp_server_secrets (
    mcp_server_id  TEXT NOT NULL REFERENCES mcp_servers(id) ON DELETE CASCADE,
    secret_id      TEXT NOT NULL REFERENCES secrets(id),
    PRIMARY KEY (mcp_server_id, secret_id)
);
CREATE INDEX mcp_server_secrets_by_secret ON mcp_server_secrets (secret_id, mcp_server_id);

-- The server a `type: "mcp"` tool calls.
ALTER TABLE tools ADD COLUMN mcp_server_id TEXT REFERENCES mcp_servers(id);
CREATE INDEX tools_by_mcp_server ON tools (mcp_server_id);
