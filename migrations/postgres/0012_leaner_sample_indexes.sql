-- Fewer index writes per sample: every stored sample wrote six b-trees (the table and five
-- indexes), and the single SQLite writer spends most of an ingest request on them.
--
-- `samples_pending` (id) WHERE state = 'pending' served no query: the worker claims through
-- `samples_unscored`, and every other `state = 'pending'` lookup is by primary key.
DROP INDEX samples_pending;

-- `samples_learning` took every new sample (its similarity is NULL until it is scored) only to
-- drop it again when it was scored. The one query it serves (the samples a baseline learnt
-- from) also asks for state = 'done', so only samples scored while learning enter it now.
DROP INDEX samples_learning;
CREATE INDEX samples_learning ON samples(prompt_id, prompt_version, id) WHERE state = 'done' AND similarity IS NULL;
