-- The tables written for every ingested item (samples, spans, traces, log_records) no longer
-- carry foreign keys to projects, prompts and otel_resources on Postgres.
--
-- Postgres checks a foreign key by locking the parent row (SELECT ... FOR KEY SHARE) for every
-- inserted row. Every request of a project locks the same projects row, so concurrent requests
-- share it through multixacts, and each lock dirties and WAL-logs the parent's page. With
-- these keys dropped, Postgres stored 46 % more logs and 17 % more genai spans per second
-- (BENCHMARKS.md, "Issue 13, tenth pass").
--
-- What the keys guarded still holds: the server takes each of these ids from a row it read or
-- created in the same transaction, and no code path deletes a project, prompt or resource.
-- SQLite keeps the keys (a check there is an in-process probe of the parent's rowid, and
-- dropping a key there means rebuilding the table); tests/migrations.rs lists this difference.
ALTER TABLE samples DROP CONSTRAINT samples_project_id_fkey, DROP CONSTRAINT samples_prompt_id_fkey;
ALTER TABLE spans DROP CONSTRAINT spans_project_id_fkey, DROP CONSTRAINT spans_resource_id_fkey;
ALTER TABLE traces DROP CONSTRAINT traces_project_id_fkey;
ALTER TABLE log_records DROP CONSTRAINT log_records_project_id_fkey, DROP CONSTRAINT log_records_resource_id_fkey;
