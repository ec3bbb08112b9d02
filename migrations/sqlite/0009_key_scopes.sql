-- What a key may do: `ingest` (what SDKs and exporters need) or `admin` (everything). Keys
-- made before scopes existed could do everything, so they stay `admin`.
ALTER TABLE api_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
