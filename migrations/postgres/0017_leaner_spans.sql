-- Leaner span rows and fewer index writes per span (issue 33). SQLite's WAL writes whole pages,
-- so each index a span touches at a random place costs a 4 KiB page per commit.
-- - spans.content_refs: the attributes whose text is exactly the span's request_text or
--   response_text are stored once, in that column, and named here ({"output.value":
--   "response"}); reading a span puts them back (src/store/span_attributes.rs). An
--   OpenInference LLM span carries its answer three times over.
-- - traces_config and spans_session cover only rows with a config key (Fallom SDK spans):
--   OpenTelemetry spans have none, and every query on them names a key.
ALTER TABLE spans ADD COLUMN content_refs TEXT;
DROP INDEX traces_config;
CREATE INDEX traces_config ON traces(project_id, config_key, start_ms, trace_id) WHERE config_key IS NOT NULL;
DROP INDEX spans_session;
CREATE INDEX spans_session ON spans(project_id, config_key, session_id) WHERE config_key IS NOT NULL;
