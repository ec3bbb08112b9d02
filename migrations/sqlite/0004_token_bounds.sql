-- Token counts are bounded to 0..=10^12 at ingest from this version on, but older versions
-- stored whatever a client sent, and a rollup or summary adding up huge or negative counts
-- could overflow BIGINT and fail the read. Counts outside that range are not real counts, so
-- they become unknown (NULL), exactly as ingest now treats them.

UPDATE spans SET input_tokens = NULL WHERE input_tokens < 0 OR input_tokens > 1000000000000;
UPDATE spans SET output_tokens = NULL WHERE output_tokens < 0 OR output_tokens > 1000000000000;
UPDATE spans SET total_tokens = NULL WHERE total_tokens < 0 OR total_tokens > 1000000000000;

-- Each trace's rollup is rebuilt from its spans: NULL when none of them has a count. The sum is
-- taken as DOUBLE PRECISION and clamped to the BIGINT maximum (as the server's own saturating
-- sums are), so even a trace with millions of maximal spans cannot make the migration fail.
UPDATE traces SET
    input_tokens = (
        SELECT CASE WHEN SUM(CAST(s.input_tokens AS DOUBLE PRECISION)) >= CAST(9.2e18 AS DOUBLE PRECISION)
                    THEN CAST(9223372036854775807 AS BIGINT)
                    ELSE CAST(SUM(CAST(s.input_tokens AS DOUBLE PRECISION)) AS BIGINT) END
        FROM spans s WHERE s.project_id = traces.project_id AND s.trace_id = traces.trace_id),
    output_tokens = (
        SELECT CASE WHEN SUM(CAST(s.output_tokens AS DOUBLE PRECISION)) >= CAST(9.2e18 AS DOUBLE PRECISION)
                    THEN CAST(9223372036854775807 AS BIGINT)
                    ELSE CAST(SUM(CAST(s.output_tokens AS DOUBLE PRECISION)) AS BIGINT) END
        FROM spans s WHERE s.project_id = traces.project_id AND s.trace_id = traces.trace_id);
