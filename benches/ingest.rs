//! Ingest throughput: concurrent clients POST batches of 10 logs (the SDK's batch size) to a
//! release build of the server, on SQLite and (with TEST_DATABASE_URL) on Postgres.
//!
//! `make bench-ingest` or `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench ingest`
//! Options (env): BENCH_SECONDS (default 10), BENCH_CLIENTS (default 16), BENCH_PRUNE_SPANS
//! (default 200000; 0 skips the retention run).
//!
//! The retention run measures ingest latency at a steady offered rate while the pruner deletes
//! an aged backlog of traces (its heaviest job: spans in batches of traces), against the same
//! rate with the pruner idle, on the same database.

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)] // a bench uses a part of the load helpers
mod load;

use std::time::{Duration, Instant};

use common::{Kind, TestDb, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

const BATCH: usize = 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A realistic support-bot answer of about 60 words, varied per log.
fn response(i: usize) -> String {
    format!(
        "Thanks for reaching out about order #{i}. I checked your account and the refund was issued \
         to the original payment method today; depending on your bank it usually appears within \
         three to five business days. If you do not see it by then, reply to this message and we \
         will trace the payment with the bank for you."
    )
}

async fn run(kind: Kind, seconds: u64, clients: usize) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let server = TestServer::start(&db, &[("RUST_LOG", "warn,driftballoon::server=info"), load::NO_RATE_LIMIT]);
    let key = server.first_key.clone().unwrap();
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/logs");
    let paced_key = key.clone();
    let (latencies, elapsed) = load::drive_clients(clients, seconds, move |client, n| {
        let logs: Vec<_> = (0..BATCH)
            .map(|j| {
                let i = (client * 1_000_000) + n * BATCH + j;
                json!({"prompt_name": format!("bench-{}", i % 20), "response_text": response(i),
                       "input_text": "Where is my refund?", "model": "gpt-4o"})
            })
            .collect();
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        async move {
            load::timed_post_logs(&http, &url, &key, logs).await;
        }
    })
    .await;
    let pct = |p: f64| common::percentile_ms(&latencies, p);
    let requests = latencies.len() as f64;
    let logs_per_second = requests * BATCH as f64 / elapsed;
    println!(
        "{:<9} clients={clients:<3} requests/s={:>7.0} logs/s={:>7.0} p50={:>6.2}ms p99={:>6.2}ms ({} requests in {:.1}s)",
        format!("{kind:?}"),
        requests / elapsed,
        requests * BATCH as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        latencies.len(),
        elapsed
    );
    // the same clients at half that rate, paced: the latency a busy but not saturated server gives
    let half = logs_per_second / 2.0;
    let (p50, p99, max) = timed_ingest(&server, &paced_key, half / BATCH as f64, seconds, clients).await;
    println!(
        "{:<9} clients={clients:<3} at half that rate ({half:.0} logs/s offered): p50={p50:.2}ms p99={p99:.2}ms max={max:.2}ms",
        format!("{kind:?}")
    );
    let target = if kind == Kind::Sqlite { ">= 20,000" } else { ">= 15,000" };
    println!("SUMMARY|{kind:?}: ingest logs/s, {clients} clients, batches of {BATCH}, worker on|{logs_per_second:.0}|{target}");
    println!("SUMMARY|{kind:?}: ingest p99 at half that rate|{p99:.1} ms|< 50 ms");
    server.assert_no_server_errors();
}

const SPANS_PER_EXPORT: usize = 100;
const SPANS_PER_TRACE: usize = 10;

/// One OTLP/JSON export of plain spans (no content), 10 to a trace.
fn span_export(n: usize) -> Value {
    let spans: Vec<Value> = (0..SPANS_PER_EXPORT)
        .map(|j| {
            let i = n * SPANS_PER_EXPORT + j;
            json!({"traceId": format!("{:032x}", i / SPANS_PER_TRACE + 1), "spanId": format!("{:016x}", i + 1),
                   "name": "GET /orders", "kind": 2, "startTimeUnixNano": "1764000000000000000",
                   "endTimeUnixNano": "1764000000050000000",
                   "attributes": [{"key": "http.route", "value": {"stringValue": "/orders"}}]})
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
        "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]})
}

async fn prune_run(kind: Kind, spans: usize, seconds: u64) {
    let Some(db) = TestDb::new(kind).await else { return };
    // no worker: the logs stay pending, so only ingest and the pruner use the writer
    let env =
        [("DRIFTBALLOON_WORKER_ENABLED", "false"), load::NO_RATE_LIMIT, ("RUST_LOG", "warn,driftballoon::server=info")];
    let mut server = TestServer::start(&db, &[&env[..], &[("DRIFTBALLOON_RETENTION_INTERVAL_SECS", "86400")]].concat());
    let key = server.first_key.clone().unwrap();
    let http = reqwest::Client::new();
    for n in 0..spans / SPANS_PER_EXPORT {
        let resp = http.post(server.url("/v1/traces")).bearer_auth(&key).json(&span_export(n)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE traces SET start_ms = start_ms - 3456000000").execute(&mut conn).await.unwrap();
    let rate = 100.0; // batches of 10 a second: 1,000 logs/s offered
    let idle = timed_ingest(&server, &key, rate, seconds, 4).await;
    server.terminate();

    let server = TestServer::start(&db, &[&env[..], &[("DRIFTBALLOON_RETENTION_INTERVAL_SECS", "1")]].concat());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let started = Instant::now();
    let pruning = timed_ingest(&server, &key, rate, seconds, 4).await;
    let left: i64 = sqlx::query("SELECT COUNT(*) FROM spans").fetch_one(&mut conn).await.unwrap().try_get(0).unwrap();
    let deleted = spans as i64 - left;
    println!(
        "{:<9} retention: {rate:.0} batches/s offered; pruner idle p50={:.2}ms p99={:.2}ms max={:.2}ms | \
         pruning p50={:.2}ms p99={:.2}ms max={:.2}ms ({deleted} of {spans} aged spans deleted in the {:.1}s measured)",
        format!("{kind:?}"),
        idle.0,
        idle.1,
        idle.2,
        pruning.0,
        pruning.1,
        pruning.2,
        started.elapsed().as_secs_f64()
    );
    server.assert_no_server_errors();
}

/// Ingest latency at `rate` batches a second from `clients` clients for `seconds`: (p50, p99,
/// max) ms of the requests alone (the pacing pauses are not counted).
async fn timed_ingest(server: &TestServer, key: &str, rate: f64, seconds: u64, clients: usize) -> (f64, f64, f64) {
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/logs");
    let interval = Duration::from_secs_f64(clients as f64 / rate);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (http, url, key) = (http.clone(), url.clone(), key.to_string());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut next = Instant::now();
                while Instant::now() < deadline {
                    let logs: Vec<_> = (0..BATCH)
                        .map(|j| json!({"prompt_name": "paced", "response_text": response(client * 1_000_000 + latencies.len() * BATCH + j)}))
                        .collect();
                    latencies.push(load::timed_post_logs(&http, &url, &key, logs).await);
                    next += interval;
                    tokio::time::sleep_until(next.into()).await;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| common::percentile_ms(&latencies, p);
    (pct(0.5), pct(0.99), latencies.last().unwrap().as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let clients = env_or("BENCH_CLIENTS", 16) as usize;
    let prune_spans = env_or("BENCH_PRUNE_SPANS", 200_000) as usize;
    println!("ingest benchmark: batches of {BATCH} logs, {seconds}s per run");
    run(Kind::Sqlite, seconds, clients).await;
    run(Kind::Postgres, seconds, clients).await;
    if prune_spans > 0 {
        prune_run(Kind::Sqlite, prune_spans, seconds).await;
        prune_run(Kind::Postgres, prune_spans, seconds).await;
    }
}
