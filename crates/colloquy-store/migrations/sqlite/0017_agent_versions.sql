-- Agent branches and versions (DESIGN.md §4.1 "Branches"). Every saved change of a branch is
-- an immutable version holding the whole document; a branch points at its head version, and a
-- commit moves the head only from the head its writer read (optimistic concurrency). The
-- `agents` row keeps a copy of the main branch's head, which every existing read uses.
-- `traffic_ppm` is the branch's share of new conversations in millionths (the deployment).
CREATE TABLE agent_branches (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    agent_id           TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL,
    created_by         TEXT NOT NULL REFERENCES users(id),
    created_at         INTEGER NOT NULL,
    last_committed_at  INTEGER NOT NULL,
    archived           BOOLEAN NOT NULL DEFAULT FALSE,
    protection_status  TEXT NOT NULL DEFAULT 'writer_perms_required',
    parent_branch_id   TEXT,
    head_version_id    TEXT NOT NULL,
    traffic_ppm        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX agent_branches_by_name ON agent_branches (agent_id, name);

CREATE TABLE agent_versions (
    id                       TEXT PRIMARY KEY,
    workspace_id             TEXT NOT NULL REFERENCES workspaces(id),
    agent_id                 TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    branch_id                TEXT NOT NULL,
    seq_no                   INTEGER NOT NULL,
    created_by               TEXT NOT NULL REFERENCES users(id),
    created_at               INTEGER NOT NULL,
    description              TEXT NOT NULL,
    in_branch_parent_id      TEXT,
    out_of_branch_parent_id  TEXT,
    merged_into_branch_id    TEXT,
    merged_from_branch_id    TEXT,
    merged_from_version_id   TEXT,
    rebased_from_version_id  TEXT,
    name                     TEXT NOT NULL,
    tags                     TEXT NOT NULL,
    archived                 BOOLEAN NOT NULL,
    voice_id                 TEXT NOT NULL,
    document                 TEXT NOT NULL
);
CREATE UNIQUE INDEX agent_versions_in_branch ON agent_versions (branch_id, seq_no);
CREATE INDEX agent_versions_by_agent ON agent_versions (agent_id);

-- A user's unsaved changes beside a branch head: the whole body as the user last wrote it.
CREATE TABLE agent_drafts (
    branch_id   TEXT NOT NULL REFERENCES agent_branches(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id),
    agent_id    TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (branch_id, user_id)
);

-- Each traffic split set, kept as the deployment history; `source` is what set it
-- (`manual`: a deployment request; `branch_merge`: a merged branch archived, its share moved to
-- main; `duplicate`).
CREATE TABLE agent_deployments (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    source        TEXT NOT NULL,
    split         TEXT NOT NULL
);
CREATE INDEX agent_deployments_by_agent ON agent_deployments (agent_id, created_at);

-- Agents saved before versions existed: their main branch with all the traffic, and their
-- current document as its first version.
INSERT INTO agent_branches (id, workspace_id, agent_id, name, description, created_by,
    created_at, last_committed_at, head_version_id, traffic_ppm)
SELECT main_branch_id, workspace_id, id, 'Main', '', created_by, created_at, updated_at,
    version_id, 1000000
FROM agents;
INSERT INTO agent_versions (id, workspace_id, agent_id, branch_id, seq_no, created_by,
    created_at, description, name, tags, archived, voice_id, document)
SELECT version_id, workspace_id, id, main_branch_id, 1, created_by, updated_at, '', name, tags,
    archived, voice_id, document
FROM agents;

-- Which version a conversation and a test invocation ran.
ALTER TABLE conversations ADD COLUMN version_id TEXT;
ALTER TABLE test_invocations ADD COLUMN version_id TEXT;
