-- Every transcript message of a finished conversation, for searching the workspace's
-- conversations (/v1/convai/conversations/messages/text-search); written when the
-- conversation ends, removed with its content.
CREATE TABLE conversation_messages (
    conversation_id   TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    transcript_index  INTEGER NOT NULL,
    role              TEXT NOT NULL,
    message           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, transcript_index)
);

CREATE VIRTUAL TABLE conversation_messages_fts USING fts5(
    message, content = 'conversation_messages', content_rowid = 'rowid',
    tokenize = 'porter unicode61'
);
CREATE TRIGGER conversation_messages_fts_insert AFTER INSERT ON conversation_messages BEGIN
    INSERT INTO conversation_messages_fts (rowid, message) VALUES (new.rowid, new.message);
END;
CREATE TRIGGER conversation_messages_fts_delete AFTER DELETE ON conversation_messages BEGIN
    INSERT INTO conversation_messages_fts (conversation_messages_fts, rowid, message)
    VALUES ('delete', old.rowid, old.message);
END;
