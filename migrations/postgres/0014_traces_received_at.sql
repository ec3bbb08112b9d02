-- Retention ages a trace by when the server received it, not by the start time its client
-- wrote: a replayed export, a batch job or a skewed clock must neither be pruned on arrival
-- (dated a month ago) nor kept forever (dated 2099). `received_at` is the time the last span
-- of the trace arrived (ms since the epoch, the server's clock), so a trace still receiving
-- spans stays whole.
ALTER TABLE traces ADD COLUMN received_at BIGINT NOT NULL DEFAULT 0;

-- Backfill from the best time stored: the spans' own arrival times (kept since 0003), else
-- the trace's start time.
UPDATE traces SET received_at = COALESCE(
    (SELECT MAX(s.received_at) FROM spans s WHERE s.project_id = traces.project_id AND s.trace_id = traces.trace_id),
    traces.start_ms);

CREATE INDEX traces_received ON traces(project_id, received_at, trace_id);
