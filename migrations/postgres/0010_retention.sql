-- Retention: each project may override the server's age limits (NULL = the server default,
-- 0 = keep forever), and the pruner finds old rows by index, in small batches.
ALTER TABLE projects ADD COLUMN retention_samples_days BIGINT;
ALTER TABLE projects ADD COLUMN retention_traces_days BIGINT;
ALTER TABLE projects ADD COLUMN retention_sessions_days BIGINT;
ALTER TABLE projects ADD COLUMN retention_metrics_days BIGINT;

CREATE INDEX samples_received ON samples(project_id, received_at);
CREATE INDEX log_records_received ON log_records(project_id, received_at);
CREATE INDEX model_sessions_last_seen ON model_sessions(project_id, last_seen_at);
CREATE INDEX session_metrics_updated ON session_metrics(project_id, updated_at);
-- a drift event's sample is kept: the pruner asks this for every candidate
CREATE INDEX drift_events_sample ON drift_events(sample_id);
