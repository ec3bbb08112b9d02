//! Alert latency and the cost of drift explanations, on a release build of the server with the
//! real model, on SQLite and (with TEST_DATABASE_URL) on Postgres.
//!
//! PROMPTS prompts (default 110) each learn a BASELINE-sample baseline (default 30, the
//! product's default `min_baseline_samples`; at most 200 are quoted from) of support answers,
//! and then get biology answers, so each fires semantic drift (and length drift where lengths
//! moved).
//! A webhook receiver in this process records when each `drift.detected` arrives;
//! latency = arrival - the drift event's `detected_at` (stamped inside the scoring
//! transaction, just before it commits, so the figure includes the commit).
//! The server logs every scoring batch at debug level with its time and the time spent
//! explaining drift; the bench sums those.
//!
//! It also times the explanation's term counting alone on its largest input: 200 baseline and
//! 20 recent responses of about 1,000 characters (the test corpora's answers, run together).
//!
//! `make bench-alerts` or `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench alerts`

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)] // a bench uses a part of the load helpers
mod load;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use common::texts::{biology_answer, support_answer};
use common::{Kind, TestDb, TestServer};
use serde_json::{json, Value};

type Arrivals = Arc<Mutex<Vec<(f64, Value)>>>;

fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1e3
}

async fn start_receiver() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    async fn hook(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
        let at = now_ms();
        arrivals.lock().unwrap().push((at, serde_json::from_slice(&body).unwrap_or_default()));
        "ok"
    }
    let app = Router::new().route("/hook", post(hook)).with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, arrivals)
}

async fn post_json(server: &TestServer, key: &str, method: reqwest::Method, path: &str, body: Value) {
    let resp = server.http.request(method, server.url(path)).bearer_auth(key).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.text().await.unwrap());
}

async fn log(server: &TestServer, key: &str, prompt: &str, texts: impl Iterator<Item = String>) {
    let logs: Vec<Value> = texts.map(|t| json!({"prompt_name": prompt, "response_text": t})).collect();
    for chunk in logs.chunks(10) {
        post_json(server, key, reqwest::Method::POST, "/api/v1/logs", json!({ "logs": chunk })).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// (batches, total scoring ms, batches that explained, explaining ms) from the debug lines.
fn scoring_costs(log: &str) -> (usize, f64, usize, f64) {
    let field = |line: &str, name: &str| -> f64 {
        line.split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (mut batches, mut total, mut explained, mut explaining) = (0, 0.0, 0, 0.0);
    for line in log.lines().filter(|l| l.contains("scored a batch")) {
        batches += 1;
        total += field(line, "elapsed_us") / 1e3;
        let e = field(line, "explain_us");
        if e > 0.0 {
            explained += 1;
            explaining += e / 1e3;
        }
    }
    (batches, total, explained, explaining)
}

async fn run(kind: Kind, prompts: usize, baseline: usize) {
    let Some(db) = TestDb::new(kind).await else { return };
    let (url, arrivals) = start_receiver().await;
    let server = TestServer::start(
        &db,
        &[
            ("DRIFTBALLOON_ALERTS_ALLOW_PRIVATE_NETWORKS", "true"),
            ("RUST_LOG", "info,driftballoon::worker=debug,tower_http=warn"),
            load::NO_RATE_LIMIT,
        ],
    );
    let key = server.first_key.clone().unwrap();
    post_json(
        &server,
        &key,
        reqwest::Method::POST,
        "/api/v1/alert-channels",
        json!({"kind": "webhook", "url": url, "events": ["drift.detected"]}),
    )
    .await;
    for p in 0..prompts {
        let name = format!("bench-{p}");
        log(&server, &key, &name, std::iter::once(support_answer(p))).await;
        post_json(
            &server,
            &key,
            reqwest::Method::PATCH,
            &format!("/api/v1/prompts/{name}"),
            json!({"min_baseline_samples": 10}),
        )
        .await;
    }
    let started = Instant::now();
    for p in 0..prompts {
        let name = format!("bench-{p}");
        log(&server, &key, &name, (1..baseline + 20).map(|i| support_answer(p * 1000 + i))).await;
        log(&server, &key, &name, (0..30).map(|i| biology_answer(p * 1000 + i))).await;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let semantic = |a: &[(f64, Value)]| a.iter().filter(|(_, v)| v["data"]["kind"] == "semantic").count();
    while semantic(&arrivals.lock().unwrap()) < prompts && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrivals = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<f64> = arrivals
        .iter()
        .map(|(at, v)| {
            let detected = chrono::DateTime::parse_from_rfc3339(v["data"]["detected_at"].as_str().unwrap()).unwrap();
            at - detected.timestamp_millis() as f64
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let (batches, scoring_ms, explained, explaining_ms) = scoring_costs(&server.log_text());
    println!(
        "{kind:?}: {} drift alerts ({} semantic) from {prompts} prompts with {baseline}-sample baselines in {:.0} s",
        arrivals.len(),
        semantic(&arrivals),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  drift event commit -> receiver: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    println!(
        "  scoring: {batches} batches, mean {:.2} ms; {explained} explained drift: {:.2} ms explaining per such batch, \
         {:.3} ms per scored batch overall ({:.1}% of scoring time)",
        scoring_ms / batches as f64,
        explaining_ms / explained.max(1) as f64,
        explaining_ms / batches as f64,
        100.0 * explaining_ms / scoring_ms
    );
}

/// Min and median of term_shifts over 200 runs (both less swayed by other processes than a mean).
fn time_term_shifts() {
    let response = |f: fn(usize) -> String, i: usize| (0..10).map(|k| f(i * 10 + k)).collect::<Vec<_>>().join(" ");
    let baseline: Vec<String> = (0..200).map(|i| response(support_answer, i)).collect();
    let recent: Vec<String> = (0..20).map(|i| response(biology_answer, i)).collect();
    let baseline: Vec<&str> = baseline.iter().map(String::as_str).collect();
    let recent: Vec<&str> = recent.iter().map(String::as_str).collect();
    let chars = baseline.iter().chain(&recent).map(|t| t.chars().count()).sum::<usize>() / 220;
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(driftballoon::drift::explain::term_shifts(&baseline, &recent, 5));
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "term_shifts, 200 + 20 responses of ~{chars} chars: min {:.2} ms, median {:.2} ms",
        times[0].as_secs_f64() * 1e3,
        times[100].as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    time_term_shifts();
    let setting = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (prompts, baseline) = (setting("PROMPTS", 110), setting("BASELINE", 30));
    run(Kind::Sqlite, prompts, baseline).await;
    run(Kind::Postgres, prompts, baseline).await;
}
