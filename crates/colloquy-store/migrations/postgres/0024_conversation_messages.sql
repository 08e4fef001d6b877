-- Every transcript message of a finished conversation, for searching the workspace's
-- conversations (/v1/convai/conversations/messages/text-search); written when the
-- conversation ends, removed with its content.
CREATE TABLE conversation_messages (
    conversation_id   TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    transcript_index  BIGINT NOT NULL,
    role              TEXT NOT NULL,
    message           TEXT NOT NULL,
    terms             TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', message)) STORED,
    PRIMARY KEY (conversation_id, transcript_index)
);
CREATE INDEX conversation_messages_terms ON conversation_messages USING GIN (terms);
CREATE INDEX conversation_messages_by_workspace ON conversation_messages (workspace_id);
