-- Baseline states are stored in a compact binary form (src/drift/codec.rs) in `state_bin`;
-- rows written before keep their JSON in `state` (read as before) until their next update,
-- which writes `state_bin` and empties `state`.
ALTER TABLE prompt_baselines ADD COLUMN state_bin BLOB;

-- A baseline learns from at most 2,000 samples (it was 10,000): learning keeps every vector
-- until the baseline is ready, and scoring must stay cheap while it does (see the README).
-- Baselines already learning towards more become ready at 2,000.
UPDATE prompts SET min_baseline_samples = 2000 WHERE min_baseline_samples > 2000;
