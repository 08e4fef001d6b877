-- Workspaces, their users and the API keys that act as those users.
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    token_hint    TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_by_creation ON api_keys (created_at, id);

-- Workspace secrets; `sealed_value` is the AEAD-sealed value, never the plaintext.
CREATE TABLE secrets (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    -- Byte order, as SQLite sorts, so both backends page names identically.
    name          TEXT COLLATE "C" NOT NULL,
    sealed_value  TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX secrets_by_name ON secrets (workspace_id, name, id);
