-- Semantic search of transcripts (/v1/convai/conversations/messages/smart-search): each
-- finished conversation waits in `message_embedding_queue` until a node's knowledge worker
-- computes its messages' vectors under the first embedding model the server has a provider
-- for. A conversation finished before any provider was configured waits, and is embedded once
-- one is. `leased_until` keeps two nodes from embedding the same conversation at once.
CREATE TABLE message_embedding_queue (
    conversation_id  TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    queued_at        BIGINT NOT NULL,
    leased_until     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX message_embedding_queue_by_time ON message_embedding_queue (queued_at);

CREATE TABLE conversation_message_vectors (
    conversation_id   TEXT NOT NULL,
    transcript_index  BIGINT NOT NULL,
    workspace_id      TEXT NOT NULL,
    model             TEXT NOT NULL,
    vector            BYTEA NOT NULL,
    PRIMARY KEY (conversation_id, transcript_index)
);
CREATE INDEX conversation_message_vectors_by_workspace
    ON conversation_message_vectors (workspace_id, model, conversation_id, transcript_index);

INSERT INTO message_embedding_queue (conversation_id, workspace_id, queued_at)
SELECT DISTINCT conversation_id, workspace_id, 0 FROM conversation_messages;
