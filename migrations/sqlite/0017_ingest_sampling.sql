-- Overload sampling decided at ingest (issue 33, src/worker/sampling.rs). Thinning a backlog
-- rewrote almost every sample of an overloaded prompt a second time (pending, then skipped):
-- near the ingest ceiling a second write for most samples, on the same single writer.
-- - prompts.ingest_keep_rate: the chance that ingest queues a new sample of this prompt for
--   scoring; the others are stored as 'skipped' at once. The sampler sets it to about twice the
--   share it keeps, so its own thinning still picks the exact number that fits; 1 = queue all.
ALTER TABLE prompts ADD COLUMN ingest_keep_rate REAL NOT NULL DEFAULT 1.0;
