-- Projects, API keys, prompts and samples. Times are Unix epoch milliseconds (INTEGER) so the
-- same queries run unchanged on SQLite and Postgres; booleans are 0/1 for the same reason.

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);

CREATE TABLE prompts (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id              INTEGER NOT NULL REFERENCES projects(id),
    name                    TEXT NOT NULL,
    active_prompt           TEXT NOT NULL DEFAULT 'a',
    status                  TEXT NOT NULL DEFAULT 'active',
    min_baseline_samples    INTEGER NOT NULL DEFAULT 30,
    drift_threshold         REAL NOT NULL DEFAULT 0.7,
    length_drift_threshold  REAL NOT NULL DEFAULT 1.5,
    auto_switch_enabled     INTEGER NOT NULL DEFAULT 1,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE samples (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects(id),
    prompt_id        INTEGER NOT NULL REFERENCES prompts(id),
    prompt_version   TEXT NOT NULL,
    input_text       TEXT,
    response_text    TEXT NOT NULL,
    model            TEXT,
    response_length  INTEGER NOT NULL,
    received_at      INTEGER NOT NULL,
    -- pending -> done | failed, driven by the embedding worker
    state            TEXT NOT NULL DEFAULT 'pending',
    claimed_until    INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX samples_prompt_version ON samples(prompt_id, prompt_version, id);
CREATE INDEX samples_pending ON samples(id) WHERE state = 'pending';
