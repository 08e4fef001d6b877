-- The change log: who created, updated or deleted which resource of a workspace, and which
-- JSON paths the request wrote (never their values). Read newest first by GET /api/changes.
CREATE TABLE changes (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    at_ms         BIGINT NOT NULL,
    actor_key_id  TEXT NOT NULL,
    actor_user_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    operation     TEXT NOT NULL,
    paths         TEXT NOT NULL
);
CREATE INDEX changes_by_time ON changes (workspace_id, at_ms, id);
