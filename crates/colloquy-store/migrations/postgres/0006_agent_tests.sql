-- Agent tests and the folders they are organised in, in one table so a folder's listing (tests
-- and subfolders together) is one keyset-paged query.
CREATE TABLE test_entities (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces(id),
    -- 'llm', 'tool', 'simulation' or 'folder'.
    test_type         TEXT NOT NULL,
    is_folder         BIGINT NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    name_lower        TEXT NOT NULL,
    parent_folder_id  TEXT,
    created_by        TEXT NOT NULL REFERENCES users(id),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    document          TEXT NOT NULL
);
CREATE INDEX test_entities_by_created ON test_entities (workspace_id, created_at, id);
CREATE INDEX test_entities_by_parent ON test_entities (workspace_id, parent_folder_id, created_at, id);
