//! Settings: `config/default.toml` (compiled in, so the binary runs anywhere), optionally a file
//! named by `DRIFTBALLOON_CONFIG`, then environment variables. A bad value stops the start with one
//! line that names the setting.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::{Table, Value};

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Where a setting's environment override comes from: every key maps to `DRIFTBALLOON_<KEY>`,
/// except the two names the ecosystem already uses.
fn env_name(key: &str) -> String {
    match key {
        "database_url" => "DATABASE_URL".to_string(),
        "log" => "RUST_LOG".to_string(),
        _ => format!("DRIFTBALLOON_{}", key.to_ascii_uppercase()),
    }
}

/// Every setting, one field per key of `config/default.toml`, which documents them (the one
/// place; `the_defaults_document_every_setting` checks each key has its comment there).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub listen: String,
    pub log: String,
    pub body_limit_bytes: usize,
    pub max_logs_per_request: usize,
    pub max_text_chars: usize,
    pub request_timeout_secs: u64,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub body_min_bytes_per_sec: u64,
    pub max_connections: u64,
    pub shutdown_grace_secs: u64,
    pub db_max_connections: u32,
    pub db_acquire_timeout_ms: u64,
    pub config_cache_ttl_secs: u64,
    pub model_dir: String,
    pub worker_enabled: bool,
    pub embed_threads: usize,
    pub embed_float_weights: bool,
    pub embed_speed_up_on_backlog: bool,
    pub worker_batch_size: usize,
    pub embed_max_batch_tokens: usize,
    pub worker_claim_timeout_secs: u64,
    pub worker_poll_interval_ms: u64,
    pub worker_max_attempts: u64,
    pub worker_max_scoring_delay_secs: u64,
    pub public_url: String,
    pub alerts_enabled: bool,
    pub alerts_allow_private_networks: bool,
    pub alerts_timeout_ms: u64,
    pub alerts_retry_base_ms: u64,
    pub alerts_max_attempts: u64,
    pub alerts_disable_after_secs: u64,
    pub alerts_poll_interval_ms: u64,
    pub first_key_file: String,
    pub key_cache_ttl_secs: u64,
    pub rate_limit_per_key: u64,
    pub rate_limit_burst: u64,
    pub failed_auth_per_minute: u64,
    pub max_concurrent_requests: u64,
    pub metrics_listen_addr: String,
    pub retention_samples_days: u64,
    pub retention_traces_days: u64,
    pub retention_sessions_days: u64,
    pub retention_metrics_days: u64,
    pub retention_interval_secs: u64,
    pub retention_batch_rows: u64,
}

/// A database URL: its `Debug` (what the start-up log line prints) redacts every secret in it,
/// so a password never reaches a log.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&redact_url(&self.0), f)
    }
}

/// A database URL with every secret in it replaced by `***`: the password in the user info
/// (`postgres://user:secret@host/db`) and secret query parameters (`?password=`,
/// `?sslpassword=`, any letter case). Used for every URL that reaches a log or an error.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => before_query.to_string(),
            },
            None => before_query.to_string(),
        },
        None => before_query.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

impl Settings {
    /// Reads defaults, the optional file and the environment of this process.
    pub fn load() -> Result<Settings, String> {
        Self::load_from(|name| std::env::var(name).ok())
    }

    pub fn load_from(env: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut table: Table = DEFAULTS.parse().map_err(|e| format!("built-in config/default.toml is invalid: {e}"))?;

        if let Some(path) = env("DRIFTBALLOON_CONFIG").filter(|p| !p.is_empty()) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("invalid setting DRIFTBALLOON_CONFIG={path}: {e}"))?;
            let file: Table = text.parse().map_err(|e| format!("invalid setting DRIFTBALLOON_CONFIG={path}: {e}"))?;
            for (key, value) in file {
                let Some(default) = table.get(&key) else {
                    return Err(format!("unknown setting `{key}` in {path}"));
                };
                if default.type_str() != value.type_str() {
                    return Err(format!("invalid setting `{key}` in {path}: expected a {}", default.type_str()));
                }
                table.insert(key, value);
            }
        }

        for (key, value) in table.iter_mut() {
            let name = env_name(key);
            let Some(raw) = env(&name) else { continue };
            *value = parse_like(value, &raw)
                .ok_or_else(|| format!("invalid setting {name}={raw}: expected {}", value.type_str()))?;
        }

        let settings: Settings = Value::Table(table).try_into().map_err(|e| format!("invalid settings: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        let bad = |key: &str, raw: &dyn std::fmt::Display, why: &str| {
            Err(format!("invalid setting {}={raw}: {why}", env_name(key)))
        };
        if self.listen.parse::<SocketAddr>().is_err() {
            return bad("listen", &self.listen, "expected host:port, e.g. 0.0.0.0:8080");
        }
        let database_url = self.database_url.as_str();
        if !database_url.is_empty()
            && !database_url.starts_with("sqlite:")
            && !database_url.starts_with("postgres://")
            && !database_url.starts_with("postgresql://")
        {
            return bad(
                "database_url",
                &redact_url(database_url),
                "expected empty (embedded SQLite), sqlite://FILE or postgres://...",
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return bad("log", &self.log, &e.to_string());
        }
        let public_url = self.public_url.trim();
        let public_url_ok =
            public_url.is_empty() || public_url.starts_with("http://") || public_url.starts_with("https://");
        if !public_url_ok {
            return bad("public_url", &self.public_url, "expected empty or an http(s):// URL");
        }
        if self.first_key_file.trim().is_empty() {
            return bad("first_key_file", &"\"\"", "expected a file path");
        }
        if !self.metrics_listen_addr.is_empty() && self.metrics_listen_addr.parse::<SocketAddr>().is_err() {
            return bad(
                "metrics_listen_addr",
                &self.metrics_listen_addr,
                "expected empty (serve /metrics on `listen`) or host:port",
            );
        }
        let positive: [(&str, u64); 26] = [
            ("rate_limit_burst", self.rate_limit_burst),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("retention_interval_secs", self.retention_interval_secs),
            ("retention_batch_rows", self.retention_batch_rows),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_read_timeout_secs", self.body_read_timeout_secs),
            ("body_min_bytes_per_sec", self.body_min_bytes_per_sec),
            ("max_connections", self.max_connections),
            ("shutdown_grace_secs", self.shutdown_grace_secs),
            ("worker_batch_size", self.worker_batch_size as u64),
            ("embed_max_batch_tokens", self.embed_max_batch_tokens as u64),
            ("worker_claim_timeout_secs", self.worker_claim_timeout_secs),
            ("worker_poll_interval_ms", self.worker_poll_interval_ms),
            ("worker_max_attempts", self.worker_max_attempts),
            ("body_limit_bytes", self.body_limit_bytes as u64),
            ("max_logs_per_request", self.max_logs_per_request as u64),
            ("max_text_chars", self.max_text_chars as u64),
            ("request_timeout_secs", self.request_timeout_secs),
            ("db_max_connections", self.db_max_connections as u64),
            ("db_acquire_timeout_ms", self.db_acquire_timeout_ms),
            ("config_cache_ttl_secs", self.config_cache_ttl_secs),
            ("alerts_timeout_ms", self.alerts_timeout_ms),
            ("alerts_retry_base_ms", self.alerts_retry_base_ms),
            ("alerts_max_attempts", self.alerts_max_attempts),
            ("alerts_disable_after_secs", self.alerts_disable_after_secs),
            ("alerts_poll_interval_ms", self.alerts_poll_interval_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return bad(key, &value, "must be greater than 0");
            }
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated in load")
    }

    /// The public base URL without a trailing slash, if one is set.
    pub fn public_base_url(&self) -> Option<String> {
        Some(self.public_url.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty())
    }

    /// The URL sqlx connects to: the default is an SQLite file under ./data.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.as_str().is_empty() {
            "sqlite://data/driftballoon.db".to_string()
        } else {
            self.database_url.as_str().to_string()
        }
    }
}

/// Parses an environment string as the same TOML type as the default it replaces.
fn parse_like(default: &Value, raw: &str) -> Option<Value> {
    let raw = raw.trim();
    match default {
        Value::String(_) => Some(Value::String(raw.to_string())),
        Value::Integer(_) => raw.parse::<i64>().ok().filter(|v| *v >= 0).map(Value::Integer),
        Value::Float(_) => raw.parse::<f64>().ok().filter(|v| v.is_finite()).map(Value::Float),
        Value::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Some(Value::Boolean(false)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::load_from(|name| env.get(name).cloned())
    }

    #[test]
    fn defaults_load() {
        let s = load(&[]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8080");
        assert_eq!(s.effective_database_url(), "sqlite://data/driftballoon.db");
    }

    #[test]
    fn env_overrides_and_names_bad_values() {
        let s = load(&[("DRIFTBALLOON_MAX_LOGS_PER_REQUEST", "7")]).unwrap();
        assert_eq!(s.max_logs_per_request, 7);
        let err = load(&[("DRIFTBALLOON_LISTEN", "nope")]).unwrap_err();
        assert!(err.contains("DRIFTBALLOON_LISTEN=nope"), "{err}");
        let err = load(&[("DRIFTBALLOON_BODY_LIMIT_BYTES", "lots")]).unwrap_err();
        assert!(err.contains("DRIFTBALLOON_BODY_LIMIT_BYTES=lots"), "{err}");
        let err = load(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    /// `config/default.toml` is where settings are documented: every key has a comment right
    /// above it (or above the group of keys it starts), and every key is a field of `Settings`
    /// (loading refuses unknown keys and needs every field).
    #[test]
    fn the_defaults_document_every_setting() {
        let mut undocumented = Vec::new();
        let mut previous = "";
        for line in DEFAULTS.lines() {
            let is_key = line.split_once('=').is_some_and(|(k, _)| {
                !k.trim().is_empty() && k.trim().chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            let previous_documents = previous.starts_with('#') || previous.split_once('=').is_some();
            if is_key && !line.starts_with('#') && !previous_documents {
                undocumented.push(line.to_string());
            }
            previous = line;
        }
        assert!(undocumented.is_empty(), "settings without a comment in config/default.toml: {undocumented:?}");
        assert!(load(&[]).is_ok(), "config/default.toml and Settings name the same settings");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(
            redact_url("postgres://u@h/db?password=pw&sslmode=require"),
            "postgres://u@h/db?password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgresql://h/db?user=u&PassWord=pw"), "postgresql://h/db?user=u&PassWord=***");
        assert_eq!(redact_url("postgres://u:p@ss@h/db?sslpassword=k"), "postgres://u:***@h/db?sslpassword=***");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        let s = load(&[("DATABASE_URL", "postgres://u@h/db?password=secret")]).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
        let s = load(&[("DATABASE_URL", "postgres://u:secret@h/db")]).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
    }
}
