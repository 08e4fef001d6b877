-- Triage tickets (/v1/convai/triage-tickets): what a reviewer (or a failed evaluation) found
-- wrong in an agent's conversations. The ticket's own fields are one row; the conversations
-- it is about and everything said on it (comments, turn comments, status and priority
-- changes) are rows of their own, appended and never rewritten, so two reviewers commenting
-- at once both land.
CREATE TABLE triage_tickets (
    id                     TEXT PRIMARY KEY,
    workspace_id           TEXT NOT NULL REFERENCES workspaces(id),
    agent_id               TEXT NOT NULL,
    owner_user_id          TEXT NOT NULL,
    source                 TEXT NOT NULL,
    title                  TEXT,
    qa_comment             TEXT,
    status                 TEXT NOT NULL,
    priority               TEXT,
    -- 0 (none) to 4 (urgent): the priority sort.
    priority_rank          INTEGER NOT NULL,
    assignee_user_id       TEXT,
    merged_into_ticket_id  TEXT,
    first_seen             INTEGER,
    last_seen              INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX triage_tickets_by_workspace ON triage_tickets (workspace_id, created_at, id);
CREATE INDEX triage_tickets_by_agent ON triage_tickets (workspace_id, agent_id, created_at, id);

CREATE TABLE triage_ticket_conversations (
    ticket_id        TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    PRIMARY KEY (ticket_id, conversation_id)
);
CREATE INDEX triage_ticket_conversations_by_conversation
    ON triage_ticket_conversations (conversation_id, ticket_id);

-- kind: comment, turn_comment (turn_index, and tool_execution_id when it points at a tool
-- call), status or priority (text holds the new value).
CREATE TABLE triage_ticket_notes (
    id                 TEXT PRIMARY KEY,
    ticket_id          TEXT NOT NULL,
    kind               TEXT NOT NULL,
    turn_index         INTEGER,
    text               TEXT,
    tool_execution_id  TEXT,
    user_id            TEXT,
    -- Unix milliseconds: notes added within one second keep their order.
    at_ms              INTEGER NOT NULL,
    position           INTEGER NOT NULL
);
CREATE INDEX triage_ticket_notes_by_ticket ON triage_ticket_notes (ticket_id, at_ms, position);
