//! Overload: one prompt's samples arrive at several times the rate the worker scores them, for
//! minutes, and the content changes half way (real text: Debian's fortunes about people, then
//! about computers). Reported per run: the time from the change to its drift event, the backlog
//! and RSS over time, how many samples were stored, scored and skipped; with overload sampling
//! (the default) and without it (`worker_max_scoring_delay_secs = 0`).
//!
//! `make bench-overload` (needs `make models` and `scripts/quality-data.sh`). Env:
//! BENCH_MINUTES (default 10), BENCH_OVERLOAD (times the measured worker rate, default 10),
//! BENCH_MODES (default "sampled,unsampled"), BENCH_BACKENDS (default "sqlite"; "postgres"
//! needs TEST_DATABASE_URL).

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)] // a bench uses a part of the load helpers
mod load;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Kind, TestDb, TestServer};
use serde_json::{json, Value};

const PROMPT: &str = "overload";
/// Samples per request, as an SDK's flush would send them.
const BATCH: usize = 100;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn prompt(server: &TestServer, key: &str) -> Value {
    server.get(key, &format!("/api/v1/prompts/{PROMPT}")).await.1
}

/// Posts one batch; returns the first sample id the server gave it.
async fn post(server: &TestServer, key: &str, texts: &[String], from: usize) -> i64 {
    let logs: Vec<Value> =
        (0..BATCH).map(|i| json!({"prompt_name": PROMPT, "response_text": texts[(from + i) % texts.len()]})).collect();
    let (status, body) = server.post_logs(key, &json!({ "logs": logs })).await;
    assert_eq!(status, 202, "{body}");
    body["log_ids"][0].as_i64().unwrap()
}

/// The worker's rate on this machine: a baseline's worth of the first stream, timed until scored.
async fn warm_up(server: &TestServer, key: &str, before: &[String]) -> f64 {
    let started = Instant::now();
    for n in 0..8 {
        post(server, key, before, n * BATCH).await;
    }
    server.wait_processed(key, PROMPT).await;
    (8 * BATCH) as f64 / started.elapsed().as_secs_f64()
}

struct Run {
    mode: &'static str,
    backend: &'static str,
    worker_rate: f64,
    sent: i64,
    detected_after: Option<f64>,
    /// When not detected: samples still queued ahead of the first changed one at the end.
    queued_ahead_at_end: i64,
    snapshots: Vec<(u64, i64, i64, i64, f64)>,
    peak_rss_mib: f64,
    counts: Value,
}

async fn run(kind: Kind, mode: &'static str, minutes: f64, overload: f64) -> Run {
    let db = TestDb::new(kind).await.expect("TEST_DATABASE_URL for postgres");
    let mut env = vec![load::NO_RATE_LIMIT];
    if mode == "unsampled" {
        env.push(("DRIFTBALLOON_WORKER_MAX_SCORING_DELAY_SECS", "0"));
    }
    let server = Arc::new(TestServer::start(&db, &env));
    let key = server.first_key.clone().unwrap();
    let (before, after) = (Arc::new(load::stream("en-people.txt")), Arc::new(load::stream("en-computers.txt")));
    let worker_rate = warm_up(&server, &key, &before).await;

    // One sender at `overload` times the worker's rate, batches evenly spaced.
    let per_sec = worker_rate * overload;
    let total = Duration::from_secs_f64(minutes * 60.0);
    let change_at = total / 2;
    let first_changed_id = Arc::new(AtomicI64::new(0));
    let change_ms = Arc::new(AtomicI64::new(0));
    let sent = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let sender = tokio::spawn({
        let (server, key, first_changed_id, change_ms, sent) =
            (server.clone(), key.clone(), first_changed_id.clone(), change_ms.clone(), sent.clone());
        async move {
            let gap = Duration::from_secs_f64(BATCH as f64 / per_sec);
            let mut ticker = tokio::time::interval(gap);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0usize;
            while started.elapsed() < total {
                ticker.tick().await;
                let changed = started.elapsed() >= change_at;
                if changed && change_ms.load(Ordering::SeqCst) == 0 {
                    change_ms.store(now_ms(), Ordering::SeqCst);
                }
                let id = post(&server, &key, if changed { &after } else { &before }, n * BATCH).await;
                if changed && first_changed_id.load(Ordering::SeqCst) == 0 {
                    first_changed_id.store(id, Ordering::SeqCst);
                }
                sent.fetch_add(BATCH as i64, Ordering::SeqCst);
                n += 1;
            }
        }
    });

    let pid = server.child.id();
    let mut snapshots = Vec::new();
    let mut detected_after = None;
    while !sender.is_finished() {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let body = prompt(&server, &key).await;
        let c = &body["samples"];
        snapshots.push((
            started.elapsed().as_secs(),
            c["pending"].as_i64().unwrap_or(0),
            c["done"].as_i64().unwrap_or(0),
            c["skipped"].as_i64().unwrap_or(0),
            common::rss_mib(pid, "VmRSS"),
        ));
        let first = first_changed_id.load(Ordering::SeqCst);
        if detected_after.is_none() && first > 0 {
            let (_, events) = server.get(&key, &format!("/api/v1/prompts/{PROMPT}/drift-events?limit=500")).await;
            let event = events["events"].as_array().unwrap().iter().find(|e| e["sample_id"].as_i64().unwrap() >= first);
            if let Some(e) = event {
                let at = e["created_at"].as_i64().unwrap();
                detected_after = Some((at - change_ms.load(Ordering::SeqCst)) as f64 / 1000.0);
            }
        }
    }
    sender.await.unwrap();
    let first = first_changed_id.load(Ordering::SeqCst);
    let queued_ahead_at_end = if detected_after.is_none() {
        // waiting samples with a smaller id than the first changed one
        queued_ahead(&db, first).await
    } else {
        0
    };
    let counts = prompt(&server, &key).await["samples"].clone();
    Run {
        mode,
        backend: if kind == Kind::Sqlite { "SQLite" } else { "Postgres" },
        worker_rate,
        sent: sent.load(Ordering::SeqCst),
        detected_after,
        queued_ahead_at_end,
        snapshots,
        peak_rss_mib: common::rss_mib(pid, "VmHWM"),
        counts,
    }
}

async fn queued_ahead(db: &TestDb, first_changed: i64) -> i64 {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM samples WHERE state IN ('pending', 'embedded') AND id < $1")
        .bind(first_changed)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn report(r: &Run) {
    println!("\n## {} · {} · worker {:.0} samples/s · {} samples sent", r.mode, r.backend, r.worker_rate, r.sent);
    match r.detected_after {
        Some(s) => println!("change to drift event: {s:.1} s"),
        None => println!(
            "change to drift event: not within the run; {} samples still queued ahead of the change (about {:.0} s more at the worker's rate)",
            r.queued_ahead_at_end,
            r.queued_ahead_at_end as f64 / r.worker_rate
        ),
    }
    println!("at the end: {} · peak RSS {:.0} MiB", r.counts, r.peak_rss_mib);
    println!("| s | waiting | scored | skipped | RSS MiB |\n|---:|---:|---:|---:|---:|");
    let every = (r.snapshots.len() / 12).max(1);
    for (i, (t, pending, done, skipped, rss)) in r.snapshots.iter().enumerate() {
        if i % every == 0 || i + 1 == r.snapshots.len() {
            println!("| {t} | {pending} | {done} | {skipped} | {rss:.0} |");
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let minutes: f64 = env_or("BENCH_MINUTES", "10").parse().unwrap();
    let overload: f64 = env_or("BENCH_OVERLOAD", "10").parse().unwrap();
    for backend in env_or("BENCH_BACKENDS", "sqlite").split(',') {
        let kind = if backend.trim() == "postgres" { Kind::Postgres } else { Kind::Sqlite };
        for mode in env_or("BENCH_MODES", "sampled,unsampled").split(',') {
            let mode: &'static str = if mode.trim() == "unsampled" { "unsampled" } else { "sampled" };
            report(&run(kind, mode, minutes, overload).await);
        }
    }
}
