-- OTLP log records (`POST /v1/logs`). GenAI content events among them carry an LLM call's
-- messages; their text is kept whole in request_text / response_text (bodies and attributes
-- are stored bounded, like span attributes), so joining them to their span gives the same
-- drift sample as content sent on the span itself.

CREATE TABLE log_records (
    id               BIGSERIAL PRIMARY KEY,
    project_id       BIGINT NOT NULL REFERENCES projects(id),
    -- hex ids; NULL for a record outside any trace
    trace_id         TEXT,
    span_id          TEXT,
    -- the event time, else the observed time, else arrival (epoch ms)
    time_ms          BIGINT NOT NULL,
    severity_number  BIGINT,
    severity_text    TEXT,
    event_name       TEXT,
    -- JSON: the body as sent (bounded), and the attributes (bounded, allowlisted without capture)
    body             TEXT,
    attributes       TEXT NOT NULL,
    scope_name       TEXT,
    resource_id      BIGINT REFERENCES otel_resources(id),
    -- the GenAI content a content event carries, whole (NULL for other records)
    request_text     TEXT,
    response_text    TEXT,
    -- SHA-256 of the record as received: an exporter's retry is found, not stored twice
    content_hash     TEXT NOT NULL,
    received_at      BIGINT NOT NULL,
    UNIQUE (project_id, content_hash)
);

CREATE INDEX log_records_by_trace ON log_records (project_id, trace_id, time_ms, id);
CREATE INDEX log_records_by_span ON log_records (project_id, trace_id, span_id);
