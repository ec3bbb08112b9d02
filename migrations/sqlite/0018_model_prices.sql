-- A project's own model prices (docs/cost.md): they replace or add to the list shipped with the
-- server (config/model-prices.toml) for that project. US dollars per million tokens; `model` is
-- the id as matched (lower case). Costs are priced when read, so a change applies to past spans.
CREATE TABLE model_prices (
    project_id     INTEGER NOT NULL REFERENCES projects(id),
    model          TEXT NOT NULL,
    input          REAL NOT NULL,
    output         REAL NOT NULL,
    cached_input   REAL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (project_id, model)
);
