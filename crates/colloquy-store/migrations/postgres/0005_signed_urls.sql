-- Signatures of signed conversation URLs: single-use and expiring, in the database so any node
-- can check one that another node issued.
CREATE TABLE conversation_signatures (
    token_hash    TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
