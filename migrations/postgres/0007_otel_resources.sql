-- An OTLP resource (service name, host, SDK, ...) is stored once per project and distinct
-- content, and spans point at it: copying it into every span let a small export with a big
-- resource become a trace hundreds of times its size.

CREATE TABLE otel_resources (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id),
    -- SHA-256 of the attributes' JSON: the same resource sent again is found, not copied
    hash        TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (project_id, hash)
);

ALTER TABLE spans ADD COLUMN resource_id BIGINT REFERENCES otel_resources(id);
