-- Embedding indexes of knowledge-base documents, one per document and model, computed as
-- leased jobs: any node's indexer takes a job whose lease ran out (its node died).
CREATE TABLE kb_rag_indexes (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    document_id   TEXT NOT NULL REFERENCES kb_documents(id),
    model         TEXT NOT NULL,
    -- RAGIndexStatus: 'created', 'processing', 'succeeded', 'failed', 'rag_limit_exceeded'.
    status        TEXT NOT NULL,
    progress      BIGINT NOT NULL,
    used_bytes    BIGINT NOT NULL,
    error         TEXT,
    worker        TEXT,
    lease_until   BIGINT,
    attempt       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (document_id, model)
);
CREATE INDEX kb_rag_indexes_queue ON kb_rag_indexes (status, lease_until);
CREATE INDEX kb_rag_indexes_by_workspace ON kb_rag_indexes (workspace_id, model);

-- One vector per chunk and index: little-endian f32, unit length (exact search in process).
CREATE TABLE kb_chunk_vectors (
    index_id      TEXT NOT NULL REFERENCES kb_rag_indexes(id),
    chunk_id      TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    model         TEXT NOT NULL,
    vector        BYTEA NOT NULL,
    PRIMARY KEY (index_id, chunk_id)
);
CREATE INDEX kb_chunk_vectors_by_document ON kb_chunk_vectors (workspace_id, model, document_id);
