-- Behaviour drift (issue 31): the distribution and refusal-rate detectors.
-- - prompts.false_alarm_budget: expected false alarms of the statistical detectors per 100,000
--   stable samples of a prompt version (see src/drift/budget.rs).
-- - samples.refusal: whether the recogniser took the response for a refusal (NULL: scored
--   before it existed); samples.distribution_score: the distribution test's evidence
--   (-log10 p) on the samples where it looked; samples.refusal_rate: the share of refusals
--   among the recent samples when this one was scored.
-- - prompt_baselines: the latest of those, and the reference's refusal share.
ALTER TABLE prompts ADD COLUMN false_alarm_budget REAL NOT NULL DEFAULT 1.0;
ALTER TABLE samples ADD COLUMN refusal INTEGER;
ALTER TABLE samples ADD COLUMN distribution_score REAL;
ALTER TABLE samples ADD COLUMN refusal_rate REAL;
ALTER TABLE prompt_baselines ADD COLUMN distribution_score REAL;
ALTER TABLE prompt_baselines ADD COLUMN refusal_rate REAL;
ALTER TABLE prompt_baselines ADD COLUMN reference_refusal_rate REAL;
