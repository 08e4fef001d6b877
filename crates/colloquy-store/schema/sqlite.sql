-- The schema the SQLite migrations leave on a fresh database, with their records: a new
-- database is made from this file in one transaction instead of replaying each migration
-- (crates/colloquy-store/src/snapshot.rs). Written by a replay, not by hand:
--   COLLOQUY_WRITE_SCHEMA=1 cargo test -p colloquy-store --lib snapshot

CREATE TABLE _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    token_hint    TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);

CREATE TABLE secrets (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    sealed_value  TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    name            TEXT NOT NULL,
    -- Lower-cased name for case-insensitive search, computed by the server (Unicode-aware).
    name_lower      TEXT NOT NULL,
    tags            TEXT NOT NULL,
    archived        BOOLEAN NOT NULL DEFAULT FALSE,
    voice_id        TEXT NOT NULL,
    created_by      TEXT NOT NULL REFERENCES users(id),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_call_time  INTEGER,
    call_count_7d   INTEGER NOT NULL DEFAULT 0,
    main_branch_id  TEXT NOT NULL,
    version_id      TEXT NOT NULL,
    link_token      TEXT,
    document        TEXT NOT NULL
);

CREATE TABLE agent_tags (
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tag           TEXT NOT NULL,
    PRIMARY KEY (agent_id, tag)
);

CREATE TABLE tools (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    name_lower    TEXT NOT NULL,
    tool_type     TEXT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    document      TEXT NOT NULL
, mcp_server_id TEXT REFERENCES mcp_servers(id));

CREATE TABLE agent_tools (
    agent_id  TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    tool_id   TEXT NOT NULL REFERENCES tools(id),
    PRIMARY KEY (agent_id, tool_id)
);

CREATE TABLE tool_secrets (
    tool_id    TEXT NOT NULL REFERENCES tools(id) ON DELETE CASCADE,
    secret_id  TEXT NOT NULL REFERENCES secrets(id),
    PRIMARY KEY (tool_id, secret_id)
);

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL,
    branch_id     TEXT,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    deleted       BOOLEAN NOT NULL DEFAULT FALSE
, agent_name TEXT, user_id TEXT, ended_at INTEGER, call_successful TEXT NOT NULL DEFAULT 'unknown', message_count INTEGER NOT NULL DEFAULT 0, duration_secs INTEGER NOT NULL DEFAULT 0, termination_reason TEXT NOT NULL DEFAULT '', feedback TEXT, document TEXT NOT NULL DEFAULT '{}', version_id TEXT, analysis TEXT, external_reference TEXT);

CREATE TABLE tool_executions (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL,
    tool_id            TEXT NOT NULL,
    tool_name          TEXT NOT NULL,
    tool_type          TEXT NOT NULL,
    tool_request_id    TEXT NOT NULL,
    conversation_id    TEXT NOT NULL,
    agent_id           TEXT NOT NULL,
    branch_id          TEXT,
    timestamp_ms       INTEGER NOT NULL,
    latency_us         INTEGER NOT NULL,
    status             TEXT NOT NULL,
    is_error           BOOLEAN NOT NULL,
    error_type         TEXT,
    error_message      TEXT,
    request_payload    TEXT,
    response_payload   TEXT,
    tool_call_details  TEXT
);

CREATE TABLE tool_stats (
    workspace_id      TEXT NOT NULL,
    tool_id           TEXT NOT NULL,
    total_calls       INTEGER NOT NULL,
    total_latency_us  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, tool_id)
);

CREATE TABLE conversation_signatures (
    token_hash    TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER
);

CREATE TABLE test_entities (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces(id),
    -- 'llm', 'tool', 'simulation' or 'folder'.
    test_type         TEXT NOT NULL,
    is_folder         INTEGER NOT NULL,
    name              TEXT NOT NULL,
    name_lower        TEXT NOT NULL,
    parent_folder_id  TEXT,
    created_by        TEXT NOT NULL REFERENCES users(id),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    document          TEXT NOT NULL
);

CREATE TABLE test_invocations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL,
    branch_id     TEXT,
    name          TEXT,
    repeat_count  INTEGER NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    document      TEXT NOT NULL
, version_id TEXT);

CREATE TABLE test_runs (
    id             TEXT PRIMARY KEY,
    invocation_id  TEXT NOT NULL REFERENCES test_invocations(id),
    workspace_id   TEXT NOT NULL,
    test_id        TEXT NOT NULL,
    test_name      TEXT NOT NULL,
    -- 'pending', 'running', 'passed', 'failed'.
    status         TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    worker         TEXT,
    lease_until    INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    result         TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE mcp_servers (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    document      TEXT NOT NULL
);

CREATE TABLE agent_mcp_servers (
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    mcp_server_id  TEXT NOT NULL REFERENCES mcp_servers(id),
    PRIMARY KEY (agent_id, mcp_server_id)
);

CREATE TABLE mcp_server_secrets (
    mcp_server_id  TEXT NOT NULL REFERENCES mcp_servers(id) ON DELETE CASCADE,
    secret_id      TEXT NOT NULL REFERENCES secrets(id),
    PRIMARY KEY (mcp_server_id, secret_id)
);

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
, sync_days INTEGER, sync_auto_remove INTEGER NOT NULL DEFAULT 0, sync_failures INTEGER NOT NULL DEFAULT 0, sync_due_at INTEGER);

CREATE TABLE kb_chunks (
    id            TEXT PRIMARY KEY,
    document_id   TEXT NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL,
    chunk_index   INTEGER NOT NULL,
    content       TEXT NOT NULL
);

CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(
    content, content = 'kb_chunks', content_rowid = 'rowid', tokenize = 'porter unicode61'
);

CREATE TABLE agent_documents (
    agent_id     TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    document_id  TEXT NOT NULL REFERENCES kb_documents(id),
    PRIMARY KEY (agent_id, document_id)
);

CREATE TABLE kb_rag_indexes (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    document_id   TEXT NOT NULL REFERENCES kb_documents(id),
    model         TEXT NOT NULL,
    -- RAGIndexStatus: 'created', 'processing', 'succeeded', 'failed', 'rag_limit_exceeded'.
    status        TEXT NOT NULL,
    progress      INTEGER NOT NULL,
    used_bytes    INTEGER NOT NULL,
    error         TEXT,
    worker        TEXT,
    lease_until   INTEGER,
    attempt       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (document_id, model)
);

CREATE TABLE kb_chunk_vectors (
    index_id      TEXT NOT NULL REFERENCES kb_rag_indexes(id),
    chunk_id      TEXT NOT NULL,
    document_id   TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    model         TEXT NOT NULL,
    vector        BLOB NOT NULL,
    PRIMARY KEY (index_id, chunk_id)
);

CREATE TABLE kb_crawl_jobs (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    seed_url          TEXT NOT NULL,
    pattern           TEXT,
    -- JSON array of regular expressions.
    exclude_patterns  TEXT NOT NULL,
    -- JSON array of sitemap URLs, read first (as pages of depth 0) for the pages they list.
    sitemap_urls      TEXT NOT NULL,
    max_depth         INTEGER NOT NULL,
    max_pages         INTEGER NOT NULL,
    root_folder_id    TEXT NOT NULL,
    -- CrawlStatus: 'queued', 'processing', 'succeeded', 'failed', 'cancelled'.
    status            TEXT NOT NULL,
    worker            TEXT,
    lease_until       INTEGER,
    attempt           INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE kb_crawl_pages (
    job_id       TEXT NOT NULL REFERENCES kb_crawl_jobs(id),
    url          TEXT NOT NULL,
    depth        INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    document_id  TEXT,
    PRIMARY KEY (job_id, url)
);

CREATE TABLE conversation_audio (
    conversation_id    TEXT PRIMARY KEY REFERENCES conversations(id),
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    content_type       TEXT NOT NULL,
    audio              BLOB NOT NULL,
    has_user_audio     BOOLEAN NOT NULL,
    has_response_audio BOOLEAN NOT NULL,
    created_at         BIGINT NOT NULL
);

CREATE TABLE changes (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    at_ms         BIGINT NOT NULL,
    actor_key_id  TEXT NOT NULL,
    actor_user_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    operation     TEXT NOT NULL,
    paths         TEXT NOT NULL
);

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

CREATE TABLE agent_drafts (
    branch_id   TEXT NOT NULL REFERENCES agent_branches(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id),
    agent_id    TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (branch_id, user_id)
);

CREATE TABLE agent_deployments (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL,
    source        TEXT NOT NULL,
    split         TEXT NOT NULL
);

CREATE TABLE agent_procedures (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    agent_id      TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_by    TEXT NOT NULL REFERENCES users(id),
    created_at    INTEGER NOT NULL
);

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

CREATE TABLE workspace_settings (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    document      TEXT NOT NULL,
    revision      INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE workspace_webhooks (
    id                    TEXT PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces(id),
    name                  TEXT NOT NULL,
    url                   TEXT NOT NULL,
    auth_type             TEXT NOT NULL,
    sealed_secret         TEXT NOT NULL,
    -- JSON object of header names to values.
    request_headers       TEXT NOT NULL,
    -- JSON array of WorkspaceWebhookEventType.
    events                TEXT NOT NULL,
    is_disabled           INTEGER NOT NULL,
    is_auto_disabled      INTEGER NOT NULL,
    -- NULL until a PATCH sets it: Colloquy then retries transient failures.
    retry_enabled         INTEGER,
    consecutive_failures  INTEGER NOT NULL,
    last_success_at       INTEGER,
    last_failure_code     INTEGER,
    last_failure_at       INTEGER,
    created_by            TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL REFERENCES workspaces(id),
    -- No foreign key: the log of a deleted webhook stays readable.
    webhook_id       TEXT NOT NULL,
    conversation_id  TEXT,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    -- 'pending', 'success' or 'failed'.
    status           TEXT NOT NULL,
    tries            INTEGER NOT NULL,
    due_at           INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE webhook_attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES webhook_deliveries(id),
    workspace_id     TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    conversation_id  TEXT,
    event_type       TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    status           TEXT NOT NULL,
    response_code    INTEGER,
    latency_ms       INTEGER,
    error            TEXT,
    response_body    TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE TABLE conversation_analyses (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    -- 'queued', 'running', 'succeeded' or 'failed'.
    status        TEXT NOT NULL,
    deliver       BOOLEAN NOT NULL,
    error         TEXT,
    worker        TEXT,
    lease_until   INTEGER,
    attempt       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE environments (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Moves when a variable's value for this environment changes.
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE environment_variables (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    label         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, label)
);

CREATE TABLE environment_variable_values (
    variable_id   TEXT NOT NULL REFERENCES environment_variables(id),
    environment   TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (variable_id, environment)
);

CREATE TABLE conversation_tags (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    owner_user_id  TEXT NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT,
    created_at     INTEGER NOT NULL
);

CREATE TABLE conversation_tag_links (
    conversation_id  TEXT NOT NULL,
    tag_id           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, tag_id)
);

CREATE TABLE live_conversations (
    conversation_id  TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    seen_at          INTEGER NOT NULL
);

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

CREATE TABLE triage_ticket_conversations (
    ticket_id        TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    PRIMARY KEY (ticket_id, conversation_id)
);

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

CREATE TABLE message_embedding_queue (
    conversation_id  TEXT PRIMARY KEY,
    workspace_id     TEXT NOT NULL,
    queued_at        INTEGER NOT NULL,
    leased_until     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE conversation_message_vectors (
    conversation_id   TEXT NOT NULL,
    transcript_index  INTEGER NOT NULL,
    workspace_id      TEXT NOT NULL,
    model             TEXT NOT NULL,
    vector            BLOB NOT NULL,
    PRIMARY KEY (conversation_id, transcript_index)
);

CREATE TABLE conversation_files (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    filename         TEXT NOT NULL,
    mime_type        TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    content          BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    used_at          INTEGER
);

CREATE TABLE agent_media (
    workspace_id       TEXT NOT NULL,
    agent_id           TEXT NOT NULL,
    kind               TEXT NOT NULL,
    id                 TEXT NOT NULL,
    filename           TEXT NOT NULL,
    mime_type          TEXT NOT NULL,
    size_bytes         INTEGER NOT NULL,
    duration_secs      REAL,
    content            BLOB NOT NULL,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, agent_id, kind)
);

CREATE TABLE tool_call_days (
    workspace_id   TEXT NOT NULL,
    day            INTEGER NOT NULL,
    tool_id        TEXT NOT NULL,
    tool_name      TEXT NOT NULL,
    calls          INTEGER NOT NULL DEFAULT 0,
    errors         INTEGER NOT NULL DEFAULT 0,
    latency_us_sum INTEGER NOT NULL DEFAULT 0,
    b0            INTEGER NOT NULL DEFAULT 0,
    b1            INTEGER NOT NULL DEFAULT 0,
    b2            INTEGER NOT NULL DEFAULT 0,
    b3            INTEGER NOT NULL DEFAULT 0,
    b4            INTEGER NOT NULL DEFAULT 0,
    b5            INTEGER NOT NULL DEFAULT 0,
    b6            INTEGER NOT NULL DEFAULT 0,
    b7            INTEGER NOT NULL DEFAULT 0,
    b8            INTEGER NOT NULL DEFAULT 0,
    b9            INTEGER NOT NULL DEFAULT 0,
    b10           INTEGER NOT NULL DEFAULT 0,
    b11           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, tool_id)
);

CREATE TABLE conversation_days (
    workspace_id   TEXT NOT NULL,
    day            INTEGER NOT NULL,
    started        INTEGER NOT NULL DEFAULT 0,
    successes      INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day)
);

CREATE INDEX api_keys_by_creation ON api_keys (created_at, id);

CREATE INDEX secrets_by_name ON secrets (workspace_id, name, id);

CREATE UNIQUE INDEX agents_by_link_token ON agents (link_token);

CREATE INDEX agent_tags_by_tag ON agent_tags (tag, agent_id);

CREATE INDEX tools_by_created ON tools (workspace_id, created_at, id);

CREATE INDEX tools_by_name ON tools (workspace_id, name, id);

CREATE INDEX agent_tools_by_tool ON agent_tools (tool_id, agent_id);

CREATE INDEX tool_secrets_by_secret ON tool_secrets (secret_id, tool_id);

CREATE INDEX conversations_by_agent ON conversations (workspace_id, agent_id, started_at, id);

CREATE INDEX tool_executions_by_tool ON tool_executions (workspace_id, tool_id, timestamp_ms, id);

CREATE INDEX tool_executions_by_tool_agent ON tool_executions (workspace_id, tool_id, agent_id, timestamp_ms, id);

CREATE INDEX tool_executions_by_tool_error ON tool_executions (workspace_id, tool_id, is_error, timestamp_ms, id);

CREATE INDEX tool_executions_by_conversation ON tool_executions (conversation_id, timestamp_ms, id);

CREATE INDEX conversations_by_start ON conversations (workspace_id, started_at, id);

CREATE INDEX test_entities_by_created ON test_entities (workspace_id, created_at, id);

CREATE INDEX test_entities_by_parent ON test_entities (workspace_id, parent_folder_id, created_at, id);

CREATE INDEX test_invocations_by_created ON test_invocations (workspace_id, created_at, id);

CREATE INDEX test_runs_by_invocation ON test_runs (invocation_id, created_at, id);

CREATE INDEX test_runs_queue ON test_runs (status, created_at);

CREATE INDEX mcp_servers_by_created ON mcp_servers (workspace_id, created_at, id);

CREATE INDEX agent_mcp_servers_by_server ON agent_mcp_servers (mcp_server_id, agent_id);

CREATE INDEX mcp_server_secrets_by_secret ON mcp_server_secrets (secret_id, mcp_server_id);

CREATE INDEX tools_by_mcp_server ON tools (mcp_server_id);

CREATE INDEX agents_by_created ON agents (workspace_id, archived, created_at, id,
    name, tags, voice_id, created_by, updated_at, last_call_time, call_count_7d);

CREATE INDEX agents_by_updated ON agents (workspace_id, archived, updated_at, id,
    name, tags, voice_id, created_by, created_at, last_call_time, call_count_7d);

CREATE INDEX agents_by_name ON agents (workspace_id, archived, name, id,
    tags, voice_id, created_by, created_at, updated_at, last_call_time, call_count_7d);

CREATE INDEX agents_by_calls ON agents (workspace_id, archived, call_count_7d, id,
    name, tags, voice_id, created_by, created_at, updated_at, last_call_time);

CREATE INDEX kb_documents_by_created ON kb_documents (workspace_id, created_at, id);

CREATE INDEX kb_documents_by_parent ON kb_documents (workspace_id, parent_id, created_at, id);

CREATE INDEX kb_chunks_by_document ON kb_chunks (document_id, chunk_index);

CREATE INDEX agent_documents_by_document ON agent_documents (document_id, agent_id);

CREATE INDEX kb_rag_indexes_queue ON kb_rag_indexes (status, lease_until);

CREATE INDEX kb_rag_indexes_by_workspace ON kb_rag_indexes (workspace_id, model);

CREATE INDEX kb_chunk_vectors_by_document ON kb_chunk_vectors (workspace_id, model, document_id);

CREATE INDEX kb_crawl_jobs_queue ON kb_crawl_jobs (status, lease_until);

CREATE INDEX kb_crawl_jobs_by_workspace ON kb_crawl_jobs (workspace_id, created_at, id);

CREATE INDEX kb_crawl_pages_next ON kb_crawl_pages (job_id, status, depth, seq);

CREATE INDEX changes_by_time ON changes (workspace_id, at_ms, id);

CREATE INDEX kb_documents_sync_due ON kb_documents (sync_due_at) WHERE sync_due_at IS NOT NULL;

CREATE UNIQUE INDEX agent_branches_by_name ON agent_branches (agent_id, name);

CREATE UNIQUE INDEX agent_versions_in_branch ON agent_versions (branch_id, seq_no);

CREATE INDEX agent_versions_by_agent ON agent_versions (agent_id);

CREATE INDEX agent_deployments_by_agent ON agent_deployments (agent_id, created_at);

CREATE INDEX agent_procedures_by_agent ON agent_procedures (agent_id);

CREATE INDEX procedure_versions_by_procedure ON procedure_versions (procedure_id);

CREATE INDEX procedure_drafts_by_branch ON procedure_drafts (branch_id, user_id);

CREATE INDEX workspace_webhooks_by_workspace ON workspace_webhooks (workspace_id, created_at, id);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE due_at IS NOT NULL;

CREATE INDEX webhook_attempts_by_workspace ON webhook_attempts (workspace_id, created_at, id);

CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, attempt);

CREATE INDEX conversation_analyses_queue ON conversation_analyses (status, lease_until);

CREATE INDEX environment_variable_values_by_value ON environment_variable_values (value);

CREATE INDEX conversation_tags_by_workspace ON conversation_tags (workspace_id, created_at, id);

CREATE INDEX conversation_tag_links_by_tag ON conversation_tag_links (tag_id, conversation_id);

CREATE INDEX live_conversations_by_agent ON live_conversations (workspace_id, agent_id);

CREATE INDEX live_conversations_by_node ON live_conversations (node_id);

CREATE INDEX conversations_by_user ON conversations (workspace_id, user_id, started_at);

CREATE INDEX triage_tickets_by_workspace ON triage_tickets (workspace_id, created_at, id);

CREATE INDEX triage_tickets_by_agent ON triage_tickets (workspace_id, agent_id, created_at, id);

CREATE INDEX triage_ticket_conversations_by_conversation
    ON triage_ticket_conversations (conversation_id, ticket_id);

CREATE INDEX triage_ticket_notes_by_ticket ON triage_ticket_notes (ticket_id, at_ms, position);

CREATE INDEX message_embedding_queue_by_time ON message_embedding_queue (queued_at);

CREATE INDEX conversation_message_vectors_by_workspace
    ON conversation_message_vectors (workspace_id, model, conversation_id, transcript_index);

CREATE INDEX conversation_files_by_conversation ON conversation_files (conversation_id, created_at);

CREATE INDEX conversations_by_reference ON conversations (workspace_id, agent_id, external_reference)
    WHERE external_reference IS NOT NULL;

CREATE INDEX agent_media_by_agent ON agent_media (agent_id, kind);

CREATE INDEX test_runs_by_workspace ON test_runs (workspace_id, created_at);

CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts (kb_chunks_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;

CREATE TRIGGER conversation_messages_fts_insert AFTER INSERT ON conversation_messages BEGIN
    INSERT INTO conversation_messages_fts (rowid, message) VALUES (new.rowid, new.message);
END;

CREATE TRIGGER conversation_messages_fts_delete AFTER DELETE ON conversation_messages BEGIN
    INSERT INTO conversation_messages_fts (conversation_messages_fts, rowid, message)
    VALUES ('delete', old.rowid, old.message);
END;

CREATE TRIGGER conversation_days_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversation_days (workspace_id, day, started, successes, failures)
    VALUES (new.workspace_id, new.started_at / 86400, 1,
        new.call_successful = 'success', new.call_successful = 'failure')
    ON CONFLICT (workspace_id, day) DO UPDATE SET
        started = conversation_days.started + 1,
        successes = conversation_days.successes + excluded.successes,
        failures = conversation_days.failures + excluded.failures;
END;

CREATE TRIGGER conversation_days_outcome AFTER UPDATE OF call_successful ON conversations
WHEN old.call_successful IS NOT new.call_successful BEGIN
    UPDATE conversation_days SET
        successes = successes + (new.call_successful = 'success') - (old.call_successful = 'success'),
        failures = failures + (new.call_successful = 'failure') - (old.call_successful = 'failure')
    WHERE workspace_id = new.workspace_id AND day = new.started_at / 86400;
END;

INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (1, 'foundation', TRUE, X'8b6c5faab55d7a30a528d7f40997b8b2829604202bef4b86078af1d7b97a46bb1cc1048c532a875d6aedb7358dc61e27', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (2, 'agents', TRUE, X'cd71a33ddd479e74295e6ec2f5435a1d2ddb980d649bbe02a38ccec07f60b7f589fe555669d60217a1697ccb45bfaa88', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (3, 'tools audit', TRUE, X'45f4a50812c4e7f87c16ccb9ab22f7c4db9d13f1bdb00090da2b8d7dffaedfecd074a7d0722b0590790b9be88ecf0432', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (4, 'conversations', TRUE, X'e0161ad5bba47a5e625240bb2e7b2407ede99cc05970018a341a996c3006b3563ce07ba470e4dc04d7839666e5ca27e3', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (5, 'signed urls', TRUE, X'5c52aac3eefab258d0ff11a34e61499174bdbd2a6513a74ef57bd52ce3f102bf063261223d72dd199a7c16bfd136fa1c', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (6, 'agent tests', TRUE, X'46d868a73fc6a0c87480800891429f177e616ec6dfa4ad60d9d885a5d93fcdfc48bb620bcbbb5c1860176b955efa4f80', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (7, 'test runs', TRUE, X'fe37fd0d9ddb16dd9efd50283b25ff799ef5286c100bce0e95ef7a9ece2af2902084da2b4457e34477a700d0e3cdf409', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (8, 'mcp servers', TRUE, X'cdfdfa2ee4a3bf81b997c342a9b5a8faf270d31b27eb0952b9e89ddeeb0ac533ad93c83f825b7e80ea7b30ce5cc5bb1e', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9, 'agent list indexes', TRUE, X'0ffc4fde652ee876b76e6acde9ba4fff5e27c566a2bd0069c5793d4168991c57eb0cb8c8045ce0f3903cd791c1e0bf92', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (10, 'run status cancelled', TRUE, X'4a9b7b33515960b0938e9da11fde8abe81f682468643efa0bdf3bc4fee702581187d0af5eb504ce7345b5a82da0b815b', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (11, 'knowledge base', TRUE, X'1144024394bf8b026d2580ca82306be83925816c2c84a1df7086259dec03591038d2d191e8e095c83e3b1540554714a8', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (12, 'rag indexes', TRUE, X'20302effd32eb92b679b858fc6f8cff2a571fbe9f16c6af0a3000731f5de8b255fd4e178df7942c3e80e611ff936b226', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (13, 'crawl jobs', TRUE, X'd210374f0c7035a87dfc4cdb3152939d246fb52cbc9b91340502bdc41af47bb11765c4c38a24d251f37d6504eae50417', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (14, 'conversation audio', TRUE, X'71b1e6f913b25861724e37c6fe397e58e65f1eb32f5d77a41ba5533f42c704f315a13316f385406bb37ea9e4eb58f799', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (15, 'changes', TRUE, X'9be41db4b1dd88c43934285466b501c24d58d25bbfee32a686648be6d1c3b33eb891af1bee3f4ea887c00cd0df817274', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (16, 'kb auto sync', TRUE, X'dcfda7ae515ce8d13ffb27fd9f39d696906472da07517a504738ba7965d9ac16271fb0e8c2d6a82882775bda6984e6f1', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (17, 'agent versions', TRUE, X'20b493eacd1ac2c2affc5528c61002198d64b17cff64bff3eb774557fbceac42585f7343f2fdfdeb853b544f9e49d13c', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (18, 'procedures', TRUE, X'520e57e6c9ccfa6942fcb76f1777acfcd2b7ca7a5e812b9cf02111b93141cf9e59d0de1768f01614dd8cc6a86f828981', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (19, 'workspace settings webhooks', TRUE, X'fbe142e23ff62a20bb981aa3dbf88701d9894444ece84cddda9eb65ab881151939c5c24d562065eff3f3051228121401', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20, 'webhook deliveries', TRUE, X'ea5a9ca4f155ade49a30b9cd14dea829a453bb8f2d7bbd3e2a1cd269f2ec2b1e8956d9d61e0012917c87b95a4766efbb', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (21, 'conversation analyses', TRUE, X'0fbb4d1442d8b141fea4ca08f92af18fb48e7c4bb15289de797c800e66f426e3fbc64b90be83d952e24d9f84bd590b8a', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (22, 'environments', TRUE, X'a2bc2e0301ab7d8bce6b26276f49b9c77a767f4ba53231f405088444baa081cff0ae51a68de0cb73d6af8f99d5f9ef05', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (23, 'conversation review', TRUE, X'fea6d819e200e50982d46585e5dc2fd05674f089e351af64bf89c4f89dc434801bffca9bfcfb705e2f976f760e84a1c5', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (24, 'conversation messages', TRUE, X'73aedd7bd324ab9aa51bdc76f9c660b98aeb99fe26d32fb07a93c299416bf8984e69970ad8e6e4470a00eba2a281b0ac', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (25, 'triage tickets', TRUE, X'45fc19632fdaf22f4f678ed2b230d858d08305ce076da3c331a1bd07f1c14fef9f6694fd52d78f7541c0b3d9cdc5b7f6', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (26, 'message vectors', TRUE, X'801795c8c10d1bedf086cb38f24c159761a603f6d4c67615f44c4fd63051e0608f6ac59724fcbcbdb1d4f7a516305e83', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (27, 'conversation files', TRUE, X'172dd2eeeb92ce008817302331d70d09de317c7cbbb5ea03b6bc23204fa5fd429c28c454e3fc8e56113bcb476c13423b', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (28, 'conversation references', TRUE, X'286bf3369f0a3bf9f1b4b2cbfd876725b89354d14d751484d021d509f76dd53cdf360dfd3b956d6bb9537e171a2fa8c4', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (29, 'agent media', TRUE, X'5ff242d08bb1e834786d318107c68a04de38e13eefd02631cf6cb1b3c604ec0867d2cd85694027b4ab15f9a5b186cc82', 0);
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (30, 'daily stats', TRUE, X'57ecfa01ca3fb641e128f5b40dacebeab5e4b3e2aa52005f5e308242bd5aaff127decdc1f5ce3b3bc20d93718025217d', 0);
