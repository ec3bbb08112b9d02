//! The worker's footprint and fairness, on a release build with default settings:
//! - idle RSS with the model loaded, at start and after embedding a burst;
//! - peak RSS while a backlog of long texts (about 200 words each) is embedded;
//! - fairness: with one project's backlog of 100,000 samples, how long another project's new
//!   samples wait to be scored (one a second, p50/p99/max);
//! - a sample that fails to embed (DRIFTBALLOON_FAULT_EMBED_TEXT): how long the rest of its
//!   batch takes to be scored.
//!
//! `make bench-worker` or `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench worker`
//! Env: BENCH_BACKLOG (default 100000), BENCH_PROBES (default 20), BENCH_BACKENDS (default "sqlite,postgres").

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)] // a bench uses a part of the load helpers
mod load;

use std::time::{Duration, Instant};

use common::{Kind, TestDb, TestServer};
use serde_json::{json, Value};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn post_many(server: &TestServer, key: &str, total: usize, per_request: usize, log: impl Fn(usize) -> Value) {
    let http = reqwest::Client::new();
    for start in (0..total).step_by(per_request) {
        let logs: Vec<Value> = (start..(start + per_request).min(total)).map(&log).collect();
        let resp =
            http.post(server.url("/api/v1/logs")).bearer_auth(key).json(&json!({ "logs": logs })).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }
}

async fn counts(server: &TestServer, key: &str, prompt: &str) -> Value {
    server.get(key, &format!("/api/v1/prompts/{prompt}")).await.1["samples"].clone()
}

async fn wait_done(server: &TestServer, key: &str, prompt: &str, done: i64, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if counts(server, key, prompt).await["done"].as_i64().unwrap_or(0) >= done {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn summary(measure: &str, value: String, target: &str) {
    println!("SUMMARY|{measure}|{value}|{target}");
}

async fn footprint(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    // Overload sampling off: the peak is measured with the whole backlog embedded.
    let server = TestServer::start(
        &db,
        &[
            load::NO_RATE_LIMIT,
            ("RUST_LOG", "warn,driftballoon::server=info"),
            ("DRIFTBALLOON_WORKER_MAX_SCORING_DELAY_SECS", "0"),
        ],
    );
    let key = server.first_key.clone().unwrap();
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at_start = common::rss_mib(pid, "VmRSS:");
    post_many(
        &server,
        &key,
        500,
        100,
        |i| json!({"prompt_name": format!("burst-{}", i % 5), "response_text": common::answer(i, 40)}),
    )
    .await;
    for p in 0..5 {
        wait_done(&server, &key, &format!("burst-{p}"), 100, Duration::from_secs(120)).await.expect("burst scored");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_burst = common::rss_mib(pid, "VmRSS:");
    // long texts: about 200 words (the model reads the first 256 tokens)
    let long = 2_000;
    post_many(
        &server,
        &key,
        long,
        200,
        |i| json!({"prompt_name": format!("long-{}", i % 4), "response_text": common::answer(i, 200)}),
    )
    .await;
    let started = Instant::now();
    for p in 0..4 {
        wait_done(&server, &key, &format!("long-{p}"), (long / 4) as i64, Duration::from_secs(600))
            .await
            .expect("long texts scored");
    }
    let long_rate = long as f64 / started.elapsed().as_secs_f64();
    let peak = common::rss_mib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_after = common::rss_mib(pid, "VmRSS:");
    println!(
        "{kind:?}: idle RSS {at_start:.0} MiB at start, {after_burst:.0} MiB after a burst of 500; peak {peak:.0} MiB embedding {long} long texts ({long_rate:.1}/s), {idle_after:.0} MiB idle after"
    );
    let k = format!("{kind:?}");
    summary(
        &format!("{k}: idle RSS at start / after a burst"),
        format!("{at_start:.0} / {after_burst:.0} MiB"),
        "<= 120 MiB",
    );
    summary(&format!("{k}: peak RSS, 2,000 long texts backlog"), format!("{peak:.0} MiB"), "<= 500 MiB");
    server.assert_no_server_errors();
}

async fn fairness(kind: Kind, backlog: usize, probes: usize) {
    let Some(db) = TestDb::new(kind).await else { return };
    // Overload sampling off: it would thin the backlog to a minute of work, and the whole
    // backlog is the worst case this measures.
    let server = TestServer::start(
        &db,
        &[
            load::NO_RATE_LIMIT,
            ("RUST_LOG", "warn,driftballoon::server=info"),
            ("DRIFTBALLOON_WORKER_MAX_SCORING_DELAY_SECS", "0"),
        ],
    );
    let busy = server.first_key.clone().unwrap();
    let other = common::create_key(&db, "other-team");
    post_many(
        &server,
        &busy,
        backlog,
        1_000,
        |i| json!({"prompt_name": format!("backlog-{}", i % 10), "response_text": common::answer(i, 25)}),
    )
    .await;
    let mut waits = Vec::new();
    for n in 0..probes {
        let body = json!({"logs": [{"prompt_name": "probe", "response_text": common::answer(1_000_000 + n, 25)}]});
        let sent = Instant::now();
        assert_eq!(server.post_logs(&other, &body).await.0, 202);
        match wait_done(&server, &other, "probe", n as i64 + 1, Duration::from_secs(120)).await {
            Some(_) => waits.push(sent.elapsed()),
            None => {
                println!("{kind:?}: a probe was not scored within 120 s");
                waits.push(Duration::from_secs(120));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut left = 0;
    for p in 0..10 {
        left += counts(&server, &busy, &format!("backlog-{p}")).await["pending"].as_i64().unwrap_or(0);
    }
    waits.sort();
    let pct = |p: f64| common::percentile_ms(&waits, p);
    println!(
        "{kind:?}: fairness with a backlog of {backlog}: another project's sample scored after p50={:.0}ms p99={:.0}ms max={:.0}ms ({} probes; {left} backlog samples still waiting)",
        pct(0.5),
        pct(0.99),
        waits.last().unwrap().as_secs_f64() * 1e3,
        waits.len()
    );
    summary(
        &format!("{kind:?}: other project's sample scored, {backlog} backlog (p99)"),
        format!("{:.2} s", pct(0.99) / 1e3),
        "<= 5 s",
    );
}

async fn poison(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let server = TestServer::start(
        &db,
        &[
            load::NO_RATE_LIMIT,
            ("RUST_LOG", "warn,driftballoon::server=info"),
            ("DRIFTBALLOON_FAULT_EMBED_TEXT", "POISON-PILL"),
        ],
    );
    let key = server.first_key.clone().unwrap();
    // one clean batch first: the model is warm and a batch's time is known
    post_many(
        &server,
        &key,
        64,
        64,
        |i| json!({"prompt_name": format!("clean-{}", i % 4), "response_text": common::answer(i, 25)}),
    )
    .await;
    let started = Instant::now();
    for p in 0..4 {
        wait_done(&server, &key, &format!("clean-{p}"), 16, Duration::from_secs(60)).await.unwrap();
    }
    let batch_time = started.elapsed();
    post_many(&server, &key, 64, 64, |i| {
        let text =
            if i == 7 { format!("{} POISON-PILL", common::answer(100 + i, 25)) } else { common::answer(100 + i, 25) };
        json!({"prompt_name": format!("mixed-{}", i % 4), "response_text": text})
    })
    .await;
    let started = Instant::now();
    // prompt mixed-3 holds the bad sample (i = 7); the other three have 16 good ones each
    for p in [0, 1, 2] {
        wait_done(&server, &key, &format!("mixed-{p}"), 16, Duration::from_secs(120)).await.unwrap();
    }
    let rest = started.elapsed();
    println!(
        "{kind:?}: poison sample: the rest of its batch scored in {:.0}ms (a clean batch of 64: {:.0}ms)",
        rest.as_secs_f64() * 1e3,
        batch_time.as_secs_f64() * 1e3
    );
    summary(
        &format!("{kind:?}: rest of a poisoned batch scored"),
        format!("{:.2} s (clean batch {:.2} s)", rest.as_secs_f64(), batch_time.as_secs_f64()),
        "within one batch time",
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backlog: usize = env_or("BENCH_BACKLOG", "100000").parse().unwrap();
    let probes: usize = env_or("BENCH_PROBES", "20").parse().unwrap();
    let backends = env_or("BENCH_BACKENDS", "sqlite,postgres");
    println!("worker benchmark: footprint, fairness (backlog {backlog}), poison sample");
    for kind in [Kind::Sqlite, Kind::Postgres] {
        if !backends.contains(&format!("{kind:?}").to_lowercase()) {
            continue;
        }
        footprint(kind).await;
        fairness(kind, backlog, probes).await;
        poison(kind).await;
    }
}
