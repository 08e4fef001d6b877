-- Procedures of an agent: instructions the agent starts and ends with the `start_procedure`
-- and `end_procedure` system tools. A procedure's content lives in immutable versions; an
-- agent version's `procedures` map names the procedure versions it has. Users edit drafts,
-- kept per procedure, branch and user, which the user's next commit of that branch publishes
-- as new versions (`removed`: the draft takes the procedure out of the branch).
CREATE TABLE agent_procedures (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL
);
CREATE INDEX agent_procedures_by_agent ON agent_procedures (agent_id);

CREATE TABLE procedure_versions (
    id                TEXT PRIMARY KEY,
    procedure_id      TEXT NOT NULL REFERENCES agent_procedures(id) ON DELETE CASCADE,
    created_by        TEXT NOT NULL REFERENCES users(id),
    created_at        INTEGER NOT NULL,
    name              TEXT NOT NULL,
    content           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    trigger_text      TEXT NOT NULL,
    folder_parent_id  TEXT
);
CREATE INDEX procedure_versions_by_procedure ON procedure_versions (procedure_id);

CREATE TABLE procedure_drafts (
    procedure_id      TEXT NOT NULL REFERENCES agent_procedures(id) ON DELETE CASCADE,
    branch_id         TEXT NOT NULL REFERENCES agent_branches(id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users(id),
    removed           BOOLEAN NOT NULL DEFAULT FALSE,
    name              TEXT NOT NULL,
    content           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    trigger_text      TEXT NOT NULL,
    folder_parent_id  TEXT,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (procedure_id, branch_id, user_id)
);
CREATE INDEX procedure_drafts_by_branch ON procedure_drafts (branch_id, user_id);
