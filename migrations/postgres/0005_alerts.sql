-- Drift alerts: channels (webhook or Slack) per project, and an outbox. An alert event and one
-- delivery per matching channel are written in the same transaction as what caused them (a
-- drift event, a version switch, a ready baseline), so a crash before sending loses nothing;
-- the dispatcher then works through the deliveries. Every drift event also stores the engine's
-- explanation of what changed (JSON).

ALTER TABLE drift_events ADD COLUMN explanation TEXT;

-- The samples a baseline learnt from are the ones scored without a similarity; an explanation
-- quotes the newest of them, found through this small index however long the prompt's history.
CREATE INDEX samples_learning ON samples(prompt_id, prompt_version, id) WHERE similarity IS NULL;

CREATE TABLE alert_channels (
    id                          BIGSERIAL PRIMARY KEY,
    project_id                  BIGINT NOT NULL REFERENCES projects(id),
    kind                        TEXT NOT NULL,
    url                         TEXT NOT NULL,
    -- webhooks: the Standard Webhooks signing secret, and the one it replaced while its grace
    -- period lasts (both signatures are sent until then)
    secret                      TEXT,
    previous_secret             TEXT,
    previous_secret_expires_at  BIGINT,
    -- JSON arrays of event types and prompt names; NULL = no filter
    event_types                 TEXT,
    prompt_names                TEXT,
    enabled                     BIGINT NOT NULL DEFAULT 1,
    disabled_reason             TEXT,
    -- the first failed attempt since the last success
    failing_since               BIGINT,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);
CREATE INDEX alert_channels_project ON alert_channels(project_id, id);

CREATE TABLE alert_events (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects(id),
    type        TEXT NOT NULL,
    -- the whole payload as sent: {"type", "timestamp", "data"}
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- states: pending (waiting for its next attempt) -> delivered | failed (gave up, or 410).
-- A dispatcher claims a due delivery by setting claimed_until and its own claim_token; an
-- attempt's outcome is written only under that token, and a claim left by a crashed replica
-- expires, so each attempt is made by one replica and none is lost.
CREATE TABLE alert_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    -- the Standard Webhooks `webhook-id`: the same on every attempt
    message_id       TEXT NOT NULL UNIQUE,
    event_id         BIGINT NOT NULL REFERENCES alert_events(id),
    channel_id       BIGINT NOT NULL REFERENCES alert_channels(id),
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    claim_token      TEXT,
    last_status      BIGINT,
    last_error       TEXT,
    last_latency_ms  BIGINT,
    last_attempt_at  BIGINT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX alert_deliveries_channel ON alert_deliveries(channel_id, id);
