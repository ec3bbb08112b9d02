-- Overload sampling (issue 33, src/worker/sampling.rs). When samples arrive faster than the
-- worker can score them, new arrivals are thinned to a uniform random subsample; the others get
-- state 'skipped': stored, never embedded or scored.
-- - prompts.sampled_through: the highest sample id a thinning pass has decided on; a sample at
--   or below it that is still waiting was kept and is never thinned again.
-- - prompts.sampling_rate: the share of the prompt's recent arrivals kept for scoring (1 = all).
ALTER TABLE prompts ADD COLUMN sampled_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE prompts ADD COLUMN sampling_rate REAL NOT NULL DEFAULT 1.0;
