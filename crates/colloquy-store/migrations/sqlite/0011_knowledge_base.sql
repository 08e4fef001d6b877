-- Knowledge-base documents and folders, one table so a folder's listing is one paged query.
-- `content` is the text a document was read as (extracted from its file or page); `source` the
-- uploaded file itself, served back by `source-file-url`.
CREATE TABLE kb_documents (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    -- 'file', 'url', 'text' or 'folder'.
    doc_type      TEXT NOT NULL,
    is_folder     INTEGER NOT NULL,
    name          TEXT NOT NULL,
    name_lower    TEXT NOT NULL,
    -- The folder holding it; the API keeps it pointing at a folder of the same workspace.
    parent_id     TEXT,
    url           TEXT,
    filename      TEXT,
    mime_type     TEXT,
    content       TEXT NOT NULL,
    source        BLOB,
    size_bytes    INTEGER NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX kb_documents_by_created ON kb_documents (workspace_id, created_at, id);
CREATE INDEX kb_documents_by_parent ON kb_documents (workspace_id, parent_id, created_at, id);

-- The chunks retrieval ranks (colloquy_core::chunking), indexed for full-text search.
CREATE TABLE kb_chunks (
    id            TEXT PRIMARY KEY,
    document_id   TEXT NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL,
    chunk_index   INTEGER NOT NULL,
    content       TEXT NOT NULL
);
CREATE INDEX kb_chunks_by_document ON kb_chunks (document_id, chunk_index);

CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(
    content, content = 'kb_chunks', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts (rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts (kb_chunks_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;

-- Which agents name which documents or folders (conversation_config.agent.prompt.knowledge_base).
CREATE TABLE agent_documents (
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    document_id  TEXT NOT NULL REFERENCES kb_documents(id),
    PRIMARY KEY (agent_id, document_id)
);
CREATE INDEX agent_documents_by_document ON agent_documents (document_id, agent_id);
