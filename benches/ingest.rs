//! Ingest throughput: concurrent clients POST batches of 10 logs (the SDK's batch size) to a
//! release build of the server, on SQLite and (with TEST_DATABASE_URL) on Postgres.
//!
//! `make bench-ingest` or `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench ingest`
//! Options (env): BENCH_SECONDS (default 10), BENCH_CLIENTS (default 16).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Kind, TestDb, TestServer};
use serde_json::json;

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
    let server = TestServer::start(&db, &[("RUST_LOG", "warn,driftballoon::server=info")]);
    let key = server.first_key.clone().unwrap();
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/logs");
    let (latencies, elapsed) = common::drive_clients(clients, seconds, move |client, n| {
        let logs: Vec<_> = (0..BATCH)
            .map(|j| {
                let i = (client * 1_000_000) + n * BATCH + j;
                json!({"prompt_name": format!("bench-{}", i % 20), "response_text": response(i),
                       "input_text": "Where is my refund?", "model": "gpt-4o"})
            })
            .collect();
        let (http, url, key) = (http.clone(), url.clone(), key.clone());
        async move {
            common::timed_post_logs(&http, &url, &key, logs).await;
        }
    })
    .await;
    let pct = |p: f64| common::percentile_ms(&latencies, p);
    let requests = latencies.len() as f64;
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
    server.assert_no_server_errors();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let clients = env_or("BENCH_CLIENTS", 16) as usize;
    println!("ingest benchmark: batches of {BATCH} logs, {seconds}s per run");
    run(Kind::Sqlite, seconds, clients).await;
    run(Kind::Postgres, seconds, clients).await;
}
