//! What the load benchmarks share beyond the test harness: the rate limit named off, timed posts
//! and concurrent client loops.

use std::time::{Duration, Instant};

use serde_json::Value;

/// The optional hard per-key cap (`rate_limit_per_key`) off, as it is by default: benchmarks
/// name it so a figure never depends on a changed default.
pub const NO_RATE_LIMIT: (&str, &str) = ("DRIFTBALLOON_RATE_LIMIT_PER_KEY", "0");

/// The lines of one real-text stream of `bench-data/streams/` (from scripts/quality-data.sh).
pub fn stream(name: &str) -> Vec<String> {
    let path = crate::common::repo_root().join("bench-data/streams").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/quality-data.sh", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Benchmarks: posts one batch, asserts 202, returns how long the request took.
pub async fn timed_post_logs(http: &reqwest::Client, url: &str, key: &str, logs: Vec<Value>) -> Duration {
    let started = Instant::now();
    let resp = http.post(url).header("X-API-Key", key).json(&serde_json::json!({ "logs": logs })).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    started.elapsed()
}

/// Benchmarks: `clients` concurrent loops, each awaiting `request(client, n)` for n = 0, 1, ...
/// until `seconds` have passed. Returns every call's latency, sorted, and the wall time in
/// seconds.
pub async fn drive_clients<F, Fut>(clients: usize, seconds: u64, request: F) -> (Vec<Duration>, f64)
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let call = Instant::now();
                    request(client, latencies.len()).await;
                    latencies.push(call.elapsed());
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
    (latencies, started.elapsed().as_secs_f64())
}
