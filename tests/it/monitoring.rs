//! `GET /metrics`: scraped after real traffic and parsed with the official Prometheus Python
//! client's parser (tests/sdk/parse_metrics.py), then checked for what docs/operations.md,
//! "Monitoring", promises: request durations by route template (never raw paths), ingest
//! accepted and rejected by reason, the embedding backlog and throughput, drift and pool gauges.
//! With `metrics_listen_addr` set, `/metrics` moves to that address alone.

use crate::common;
use std::time::Duration;

use crate::common::{run_python, TestDb, TestServer};
use serde_json::{json, Value};

/// The scrape, parsed: family name -> {type, samples}.
async fn scrape(server: &TestServer, url: &str) -> Value {
    let resp = server.http.get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = resp.text().await.unwrap();
    let file = std::env::temp_dir().join(format!("driftballoon-metrics-{}-{}.txt", std::process::id(), rand_suffix()));
    std::fs::write(&file, &text).unwrap();
    let parsed = tokio::task::spawn_blocking({
        let file = file.clone();
        move || run_python("tests/sdk/parse_metrics.py", &[file.to_str().unwrap()], &[])
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&file);
    serde_json::from_str(parsed.trim()).unwrap()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// The samples of a family whose labels include every pair of `labels`.
fn samples<'a>(families: &'a Value, family: &str, sample: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    let Some(f) = families.get(family) else { return Vec::new() };
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == sample && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .collect()
}

fn value(families: &Value, family: &str, sample: &str, labels: &[(&str, &str)]) -> f64 {
    samples(families, family, sample, labels).iter().map(|s| s["value"].as_f64().unwrap()).sum()
}

both_backends!(metrics_describe_the_traffic, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();

    let logs: Vec<Value> = (0..12)
        .map(|i| json!({"prompt_name": "metrics prompt/α", "response_text": format!("Answer {i} about shipping times.")}))
        .collect();
    let (status, _) = server.post_logs(&key, &json!({ "logs": logs })).await;
    assert_eq!(status, 202);
    let (status, _) = server.post_logs(&key, &json!({"logs": [{"prompt_name": ""}]})).await;
    assert_eq!(status, 422);
    server.wait_processed(&key, "metrics prompt/α").await;
    let (status, _) = server.get(&key, &format!("/api/v1/prompts/{}", common::encode("metrics prompt/α"))).await;
    assert_eq!(status, 200);
    let unauthorized = server.http.post(server.url("/api/v1/logs")).json(&json!({"logs": []})).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);

    let m = scrape(&server, &server.url("/metrics")).await;
    assert_eq!(m["http_server_request_duration_seconds"]["type"], "histogram");
    let accepted_logs =
        [("http_request_method", "POST"), ("http_route", "/api/v1/logs"), ("http_response_status_code", "202")];
    assert_eq!(
        value(&m, "http_server_request_duration_seconds", "http_server_request_duration_seconds_count", &accepted_logs),
        1.0
    );
    let buckets = samples(
        &m,
        "http_server_request_duration_seconds",
        "http_server_request_duration_seconds_bucket",
        &accepted_logs,
    );
    assert!(buckets.len() >= 10 && buckets.iter().any(|b| b["labels"]["le"] == "+Inf"), "{buckets:?}");
    // the prompt's URL is reported by its route template only
    let detail = [("http_route", "/api/v1/prompts/{name}"), ("http_response_status_code", "200")];
    // (waiting for the samples to be processed reads it too)
    assert!(
        value(&m, "http_server_request_duration_seconds", "http_server_request_duration_seconds_count", &detail) >= 1.0
    );
    let text = m.to_string();
    assert!(!text.contains("metrics prompt") && !text.contains("%CE%B1"), "a raw path reached a label");
    assert_eq!(m["http_server_active_requests"]["type"], "gauge");

    // ingest: accepted by signal; refused requests by the error code they were answered with
    assert_eq!(
        value(&m, "driftballoon_ingest_accepted", "driftballoon_ingest_accepted_total", &[("signal", "logs")]),
        12.0
    );
    let rejected = "driftballoon_ingest_rejected_requests";
    let rejected_total = "driftballoon_ingest_rejected_requests_total";
    assert_eq!(value(&m, rejected, rejected_total, &[("signal", "logs"), ("reason", "validation_failed")]), 1.0);
    assert_eq!(value(&m, rejected, rejected_total, &[("signal", "logs"), ("reason", "unauthorized")]), 1.0);

    // the worker: everything embedded, nothing waiting
    assert!(value(&m, "driftballoon_embeddings", "driftballoon_embeddings_total", &[]) >= 12.0);
    let runs = "driftballoon_embedding_batch_duration_seconds";
    assert!(value(&m, runs, &format!("{runs}_count"), &[]) >= 1.0);
    assert_eq!(value(&m, "driftballoon_embedding_backlog", "driftballoon_embedding_backlog", &[]), 0.0);
    assert_eq!(m["driftballoon_embedding_backlog_oldest_age_seconds"]["type"], "gauge");
    assert_eq!(value(&m, "driftballoon_prompts_drifted", "driftballoon_prompts_drifted", &[]), 0.0);
    let pools = samples(&m, "driftballoon_db_pool_connections", "driftballoon_db_pool_connections", &[]);
    assert!(pools.len() >= 2, "{pools:?}");
    let waits = "driftballoon_db_write_wait_seconds";
    assert!(value(&m, waits, &format!("{waits}_count"), &[]) >= 1.0, "write waits not measured");
    server.assert_no_server_errors();
});

both_backends!(metrics_can_have_their_own_address, |db: TestDb| async move {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let server = TestServer::start(&db, &[("DRIFTBALLOON_METRICS_LISTEN_ADDR", addr.as_str())]);
    assert!(server.log_text().contains(&format!("metrics on http://{addr}/metrics")));
    let main = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status().as_u16(), 404, "/metrics is still on the API address");
    let m = scrape(&server, &format!("http://{addr}/metrics")).await;
    assert!(m.get("driftballoon_embedding_backlog").is_some(), "{m}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.assert_no_server_errors();
});
