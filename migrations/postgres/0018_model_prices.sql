-- A project's own model prices (docs/cost.md): they replace or add to the list shipped with the
-- server (config/model-prices.toml) for that project. US dollars per million tokens; `model` is
-- the id as matched (lower case). Costs are priced when read, so a change applies to past spans.
CREATE TABLE model_prices (
    project_id     BIGINT NOT NULL REFERENCES projects(id),
    model          TEXT NOT NULL,
    input          DOUBLE PRECISION NOT NULL,
    output         DOUBLE PRECISION NOT NULL,
    cached_input   DOUBLE PRECISION,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (project_id, model)
);
