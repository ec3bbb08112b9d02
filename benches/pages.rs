//! How long the dashboard's pages take with a big project: PROMPTS prompts (default 1,000) with
//! SAMPLES_PER_PROMPT samples each (default 1,000, so 1,000,000 samples) and TRACES traces of
//! three spans (default 20,000), on a release build of the server, on SQLite and (with
//! TEST_DATABASE_URL) on Postgres.
//!
//! The server is started once to create the schema and the first key, stopped, and the data is
//! written straight into its database with set-based SQL (one portable statement per table;
//! the worker finds every sample already scored, so it stays idle). Then the server is started
//! again, a browser-like client signs in, and each page is fetched 3 times to warm up and 30
//! times measured, one at a time, on loopback: the figures are the server's time plus a
//! loopback round trip.
//!
//! `make bench-pages`, or `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench pages`

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)] // a bench uses a part of the load helpers
mod load;

use std::time::{Duration, Instant};

use common::{percentile_ms, Kind, TestDb, TestServer};
use sqlx::any::AnyPoolOptions;

/// The pages measured; `{prompt}` is a drifted prompt, `{before}` a sample id in its middle,
/// `{trace}` a trace id.
const PAGES: &[&str] = &[
    "/",
    "/?partial=1",
    "/?sort=semantic&dir=desc",
    "/?sort=length&dir=desc&page=10",
    "/?status=drifted",
    "/?q=support-bot-109",
    "/ui/prompts/{prompt}",
    "/ui/prompts/{prompt}?before={before}",
    "/ui/traces",
    "/ui/traces?status=ERROR",
    "/ui/traces/{trace}",
    "/ui/model-configs",
    "/ui/templates",
    "/ui/alerts",
    "/ui/project",
];

fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `WITH RECURSIVE` numbers 0..n, written once for both backends.
fn numbers(n: i64) -> String {
    format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {})", n - 1)
}

const FILLER: &str = "We have checked your order and the parcel is on its way: the carrier expects to deliver \
     it within two working days, and you will get a tracking link by email as soon as it is scanned.";

/// Writes the prompts, samples, baselines, drift events and traces; returns a sample id from
/// the middle of `prompt`'s samples (the cursor of a later samples page).
async fn seed(url: &str, prompts: i64, per_prompt: i64, traces: i64, prompt: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new().max_connections(1).connect(url).await.expect("connect to the database");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let explanation = r#"{"kind":"semantic","content_captured":true,"farthest_recent":[{"sample_id":1,"similarity":0.12,"text":"Mitochondria produce ATP."}],"closest_baseline":[{"sample_id":2,"similarity":0.91,"text":"Your order ships tomorrow."}],"terms_rose":[{"term":"cell","baseline_share":0.0,"recent_share":0.6}],"terms_fell":[{"term":"order","baseline_share":0.7,"recent_share":0.1}]}"#;
    let statements = [
        // 5% drifted, 10% still learning, the rest ready
        format!(
            "{} INSERT INTO prompts (project_id, name, status, created_at, updated_at) \
             SELECT 1, 'support-bot-' || (10000 + i), CASE WHEN i % 20 = 0 THEN 'drifted' ELSE 'active' END, {now}, {now} FROM n",
            numbers(prompts)
        ),
        format!(
            "{} INSERT INTO samples (project_id, prompt_id, prompt_version, response_text, response_length, received_at, \
                 state, similarity, semantic_score, length_score, processed_at) \
             SELECT 1, p.id, 'a', 'Order #' || (i * 7919 % 100000) || ': {FILLER}', 210, {now} - (n.i * 600000), \
                 'done', 0.7 + (i % 30) * 0.01, 0.8 + (i % 20) * 0.01, ((i % 40) - 20) * 0.05, {now} \
             FROM prompts p CROSS JOIN n",
            numbers(per_prompt)
        ),
        format!(
            "INSERT INTO prompt_baselines (prompt_id, version, status, sample_count, model_id, semantic_score, \
                 length_score, state, updated_at) \
             SELECT p.id, 'a', CASE WHEN p.id % 10 = 2 THEN 'learning' ELSE 'ready' END, \
                 CASE WHEN p.id % 10 = 2 THEN 12 ELSE 30 END, 'bench', 0.5 + (p.id % 50) * 0.01, (p.id % 30) * 0.1, '{{}}', {now} \
             FROM prompts p"
        ),
        format!(
            "{} INSERT INTO drift_events (project_id, prompt_id, version, kind, score, threshold, window_size, sample_id, \
                 switched_to, explanation, created_at) \
             SELECT 1, p.id, 'a', CASE WHEN n.i = 0 THEN 'semantic' ELSE 'length' END, 0.55, 0.7, 20, \
                 (SELECT MAX(s.id) FROM samples s WHERE s.prompt_id = p.id), NULL, '{explanation}', {now} - n.i * 3600000 \
             FROM prompts p CROSS JOIN n WHERE p.status = 'drifted'",
            numbers(3)
        ),
        format!(
            "{} INSERT INTO traces (project_id, trace_id, start_ms, end_ms, span_count, error_count, input_tokens, \
                 output_tokens, session_id, config_key, root_name) \
             SELECT 1, 'trace' || (1000000 + i), {now} - i * 30000, {now} - i * 30000 + 900, 3, \
                 CASE WHEN i % 25 = 0 THEN 1 ELSE 0 END, 120, 40, 'session-' || (i % 500), 'summarizer', 'handle request' FROM n",
            numbers(traces)
        ),
        format!(
            "{} INSERT INTO spans (project_id, trace_id, span_id, parent_span_id, source, session_id, config_key, name, model, \
                 start_ms, end_ms, duration_ms, status, input_tokens, output_tokens, total_tokens, attributes, received_at) \
             SELECT 1, t.trace_id, t.trace_id || '-' || n.i, CASE WHEN n.i = 0 THEN NULL ELSE t.trace_id || '-0' END, \
                 'otlp', t.session_id, t.config_key, CASE WHEN n.i = 0 THEN 'handle request' ELSE 'chat gpt-4o-mini' END, \
                 CASE WHEN n.i = 0 THEN NULL ELSE 'gpt-4o-mini' END, t.start_ms + n.i * 100, t.end_ms - n.i * 100, \
                 900 - n.i * 200, CASE WHEN t.error_count > 0 AND n.i = 2 THEN 'ERROR' ELSE 'OK' END, 60, 20, 80, '{{}}', {now} \
             FROM traces t CROSS JOIN n",
            numbers(3)
        ),
    ];
    for sql in &statements {
        sqlx::query(sql).execute(&pool).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let middle: i64 = sqlx::query_scalar(
        "SELECT s.id FROM samples s JOIN prompts p ON p.id = s.prompt_id WHERE p.name = $1 ORDER BY s.id LIMIT 1 OFFSET $2",
    )
    .bind(prompt)
    .bind(per_prompt / 2)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    middle
}

async fn sign_in(server: &TestServer, key: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = client.post(server.url("/ui/sign-in")).form(&[("api_key", key)]).send().await.unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn measure(server: &TestServer, cookie: &str, path: &str) -> (u16, Vec<Duration>, usize) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let fetch = || async {
        let started = Instant::now();
        let resp = client.get(server.url(path)).header("cookie", cookie).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        (status, started.elapsed(), body.len())
    };
    for _ in 0..3 {
        fetch().await;
    }
    let mut times = Vec::new();
    let (mut status, mut bytes) = (0, 0);
    for _ in 0..30 {
        let (s, t, b) = fetch().await;
        (status, bytes) = (s, b);
        times.push(t);
    }
    times.sort();
    (status, times, bytes)
}

async fn run(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let (prompts, per_prompt, traces) =
        (env_number("PROMPTS", 1000), env_number("SAMPLES_PER_PROMPT", 1000), env_number("TRACES", 20_000));
    let mut server = TestServer::start(&db, &[load::NO_RATE_LIMIT]);
    let key = server.first_key.clone().unwrap();
    server.terminate();
    // every 20th prompt is drifted
    let drifted = format!("support-bot-{}", 10000 + 20 * (prompts / 40));
    let started = Instant::now();
    let before = seed(&db.url, prompts, per_prompt, traces, &drifted).await;
    println!(
        "\n== {kind:?}: {prompts} prompts x {per_prompt} samples = {} samples, {traces} traces x 3 spans; seeded in {:.1} s",
        prompts * per_prompt,
        started.elapsed().as_secs_f64()
    );
    if kind == Kind::Sqlite {
        let size: u64 = std::fs::read_dir(&db.dir)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        println!("SQLite files: {:.0} MiB", size as f64 / 1048576.0);
    }
    let server = TestServer::start(&db, &[("DRIFTBALLOON_ALERTS_ENABLED", "false"), load::NO_RATE_LIMIT]);
    let cookie = sign_in(&server, &key).await;
    println!("{:<40} {:>6} {:>8} {:>8} {:>8} {:>9}", "page", "status", "p50 ms", "p95 ms", "max ms", "bytes");
    for page in PAGES {
        let path = page
            .replace("{prompt}", &drifted)
            .replace("{before}", &before.to_string())
            .replace("{trace}", &format!("trace{}", 1_000_000 + traces / 2));
        let (status, times, bytes) = measure(&server, &cookie, &path).await;
        assert!(status < 500, "{path} answered {status}");
        println!(
            "{:<40} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>9}",
            page,
            status,
            percentile_ms(&times, 0.50),
            percentile_ms(&times, 0.95),
            times.last().unwrap().as_secs_f64() * 1000.0,
            bytes
        );
    }
    server.assert_no_server_errors();
}

#[tokio::main]
async fn main() {
    run(Kind::Sqlite).await;
    run(Kind::Postgres).await;
}
