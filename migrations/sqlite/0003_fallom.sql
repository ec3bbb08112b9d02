-- What the Fallom SDK and OpenTelemetry exporters need: model A/B configs with immutable
-- numbered versions, recorded session assignments, trace spans, per-session custom metrics,
-- and prompt templates with prompt A/B tests. JSON documents (variants, targeting, metadata,
-- attributes) are stored as TEXT so both backends read them the same way.

ALTER TABLE projects ADD COLUMN capture_content INTEGER NOT NULL DEFAULT 1;

CREATE TABLE model_configs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    key          TEXT NOT NULL,
    archived_at  INTEGER,
    created_at   INTEGER NOT NULL,
    UNIQUE (project_id, key)
);

CREATE TABLE model_config_versions (
    config_id   INTEGER NOT NULL REFERENCES model_configs(id),
    version     INTEGER NOT NULL,
    variants    TEXT NOT NULL,
    targeting   TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (config_id, version)
);

-- One row per (config, version, session); repeats of the same assignment only bump seen_count.
CREATE TABLE model_sessions (
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    config_key      TEXT NOT NULL,
    config_version  INTEGER NOT NULL,
    session_id      TEXT NOT NULL,
    assigned_model  TEXT NOT NULL,
    seen_count      INTEGER NOT NULL DEFAULT 1,
    first_seen_at   INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    PRIMARY KEY (project_id, config_key, config_version, session_id)
);
CREATE INDEX model_sessions_session ON model_sessions(project_id, config_key, session_id);

CREATE TABLE spans (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id            INTEGER NOT NULL REFERENCES projects(id),
    trace_id              TEXT NOT NULL,
    span_id               TEXT NOT NULL,
    parent_span_id        TEXT,
    source                TEXT NOT NULL,
    session_id            TEXT,
    customer_id           TEXT,
    config_key            TEXT,
    name                  TEXT NOT NULL,
    kind                  TEXT,
    model                 TEXT,
    start_ms              INTEGER NOT NULL,
    end_ms                INTEGER NOT NULL,
    duration_ms           INTEGER NOT NULL,
    status                TEXT NOT NULL,
    error_message         TEXT,
    time_to_first_token_ms INTEGER,
    is_streaming          INTEGER,
    input_tokens          INTEGER,
    output_tokens         INTEGER,
    total_tokens          INTEGER,
    request_text          TEXT,
    response_text         TEXT,
    metadata              TEXT,
    tags                  TEXT,
    prompt_key            TEXT,
    prompt_version        INTEGER,
    prompt_ab_test_key    TEXT,
    prompt_variant_index  INTEGER,
    attributes            TEXT NOT NULL,
    sample_id             INTEGER,
    received_at           INTEGER NOT NULL,
    -- a retried export stores nothing twice
    UNIQUE (project_id, trace_id, span_id)
);
-- the summary joins spans to assignments by (config, session); a trace's spans are found
-- through the unique key above
CREATE INDEX spans_session ON spans(project_id, config_key, session_id);

-- One row per trace, kept up to date in the transaction that stores its spans, so listing
-- traces reads an index instead of aggregating every span. Session, config and customer are
-- the first non-null values seen among the trace's spans.
CREATE TABLE traces (
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    trace_id       TEXT NOT NULL,
    start_ms       INTEGER NOT NULL,
    end_ms         INTEGER NOT NULL,
    span_count     INTEGER NOT NULL,
    error_count    INTEGER NOT NULL,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    session_id     TEXT,
    config_key     TEXT,
    customer_id    TEXT,
    root_name      TEXT,
    PRIMARY KEY (project_id, trace_id)
);
CREATE INDEX traces_recent ON traces(project_id, start_ms, trace_id);
CREATE INDEX traces_session ON traces(project_id, session_id, start_ms, trace_id);
CREATE INDEX traces_config ON traces(project_id, config_key, start_ms, trace_id);

-- Custom business metrics: the latest value of each field wins per (config, session).
CREATE TABLE session_metrics (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    config_key  TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    field       TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, config_key, session_id, field)
);

CREATE TABLE prompt_templates (
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    key            TEXT NOT NULL,
    version        INTEGER NOT NULL,
    system_prompt  TEXT NOT NULL,
    user_template  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (project_id, key, version)
);

CREATE TABLE prompt_ab_tests (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    variants    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, key, version)
);
