-- Agents: the wire document plus the columns lists filter, sort and join on.
CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    name            TEXT NOT NULL,
    -- Lower-cased name for case-insensitive search, computed by the server (Unicode-aware).
    name_lower      TEXT NOT NULL,
    tags            TEXT NOT NULL,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    voice_id        TEXT NOT NULL,
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_call_time  INTEGER,
    call_count_7d   INTEGER NOT NULL DEFAULT 0,
    main_branch_id  TEXT NOT NULL,
    version_id      TEXT NOT NULL,
    link_token      TEXT,
    document        TEXT NOT NULL
);
CREATE INDEX agents_by_created ON agents (workspace_id, archived, created_at, id);
CREATE INDEX agents_by_updated ON agents (workspace_id, archived, updated_at, id);
CREATE INDEX agents_by_name ON agents (workspace_id, archived, name, id);
CREATE INDEX agents_by_calls ON agents (workspace_id, archived, call_count_7d, id);
CREATE UNIQUE INDEX agents_by_link_token ON agents (link_token);

CREATE TABLE agent_tags (
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tag           TEXT NOT NULL,
    PRIMARY KEY (agent_id, tag)
);
CREATE INDEX agent_tags_by_tag ON agent_tags (tag, agent_id);
