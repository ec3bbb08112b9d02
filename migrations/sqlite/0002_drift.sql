-- The drift engine's data: each sample's vector and scores, one baseline per prompt version,
-- and drift events.

ALTER TABLE samples ADD COLUMN embedding BLOB;
ALTER TABLE samples ADD COLUMN model_id TEXT;
ALTER TABLE samples ADD COLUMN similarity REAL;
ALTER TABLE samples ADD COLUMN semantic_score REAL;
ALTER TABLE samples ADD COLUMN length_score REAL;
ALTER TABLE samples ADD COLUMN processed_at INTEGER;
ALTER TABLE samples ADD COLUMN error TEXT;

-- states: pending (waiting for an embedding) -> embedded (vector stored, waiting to be scored
-- in arrival order) -> done; failed = could not be embedded after several attempts.
CREATE INDEX samples_unscored ON samples(prompt_id, id) WHERE state IN ('pending', 'embedded');

CREATE TABLE prompt_baselines (
    prompt_id       INTEGER NOT NULL REFERENCES prompts(id),
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    sample_count    INTEGER NOT NULL,
    model_id        TEXT,
    semantic_score  REAL,
    length_score    REAL,
    -- the engine's serialised state (JSON): reference centroid, calibration, window, episodes
    state           TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE drift_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    prompt_id     INTEGER NOT NULL REFERENCES prompts(id),
    version       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    score         REAL NOT NULL,
    threshold     REAL NOT NULL,
    window_size   INTEGER NOT NULL,
    sample_id     INTEGER NOT NULL REFERENCES samples(id),
    switched_to   TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX drift_events_prompt ON drift_events(prompt_id, id);
