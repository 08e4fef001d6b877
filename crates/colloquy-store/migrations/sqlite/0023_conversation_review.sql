-- Conversation tags (/v1/convai/tags): a workspace's labels, and which conversations carry
-- which (deleting a tag takes its links with it).
CREATE TABLE conversation_tags (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    owner_user_id  TEXT NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX conversation_tags_by_workspace ON conversation_tags (workspace_id, created_at, id);

CREATE TABLE conversation_tag_links (
    conversation_id  TEXT NOT NULL,
    tag_id           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, tag_id)
);
CREATE INDEX conversation_tag_links_by_tag ON conversation_tag_links (tag_id, conversation_id);

-- Conversations live on some node now (/v1/convai/analytics/live-count): a row from the
-- socket's start to its end; each node marks its own rows seen every few seconds, so a killed
-- node's conversations stop counting once they are not seen for a minute.
CREATE TABLE live_conversations (
    conversation_id  TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    seen_at          INTEGER NOT NULL
);
CREATE INDEX live_conversations_by_agent ON live_conversations (workspace_id, agent_id);
CREATE INDEX live_conversations_by_node ON live_conversations (node_id);

-- The people who talked to agents (/v1/convai/users), read from the conversations.
CREATE INDEX conversations_by_user ON conversations (workspace_id, user_id, started_at);
