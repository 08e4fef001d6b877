-- The Slack message or Zendesk ticket a conversation is about, as a canonical key
-- (colloquy_core::references), for GET /v1/convai/conversations/resolve.
ALTER TABLE conversations ADD COLUMN external_reference TEXT;
CREATE INDEX conversations_by_reference ON conversations (workspace_id, agent_id, external_reference)
    WHERE external_reference IS NOT NULL;
