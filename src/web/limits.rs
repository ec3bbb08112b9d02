//! Protection from any one client, all in memory on this replica:
//! - an optional hard per-key request rate (token bucket, off by default): over it, 429 with
//!   `Retry-After`;
//! - a per-address budget of failed key checks: over it, 429 before the database is asked;
//! - fair-share admission of the requests in flight ([`admission`]): a full server answers 503
//!   with `Retry-After` at once instead of queueing without bound, and a project or key over
//!   its share of a contended server 429 (health checks and `/metrics` are exempt, so an
//!   overloaded server is still seen as alive and can be watched);
//! - a short cache of valid keys, so a request with a known key costs no database query.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::admission::{self, Admission, Claimant, Refusal};
use super::error::ApiError;
use super::AppState;
use crate::config::Settings;
use crate::store::KeyOwner;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Buckets kept before idle (full) ones are dropped: bounds memory against many keys or
/// addresses.
const MAX_BUCKETS: usize = 100_000;

/// Token buckets by key: `rate` tokens a second, up to `burst`.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `rate` = 0 turns the limit off.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Refills `key`'s bucket to now and, if it holds a token, takes it when `spend` says so;
    /// else says how long until a token is there.
    fn acquire(&self, key: &K, spend: bool) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate));
        }
        if spend {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.acquire(key, true)
    }

    /// Whether `key` has a token left, without taking it.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.acquire(key, false)
    }

    /// Gives back a token taken for work that turned out not to count against the budget.
    pub fn refund(&self, key: &K) {
        if !self.enabled() {
            return;
        }
        if let Some(bucket) = self.buckets.lock().expect("rate limiter lock").get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

/// Valid keys seen lately, by key hash. Only valid keys are cached, so a key created with the
/// CLI works at once; a revoked one keeps working for at most the TTL (the CLI is another
/// process, so no server learns of it sooner).
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (KeyOwner, Instant)>>,
}

/// How long a key seen valid still passes the failed-auth budget ([`KeyCache::known`]).
const KNOWN_FOR: Duration = Duration::from_secs(3600);

/// Keys cached at most; past it the cache is emptied (cheap, and only costs a query per key).
const MAX_CACHED_KEYS: usize = 10_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key_hash: &str) -> Option<KeyOwner> {
        let entries = self.entries.lock().expect("key cache lock");
        entries.get(key_hash).filter(|(_, at)| at.elapsed() < self.ttl).map(|(owner, _)| owner.clone())
        // (ttl 0: nothing is ever fresh, so every request asks the database)
    }

    /// Whether this key was valid here within the last hour, cached or not: a client address
    /// over its failed-auth budget may still present such a key (it is checked again), so an
    /// attacker behind the same address cannot lock out the keys already in use there.
    pub fn known(&self, key_hash: &str) -> bool {
        let entries = self.entries.lock().expect("key cache lock");
        entries.get(key_hash).is_some_and(|(_, at)| at.elapsed() < KNOWN_FOR)
    }

    pub fn insert(&self, key_hash: &str, owner: &KeyOwner) {
        let mut entries = self.entries.lock().expect("key cache lock");
        if entries.len() >= MAX_CACHED_KEYS {
            entries.clear();
        }
        entries.insert(key_hash.to_string(), (owner.clone(), Instant::now()));
    }

    /// The project of a key valid here within the last hour (see [`Self::known`]), for
    /// admission, which runs before the key is checked.
    pub fn project_of(&self, key_hash: &str) -> Option<i64> {
        let entries = self.entries.lock().expect("key cache lock");
        entries.get(key_hash).filter(|(_, at)| at.elapsed() < KNOWN_FOR).map(|(owner, _)| owner.project_id)
    }

    /// Forgets a project's keys: their cached project settings (`capture_content`) changed.
    /// Their next request asks the database again; they stay [`Self::known`].
    pub fn forget_project(&self, project_id: i64) {
        let stale = Instant::now().checked_sub(self.ttl).unwrap_or_else(Instant::now);
        for (owner, at) in self.entries.lock().expect("key cache lock").values_mut() {
            if owner.project_id == project_id {
                *at = (*at).min(stale);
            }
        }
    }
}

/// Everything above, built once from the settings and shared by every request.
pub struct Guards {
    pub keys: KeyCache,
    pub per_key: RateLimiter<String>,
    pub failed_auth: RateLimiter<IpAddr>,
    pub admission: Arc<Admission>,
}

impl Guards {
    pub fn new(settings: &Settings) -> Self {
        Self {
            keys: KeyCache::new(Duration::from_secs(settings.key_cache_ttl_secs)),
            per_key: RateLimiter::new(settings.rate_limit_per_key as f64, settings.rate_limit_burst as f64),
            failed_auth: RateLimiter::new(
                settings.failed_auth_per_minute as f64 / 60.0,
                settings.failed_auth_per_minute as f64,
            ),
            admission: Admission::new(settings.max_concurrent_requests as usize),
        }
    }
}

impl Guards {
    /// Before a key is looked up: spends one of the address's failed-auth budget, or refuses
    /// (with the wait) when none is left, unless the key was valid here lately (see
    /// [`KeyCache::known`]). Spending before the database is asked makes the budget exact under
    /// concurrency: 40 bad keys at once get at most the budget's worth of lookups, where a
    /// check-then-spend let all 40 through. A key that proves valid gets it back
    /// ([`Self::key_check_passed`]).
    pub fn admit_key_check(&self, ip: Option<IpAddr>, key_hash: &str) -> Result<KeyCheck, Duration> {
        match ip {
            Some(ip) if !self.keys.known(key_hash) => {
                self.failed_auth.take(&ip).map(|()| KeyCheck { spent_by: Some(ip) })
            }
            _ => Ok(KeyCheck { spent_by: None }),
        }
    }

    /// After a lookup found the key valid: the budget it spent is given back.
    pub fn key_check_passed(&self, check: KeyCheck) {
        if let Some(ip) = check.spent_by {
            self.failed_auth.refund(&ip);
        }
    }

    /// After a lookup found no valid key (the budget was spent before it).
    pub fn key_check_failed(&self) {
        crate::observe::auth_failed();
    }
}

/// A key lookup admitted by [`Guards::admit_key_check`]: which address's budget it spent.
#[must_use = "a valid key gets its failed-auth budget back through key_check_passed"]
pub struct KeyCheck {
    spent_by: Option<IpAddr>,
}

/// Whole seconds for `Retry-After`, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The client's address, from the connection (see `serve`); none in in-process tests.
pub fn client_ip(request: &axum::http::request::Parts) -> Option<IpAddr> {
    request.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// Paths that are answered even when the server sheds load.
fn exempt_from_shedding(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/health" | "/metrics")
}

/// Who a request is, for [`Admission`]: one of the SDKs' reads, a key verified here within the
/// hour (its project), a key not verified, or none. Costs one hash of the key, no query.
fn claimant_of(guards: &Guards, request: &Request) -> Claimant {
    if admission::is_sdk_read(request.method(), request.uri().path()) {
        return Claimant::SdkRead;
    }
    let Some(key) = super::auth::presented_key(request.headers()).filter(|k| !k.is_empty()) else {
        return Claimant::Anonymous;
    };
    let key_hash = crate::apikey::hash(key);
    match guards.keys.project_of(&key_hash) {
        Some(project_id) => Claimant::Key { project_id, key_hash },
        None => Claimant::Unverified,
    }
}

/// Middleware: fair-share admission (see [`admission`]). A full server answers 503 at once; a
/// project or key over its share of a contended server answers 429.
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if exempt_from_shedding(request.uri().path()) {
        return next.run(request).await;
    }
    let claimant = claimant_of(&state.guards, &request);
    match state.guards.admission.admit(claimant) {
        Ok(_slot) => next.run(request).await,
        Err(Refusal::Full) => {
            crate::observe::request_shed();
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "the server is at its limit of {} requests in flight; retry later",
                    state.guards.admission.capacity()
                ),
            )
            .into_response()
        }
        Err(Refusal::OverShare { share }) => {
            crate::observe::over_fair_share();
            ApiError::too_many_requests(
                "over_fair_share",
                format!(
                    "the server is busy and this project (or key) already has its fair share of {share} \
                     requests in flight; retry after the Retry-After seconds"
                ),
                1,
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(10.0, 3.0);
        for _ in 0..3 {
            assert!(limiter.take(&"k").is_ok());
        }
        let wait = limiter.take(&"k").unwrap_err();
        assert!(wait > Duration::from_millis(50) && wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.take(&"other").is_ok(), "keys have their own buckets");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.take(&"k").is_ok());
        assert!(limiter.check(&"k").is_err());
    }

    #[test]
    fn rate_zero_is_off() {
        let limiter = RateLimiter::new(0.0, 1.0);
        for _ in 0..1000 {
            assert!(limiter.take(&1).is_ok());
        }
    }

    #[test]
    fn cached_keys_expire_and_are_forgotten_per_project() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let owner = KeyOwner { project_id: 7, capture_content: true, scope: crate::domain::KeyScope::Ingest };
        cache.insert("h", &owner);
        assert_eq!(cache.get("h").map(|o| o.project_id), Some(7));
        cache.forget_project(7);
        assert!(cache.get("h").is_none());
        cache.insert("h", &owner);
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("h").is_none());
        assert!(cache.known("h") && !cache.known("other"), "an expired key is still known");
    }
}
