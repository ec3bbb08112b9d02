//! Admission at the defaults (issue 30): what one key gets when 16 SDK-shaped clients flood it,
//! against the same run with every limit off; what another project gets while one floods far
//! past the server's capacity; and the peak memory of a server whose alert receiver answers
//! 500 with a 128 MiB body. On SQLite and (with TEST_DATABASE_URL) on Postgres.
//!
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench admission`
//! Options (env): BENCH_SECONDS (default 10), BENCH_FLOOD_CLIENTS (default 600, project A in the
//! noisy-neighbour run), DRIFTBALLOON_BENCH_BIN (another build's binary, for a before figure).

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Kind, TestDb, TestServer};
use serde_json::json;

const BATCH: usize = 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every limit off: no per-key cap, no failed-auth budget, room for every request in flight.
const LIMITS_OFF: &[(&str, &str)] = &[
    ("DRIFTBALLOON_RATE_LIMIT_PER_KEY", "0"),
    ("DRIFTBALLOON_FAILED_AUTH_PER_MINUTE", "0"),
    ("DRIFTBALLOON_MAX_CONCURRENT_REQUESTS", "100000"),
];

/// What a flood got: answers by status, and the latencies of the accepted ones (sorted).
struct Flood {
    accepted: usize,
    refused: usize,
    latencies: Vec<Duration>,
    elapsed: f64,
}

/// `clients` loops posting batches of 10 logs with `key` for `seconds`, counting every answer.
async fn flood(server: &TestServer, key: &str, prompt: &str, clients: usize, seconds: u64) -> Flood {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let url = server.url("/api/v1/logs");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (http, url, key, prompt) = (http.clone(), url.clone(), key.to_string(), prompt.to_string());
            tokio::spawn(async move {
                let (mut accepted, mut refused, mut latencies) = (0, 0, Vec::new());
                let mut n = 0;
                while Instant::now() < deadline {
                    let logs: Vec<_> = (0..BATCH)
                        .map(|j| {
                            json!({"prompt_name": prompt, "response_text": format!(
                                "Thanks for reaching out about order #{client}-{n}-{j}. The refund was issued \
                                 today and usually appears within three to five business days.")})
                        })
                        .collect();
                    n += 1;
                    let sent = Instant::now();
                    let Ok(resp) = http.post(&url).header("X-API-Key", &key).json(&json!({"logs": logs})).send().await
                    else {
                        refused += 1;
                        continue;
                    };
                    match resp.status().as_u16() {
                        202 => {
                            accepted += 1;
                            latencies.push(sent.elapsed());
                        }
                        429 | 503 => refused += 1,
                        other => panic!("unexpected answer {other}"),
                    }
                }
                (accepted, refused, latencies)
            })
        })
        .collect();
    let mut total = Flood { accepted: 0, refused: 0, latencies: Vec::new(), elapsed: 0.0 };
    for task in tasks {
        let (a, r, l) = task.await.unwrap();
        total.accepted += a;
        total.refused += r;
        total.latencies.extend(l);
    }
    total.elapsed = started.elapsed().as_secs_f64();
    total.latencies.sort();
    total
}

async fn one_key(kind: Kind, env: &[(&str, &str)], label: &str, seconds: u64) -> f64 {
    let Some(db) = TestDb::new(kind).await else { return 0.0 };
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "warn,driftballoon::server=info"));
    let server = TestServer::start(&db, &env);
    let key = server.first_key.clone().unwrap();
    let f = flood(&server, &key, "flood", 16, seconds).await;
    let logs_per_second = f.accepted as f64 * BATCH as f64 / f.elapsed;
    println!(
        "{:<9} one key, 16 clients, {label:<13}: {logs_per_second:>7.0} logs/s acknowledged, {:>7} answers 429/503, p99 {:.1} ms",
        format!("{kind:?}"),
        f.refused,
        common::percentile_ms(&f.latencies, 0.99)
    );
    logs_per_second
}

async fn noisy_neighbour(kind: Kind, flood_clients: usize, seconds: u64) {
    let Some(db) = TestDb::new(kind).await else { return };
    let server = TestServer::start(&db, &[("RUST_LOG", "warn,driftballoon::server=info")]);
    let noisy = server.first_key.clone().unwrap();
    let quiet = common::create_key(&db, "quiet");
    for key in [&noisy, &quiet] {
        assert_eq!(server.get(key, "/api/v1/prompts").await.0, 200);
    }
    let (a, b) = tokio::join!(flood(&server, &noisy, "noisy", flood_clients, seconds), async {
        // B starts once A's flood is under way
        tokio::time::sleep(Duration::from_secs(1)).await;
        flood(&server, &quiet, "quiet", 2, seconds - 2).await
    });
    println!(
        "{:<9} noisy neighbour: A ({flood_clients} clients) {} accepted, {} refused; B (2 clients) {} accepted, {} refused, p50 {:.1} ms, p99 {:.1} ms",
        format!("{kind:?}"),
        a.accepted,
        a.refused,
        b.accepted,
        b.refused,
        common::percentile_ms(&b.latencies, 0.5),
        common::percentile_ms(&b.latencies, 0.99),
    );
}

async fn receiver_body_rss(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let base = common::receiver::huge_error_receiver(128 << 20).await;
    let server = TestServer::start(
        &db,
        &[("DRIFTBALLOON_ALERTS_ALLOW_PRIVATE_NETWORKS", "true"), ("RUST_LOG", "warn,driftballoon::server=info")],
    );
    let key = server.first_key.clone().unwrap();
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(server.url("/api/v1/alert-channels"))
        .bearer_auth(&key)
        .json(&json!({"kind": "webhook", "url": format!("{base}/hook")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let before = common::rss_mib(server.child.id(), "VmHWM:");
    http.post(server.url(&format!("/api/v1/alert-channels/{id}/test"))).bearer_auth(&key).send().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = server.get(&key, &format!("/api/v1/alert-channels/{id}/deliveries")).await;
        if list["deliveries"][0]["last_status"] == 500 {
            break;
        }
        assert!(Instant::now() < deadline, "the attempt never finished: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = common::rss_mib(server.child.id(), "VmHWM:");
    println!(
        "{:<9} receiver answering 500 with 128 MiB: peak RSS {before:.0} -> {after:.0} MiB (+{:.0} MiB)",
        format!("{kind:?}"),
        after - before
    );
}

#[tokio::main]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let flood_clients = env_or("BENCH_FLOOD_CLIENTS", 600) as usize;
    println!("admission benchmark: batches of {BATCH} logs, {seconds}s per run, server {}", common::server_bin());
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let off = one_key(kind, LIMITS_OFF, "limits off", seconds).await;
        let defaults = one_key(kind, &[], "defaults", seconds).await;
        if off > 0.0 {
            println!(
                "{:<9} defaults reach {:.0} % of the limits-off rate",
                format!("{kind:?}"),
                100.0 * defaults / off
            );
        }
        noisy_neighbour(kind, flood_clients, seconds).await;
        receiver_body_rss(kind).await;
    }
}
