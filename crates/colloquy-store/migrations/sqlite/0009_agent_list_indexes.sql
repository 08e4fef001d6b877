-- The list orders' indexes also hold every column a list item shows, so a page is read from
-- the index alone. Without them each of a page's rows was a seek into the table, whose rows
-- (each with its whole document) sit about one to a page.
DROP INDEX agents_by_created;
DROP INDEX agents_by_updated;
DROP INDEX agents_by_name;
DROP INDEX agents_by_calls;
CREATE INDEX agents_by_created ON agents (workspace_id, archived, created_at, id,
    name, tags, voice_id, created_by, updated_at, last_call_time, call_count_7d);
CREATE INDEX agents_by_updated ON agents (workspace_id, archived, updated_at, id,
    name, tags, voice_id, created_by, created_at, last_call_time, call_count_7d);
CREATE INDEX agents_by_name ON agents (workspace_id, archived, name, id,
    tags, voice_id, created_by, created_at, updated_at, last_call_time, call_count_7d);
CREATE INDEX agents_by_calls ON agents (workspace_id, archived, call_count_7d, id,
    name, tags, voice_id, created_by, created_at, updated_at, last_call_time);
