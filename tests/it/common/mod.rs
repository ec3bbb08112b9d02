//! Test harness: starts the real `driftballoon` binary against a fresh database (an SQLite file
//! in a temp folder, or a new database on the Postgres named by TEST_DATABASE_URL) and talks
//! to it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod clock;
pub mod receiver;
pub mod texts;

pub const BIN: &str = env!("CARGO_BIN_EXE_driftballoon");

/// The server binary to run: this build's, or for before/after benchmarks another build named by
/// DRIFTBALLOON_BENCH_BIN (tests never set it).
pub fn server_bin() -> String {
    std::env::var("DRIFTBALLOON_BENCH_BIN").ok().filter(|b| !b.is_empty()).unwrap_or_else(|| BIN.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pub dir: PathBuf,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}_{}", std::process::id(), n, nanos % 1_000_000_000)
}

fn postgres_admin_url_if_set() -> Option<String> {
    std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())
}

/// The Postgres server URL tests use, or None when Postgres tests are not configured.
/// With DRIFTBALLOON_REQUIRE_POSTGRES=1 (set by `make test` and CI) a missing URL fails the test.
pub fn postgres_admin_url() -> Option<String> {
    match postgres_admin_url_if_set() {
        Some(url) => Some(url),
        None => {
            assert!(
                std::env::var("DRIFTBALLOON_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "DRIFTBALLOON_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set: Postgres tests must run"
            );
            eprintln!("TEST_DATABASE_URL not set: skipping the Postgres variant");
            None
        }
    }
}

/// The process id inside a name made by [`unique_name`] with this prefix.
fn pid_in_name(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.strip_prefix('_')?.split('_').next()?.parse().ok()
}

/// Whether a name made by [`unique_name`] belongs to a test process that has exited. Without
/// `/proc` (not Linux) nothing is known to have exited.
fn left_by_exited_process(name: &str, prefix: &str) -> bool {
    Path::new("/proc/self").exists()
        && pid_in_name(name, prefix).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Test databases and folders are kept while their test process runs (a failed test's data
/// stays for a look), so each test process removes the ones of exited processes, once: without
/// this, every run left hundreds behind. Names whose process still runs are never touched, and a
/// database something still uses is skipped (DROP fails and is ignored).
async fn sweep_leftovers(admin_url: Option<&str>) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
                for entry in entries.flatten() {
                    if left_by_exited_process(&entry.file_name().to_string_lossy(), "driftballoon_test") {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
            let Some(admin_url) = admin_url else { return };
            let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await else { return };
            let names: Vec<String> =
                sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'dbtest\\_%'")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
            for name in names.iter().filter(|n| left_by_exited_process(n, "dbtest")) {
                let _ = sqlx::Executor::execute(&mut conn, format!("DROP DATABASE IF EXISTS {name}").as_str()).await;
            }
        })
        .await;
}

impl TestDb {
    pub async fn new(kind: Kind) -> Option<TestDb> {
        sweep_leftovers(postgres_admin_url_if_set().as_deref()).await;
        let dir = std::env::temp_dir().join(unique_name("driftballoon_test"));
        std::fs::create_dir_all(&dir).unwrap();
        match kind {
            Kind::Sqlite => {
                let url = format!("sqlite://{}", dir.join("test.db").display());
                Some(TestDb { kind, url, dir })
            }
            Kind::Postgres => {
                let admin = postgres_admin_url()?;
                let name = unique_name("dbtest");
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL: {e}"));
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await.unwrap();
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Some(TestDb { kind, url: format!("{base}/{name}"), dir })
            }
        }
    }
}

/// Runs a CLI command against the database; returns (exit code, stdout, stderr).
pub fn run_cli(db: &TestDb, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(server_bin())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .envs(extra_env.iter().copied())
        .current_dir(&db.dir)
        .output()
        .expect("run driftballoon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates a key with `keys create` and returns it (the last line of stdout).
pub fn create_key(db: &TestDb, project: &str) -> String {
    let (code, stdout, stderr) = run_cli(db, &["keys", "create", "--project", project], &[]);
    assert_eq!(code, 0, "keys create failed: {stderr}");
    stdout.lines().last().unwrap().trim().to_string()
}

pub struct TestServer {
    pub child: Child,
    pub base: String,
    /// The key printed on first start, if this start printed one.
    pub first_key: Option<String>,
    pub log: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
}

impl TestServer {
    /// Starts `driftballoon serve` on a free port and waits until it listens.
    pub fn start(db: &TestDb, extra_env: &[(&str, &str)]) -> TestServer {
        let mut child = Command::new(server_bin())
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("DRIFTBALLOON_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info,tower_http=warn")
            .env("DRIFTBALLOON_MODEL_DIR", repo_root().join("models"))
            .envs(extra_env.iter().copied())
            .current_dir(&db.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn driftballoon serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut first_key = None;
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start; log:\n{}", log.lock().unwrap().join("\n"));
            };
            if line.contains("FIRST START") {
                // never in the log: in the key file (first_key_file, relative to the working folder)
                let file = extra_env
                    .iter()
                    .find(|(name, _)| *name == "DRIFTBALLOON_FIRST_KEY_FILE")
                    .map_or_else(|| db.dir.join("data/first-api-key"), |(_, path)| db.dir.join(path));
                let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                first_key = Some(text.trim().to_string());
            }
            if let Some(addr) = line.split("listening on ").nth(1) {
                let base = addr.trim().to_string();
                return TestServer { child, base, first_key, log, http: reqwest::Client::new() };
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Fails the test if the server ever answered 5xx or panicked.
    pub fn assert_no_server_errors(&self) {
        self.assert_no_server_errors_except_503s(0);
    }

    /// [`Self::assert_no_server_errors`], for a test that makes the server answer exactly
    /// `expected` 503s on purpose (load shedding).
    pub fn assert_no_server_errors_except_503s(&self, expected: usize) {
        let failed: Vec<String> =
            self.log_text().lines().filter(|l| l.contains("response failed")).map(str::to_string).collect();
        assert!(failed.iter().all(|l| l.contains("503")), "server answered 5xx: {failed:?}");
        assert_eq!(failed.len(), expected, "503 answers: {failed:?}");
        self.assert_no_other_server_errors();
    }

    fn assert_no_other_server_errors(&self) {
        if let Some(key) = &self.first_key {
            assert!(!self.log_text().contains(key.as_str()), "the first-start key is in the log");
        }
        let log = self.log_text();
        assert!(!log.contains("panicked"), "server panicked:\n{log}");
        assert!(!log.contains("database error"), "server hit a database error:\n{log}");
        let worker_problem =
            log.lines().any(|l| l.contains("driftballoon::worker") && (l.contains(" WARN ") || l.contains(" ERROR ")));
        assert!(!worker_problem, "the worker reported a problem:\n{log}");
        // (tower-http's TraceLayer logs every 5xx answer as "response failed" at error level:
        // the callers above count those)
    }

    pub async fn post_logs(&self, key: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.post(self.url("/api/v1/logs")).header("X-API-Key", key).json(body).send().await.unwrap();
        status_json(resp).await
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).bearer_auth(key).send().await.unwrap();
        status_json(resp).await
    }

    /// GET /api/v1/prompts/{name} once every sample of the prompt has been scored.
    pub async fn wait_processed(&self, key: &str, prompt: &str) -> Value {
        let path = format!("/api/v1/prompts/{}", encode(prompt));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(key, &path).await;
            assert_eq!(status, 200, "{body}");
            if body["samples"]["pending"] == 0 {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "samples of {prompt} not processed in time: {body}\nserver log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many samples the server holds for a prompt (0 if it does not exist).
    pub async fn sample_total(&self, key: &str, prompt: &str) -> i64 {
        let (status, body) = self.get(key, &format!("/api/v1/prompts/{}", encode(prompt))).await;
        if status == 404 {
            return 0;
        }
        assert_eq!(status, 200, "{body}");
        body["samples"]["total"].as_i64().unwrap()
    }

    pub async fn config(&self, key: &str) -> Value {
        let (status, body) = self.get(key, "/api/v1/config").await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn status_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Tests that time the server under a heavy load of its own take turns: two at once on this
/// machine's 2 cores would each see half the CPU and measure that instead. (One test binary runs
/// every area's tests side by side.)
pub async fn heavy_load_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Declares one test per backend: `NAME::sqlite` and `NAME::postgres`, each on a fresh database.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::new($crate::common::Kind::Sqlite).await.unwrap();
                ($body)(db).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::common::TestDb::new($crate::common::Kind::Postgres).await {
                    ($body)(db).await;
                }
            }
        }
    };
}

/// Runs one script of tests/sdk/ with the real SDKs' venv; fails the test with its output.
pub fn run_sdk_script(script: &str, env: &[(&str, &str)]) {
    run_sdk_script_with(script, &[], env)
}

/// [`run_sdk_script`] with command-line arguments for the script.
pub fn run_sdk_script_with(script: &str, args: &[&str], env: &[(&str, &str)]) {
    run_python(&format!("tests/sdk/{script}"), args, env);
}

/// The venv's Python (`.venv-sdk`, made by `scripts/sdk-venv.sh`), as a command to run.
///
/// It runs without any preloaded library: `scripts/test-a-year-ahead.sh` runs the suite with
/// libfaketime preloaded to move the server's and the tests' clocks a year ahead, and CPython's
/// socket servers stop answering with it loaded. So the SDKs and helpers run at the real clock,
/// as clients whose clock is a year behind the server's.
pub fn python() -> Command {
    let python = repo_root().join(".venv-sdk/bin/python");
    assert!(python.exists(), "{} missing: run `make test` (or scripts/sdk-venv.sh) first", python.display());
    let mut command = Command::new(python);
    command.env_remove("LD_PRELOAD");
    command
}

/// Runs a Python script (path relative to the repo root) with the venv of `scripts/sdk-venv.sh`
/// (`.venv-sdk`); fails the test with its output, else prints and returns its stdout.
pub fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = python().arg(repo_root().join(script)).args(args).envs(env.iter().copied()).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
    stdout
}

/// Benchmarks: the p-quantile (0..1) of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Every text column and attribute document of the database, searched for `needle`.
pub async fn database_contains(db: &TestDb, needle: &str) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let mut found = Vec::new();
    for (table, columns) in [
        (
            "spans",
            "name || ' ' || COALESCE(error_message, '') || ' ' || COALESCE(request_text, '') || ' ' || \
             COALESCE(response_text, '') || ' ' || attributes || ' ' || COALESCE(metadata, '') || ' ' || COALESCE(tags, '')",
        ),
        ("otel_resources", "attributes"),
        (
            "log_records",
            "COALESCE(body, '') || ' ' || attributes || ' ' || COALESCE(request_text, '') || ' ' || \
             COALESCE(response_text, '') || ' ' || COALESCE(event_name, '')",
        ),
        ("samples", "response_text || ' ' || COALESCE(input_text, '')"),
        ("traces", "COALESCE(root_name, '')"),
        ("drift_events", "COALESCE(explanation, '')"),
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE ({columns}) LIKE $1");
        let n: i64 = sqlx::query(&sql).bind(format!("%{needle}%")).fetch_one(&mut conn).await.unwrap().try_get::<i64, _>("n").unwrap();
        if n > 0 {
            found.push(format!("{table}: {n} rows"));
        }
    }
    found
}

/// A support-style answer of about `words` words, different for every `i` (for tests and
/// benchmarks that need many distinct, realistic texts).
pub fn answer(i: usize, words: usize) -> String {
    const WORDS: [&str; 30] = [
        "refund",
        "order",
        "shipping",
        "account",
        "password",
        "invoice",
        "delivery",
        "warranty",
        "upgrade",
        "support",
        "billing",
        "address",
        "tracking",
        "return",
        "discount",
        "subscription",
        "receipt",
        "exchange",
        "payment",
        "the",
        "your",
        "we",
        "will",
        "today",
        "within",
        "days",
        "please",
        "check",
        "email",
        "team",
    ];
    let mut text = format!("Reply {i}:");
    for w in 0..words {
        text.push(' ');
        text.push_str(WORDS[(i.wrapping_mul(2654435761) >> 7).wrapping_add(w * 17 + w * w) % WORDS.len()]);
    }
    text
}

/// A memory figure of a process from /proc/PID/status in MiB: `VmRSS:` (now) or `VmHWM:` (peak).
pub fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
