-- A workspace's environments besides 'production', which every workspace has without a row.
CREATE TABLE environments (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    -- Moves when a variable's value for this environment changes.
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

-- Environment variables: a label that configurations name ({"env_var_label": ...}) and a
-- value per environment. `kind` is 'string' (the value is the text) or 'secret' (the value is
-- a workspace secret's id, opened only when a conversation uses it).
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
-- Deleting an environment removes its values; a secret in use cannot be deleted.
CREATE INDEX environment_variable_values_by_value ON environment_variable_values (value);
