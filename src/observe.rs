//! Prometheus metrics. Code records through the small functions here, so every metric's name,
//! labels and unit are in one place (and documented in docs/operations.md, "Monitoring"); without an
//! installed recorder (unit tests, the CLI) they cost nothing.
//!
//! Built on the `metrics` facade with `metrics-exporter-prometheus` (its HTTP listener and
//! push-gateway features off: the text is rendered into our own `/metrics` route): the facade is
//! the most used in the ecosystem, its macros are cheap (atomic adds on pre-registered
//! handles), and the exporter renders histograms with fixed buckets, which Prometheus can
//! aggregate across replicas. Gauges that describe the database (backlog, drifted prompts,
//! pool) are measured when scraped, so they are exact and cost nothing between scrapes.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP durations (seconds): OpenTelemetry's recommended `http.server.request.duration` buckets.
const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/// Model runs and database waits span from below a millisecond to seconds.
const WORK_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder; the handle renders the text format. Installing twice
/// (tests that start several servers in one process) reuses nothing and fails, so the caller
/// installs once.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("http_server_request_duration_seconds".into()), HTTP_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), WORK_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_wait_seconds".into()), WORK_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!("http_server_request_duration_seconds", Unit::Seconds, "Duration of HTTP server requests");
    describe_gauge!("http_server_active_requests", "HTTP server requests in flight");
    describe_counter!("driftballoon_ingest_accepted_total", "Items stored: logs, spans, log records");
    describe_counter!("driftballoon_ingest_commits_total", "SQLite group commits of log batches");
    describe_counter!("driftballoon_ingest_committed_requests_total", "Log batches committed by SQLite group commits");
    describe_counter!(
        "driftballoon_ingest_rejected_items_total",
        "Items refused inside an accepted export (OTLP partial success), by reason"
    );
    describe_counter!(
        "driftballoon_ingest_rejected_requests_total",
        "Ingest requests refused whole, by the error code of the answer"
    );
    describe_counter!("driftballoon_requests_shed_total", "Requests answered 503 because too many were in flight");
    describe_counter!("driftballoon_auth_failures_total", "Requests with an unknown or revoked API key");
    describe_counter!("driftballoon_rate_limited_total", "Requests answered 429 because their key was over its rate");
    describe_counter!(
        "driftballoon_body_too_slow_total",
        "Requests answered 408 because their body arrived too slowly"
    );
    describe_counter!(
        "driftballoon_over_fair_share_total",
        "Requests answered 429 because the server was full and their project or key held its share"
    );
    describe_gauge!("driftballoon_embedding_backlog", "Samples waiting to be embedded or scored");
    describe_gauge!(
        "driftballoon_embedding_backlog_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest sample waiting to be embedded or scored"
    );
    describe_counter!("driftballoon_embeddings_total", "Samples embedded");
    describe_histogram!(
        "driftballoon_embedding_batch_duration_seconds",
        Unit::Seconds,
        "Duration of one model run over a batch of samples"
    );
    describe_counter!(
        "driftballoon_samples_skipped_total",
        "Samples stored but left out of scoring while the worker sampled an overload"
    );
    describe_gauge!(
        "driftballoon_prompt_sampling_rate",
        "Share of a prompt's recent samples kept for scoring (set once it was sampled; 1 = all)"
    );
    describe_counter!("driftballoon_samples_failed_total", "Samples given up on after repeated embedding failures");
    describe_counter!("driftballoon_drift_events_total", "Drift events detected, by kind");
    describe_gauge!("driftballoon_prompts_drifted", "Prompts whose status is drifted");
    describe_counter!("driftballoon_alert_deliveries_total", "Alert delivery attempts, by outcome");
    describe_gauge!("driftballoon_db_pool_connections", "Database connections by pool and state");
    describe_gauge!("driftballoon_db_write_waiting", "Write transactions waiting for a connection");
    describe_histogram!(
        "driftballoon_db_write_wait_seconds",
        Unit::Seconds,
        "Time a write transaction waited for its connection (on SQLite, the single writer)"
    );
    describe_counter!("driftballoon_retention_deleted_rows_total", "Rows deleted by the retention pruner, by table");
}

/// One answered HTTP request. `route` is the route template (`/api/v1/prompts/{name}`), never
/// the raw path, so label values stay few.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    histogram!(
        "http_server_request_duration_seconds",
        "http_request_method" => method.to_string(),
        "http_route" => route.to_string(),
        "http_response_status_code" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
}

/// Adds one to a gauge until dropped, so the count stays right when the work is cancelled.
pub struct InProgress(&'static str);

impl InProgress {
    fn start(gauge: &'static str) -> Self {
        gauge!(gauge).increment(1.0);
        InProgress(gauge)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}

/// A request in flight, until dropped.
pub fn active_request() -> InProgress {
    InProgress::start("http_server_active_requests")
}

/// What an ingest route carries, for the ingest counters.
pub fn ingest_signal(route: &str) -> Option<&'static str> {
    match route {
        "/api/v1/logs" => Some("logs"),
        "/v1/traces" => Some("spans"),
        "/v1/logs" => Some("log_records"),
        "/sessions" => Some("sessions"),
        "/spans" => Some("metrics"),
        _ => None,
    }
}

/// SQLite group commit: one transaction committed `requests` log batches together.
pub fn ingest_group(requests: usize) {
    counter!("driftballoon_ingest_commits_total").increment(1);
    counter!("driftballoon_ingest_committed_requests_total").increment(requests as u64);
}

pub fn ingest_accepted(signal: &'static str, items: usize) {
    counter!("driftballoon_ingest_accepted_total", "signal" => signal).increment(items as u64);
}

pub fn ingest_rejected_items(signal: &'static str, reason: &'static str, items: usize) {
    if items > 0 {
        counter!("driftballoon_ingest_rejected_items_total", "signal" => signal, "reason" => reason)
            .increment(items as u64);
    }
}

pub fn ingest_rejected_request(signal: &'static str, reason: &'static str) {
    counter!("driftballoon_ingest_rejected_requests_total", "signal" => signal, "reason" => reason).increment(1);
}

pub fn request_shed() {
    counter!("driftballoon_requests_shed_total").increment(1);
}

pub fn auth_failed() {
    counter!("driftballoon_auth_failures_total").increment(1);
}

pub fn body_too_slow() {
    counter!("driftballoon_body_too_slow_total").increment(1);
}

pub fn over_fair_share() {
    counter!("driftballoon_over_fair_share_total").increment(1);
}

pub fn rate_limited() {
    counter!("driftballoon_rate_limited_total").increment(1);
}

pub fn embedded(samples: usize, model_run: Duration) {
    counter!("driftballoon_embeddings_total").increment(samples as u64);
    histogram!("driftballoon_embedding_batch_duration_seconds").record(model_run.as_secs_f64());
}

pub fn samples_skipped(samples: u64) {
    counter!("driftballoon_samples_skipped_total").increment(samples);
}

/// Set when a prompt's rate changes; 1 again once its overload is over.
pub fn sampling_rate(prompt_id: i64, rate: f64) {
    gauge!("driftballoon_prompt_sampling_rate", "prompt_id" => prompt_id.to_string()).set(rate);
}

pub fn samples_failed(samples: usize) {
    counter!("driftballoon_samples_failed_total").increment(samples as u64);
}

pub fn drift_event(kind: &'static str) {
    counter!("driftballoon_drift_events_total", "kind" => kind).increment(1);
}

pub fn alert_delivery(outcome: &'static str) {
    counter!("driftballoon_alert_deliveries_total", "outcome" => outcome).increment(1);
}

pub fn write_wait(waited: Duration) {
    histogram!("driftballoon_db_write_wait_seconds").record(waited.as_secs_f64());
}

/// A write transaction waiting for its connection, until dropped.
pub fn write_waiting() -> InProgress {
    InProgress::start("driftballoon_db_write_waiting")
}

pub fn retention_deleted(table: &'static str, rows: u64) {
    if rows > 0 {
        counter!("driftballoon_retention_deleted_rows_total", "table" => table).increment(rows);
    }
}

/// The gauges measured from the database when scraped.
pub struct DatabaseGauges {
    pub backlog: i64,
    pub backlog_oldest_age: Option<Duration>,
    pub prompts_drifted: i64,
    /// (pool, in use, idle)
    pub pools: Vec<(&'static str, u32, u32)>,
}

pub fn set_database_gauges(g: &DatabaseGauges) {
    gauge!("driftballoon_embedding_backlog").set(g.backlog as f64);
    gauge!("driftballoon_embedding_backlog_oldest_age_seconds")
        .set(g.backlog_oldest_age.map_or(0.0, |age| age.as_secs_f64()));
    gauge!("driftballoon_prompts_drifted").set(g.prompts_drifted as f64);
    for (pool, in_use, idle) in &g.pools {
        gauge!("driftballoon_db_pool_connections", "pool" => *pool, "state" => "in_use").set(*in_use as f64);
        gauge!("driftballoon_db_pool_connections", "pool" => *pool, "state" => "idle").set(*idle as f64);
    }
}
