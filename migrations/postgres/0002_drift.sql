-- The drift engine's data: each sample's vector and scores, one baseline per prompt version,
-- and drift events.

ALTER TABLE samples ADD COLUMN embedding BYTEA;
ALTER TABLE samples ADD COLUMN model_id TEXT;
ALTER TABLE samples ADD COLUMN similarity DOUBLE PRECISION;
ALTER TABLE samples ADD COLUMN semantic_score DOUBLE PRECISION;
ALTER TABLE samples ADD COLUMN length_score DOUBLE PRECISION;
ALTER TABLE samples ADD COLUMN processed_at BIGINT;
ALTER TABLE samples ADD COLUMN error TEXT;

-- states: pending (waiting for an embedding) -> embedded (vector stored, waiting to be scored
-- in arrival order) -> done; failed = could not be embedded after several attempts.
CREATE INDEX samples_unscored ON samples(prompt_id, id) WHERE state IN ('pending', 'embedded');

CREATE TABLE prompt_baselines (
    prompt_id       BIGINT NOT NULL REFERENCES prompts(id),
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    sample_count    BIGINT NOT NULL,
    model_id        TEXT,
    semantic_score  DOUBLE PRECISION,
    length_score    DOUBLE PRECISION,
    -- the engine's serialised state (JSON): reference centroid, calibration, window, episodes
    state           TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE drift_events (
    id            BIGSERIAL PRIMARY KEY,
    project_id    BIGINT NOT NULL REFERENCES projects(id),
    prompt_id     BIGINT NOT NULL REFERENCES prompts(id),
    version       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    window_size   BIGINT NOT NULL,
    sample_id     BIGINT NOT NULL REFERENCES samples(id),
    switched_to   TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX drift_events_prompt ON drift_events(prompt_id, id);
