-- Dashboard sign-in: an API key is exchanged for a session. Only a hash of the session token
-- (the cookie's value) is kept; the session belongs to the key, so revoking the key ends it.

CREATE TABLE ui_sessions (
    token_hash   TEXT NOT NULL PRIMARY KEY,
    key_hash     TEXT NOT NULL REFERENCES api_keys(key_hash),
    -- the synchronizer token every state-changing form must carry
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions(expires_at);
