//! Overload sampling, on both backends: samples that arrive faster than the worker scores them
//! are all stored; a uniform, content-blind subsample of them is scored and the rest are
//! `skipped`; the rate shows in the prompt API and on `/metrics`; when the load drops, every
//! sample is scored again.

use std::time::{Duration, Instant};

use crate::common::{self, TestDb, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, Row};

const PROMPT: &str = "overloaded";

/// One metric's value from the Prometheus text, by its full sample name with labels.
fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn metrics_text(server: &TestServer) -> String {
    server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The values of every `driftballoon_prompt_sampling_rate` gauge in the Prometheus text.
fn sampling_gauges(text: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.starts_with("driftballoon_prompt_sampling_rate{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect()
}

async fn prompt(server: &TestServer, key: &str) -> Value {
    let (status, body) = server.get(key, &format!("/api/v1/prompts/{PROMPT}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every sample's (arrival number, state), from the database. The arrival number is in the text.
async fn states(db: &TestDb) -> Vec<(usize, String)> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let rows = sqlx::query("SELECT response_text, state FROM samples ORDER BY id").fetch_all(&mut conn).await.unwrap();
    rows.iter()
        .map(|r| {
            let text: String = r.get(0);
            let number = text.rsplit_once("(arrival ").and_then(|(_, n)| n.trim_end_matches(')').parse().ok());
            (number.unwrap_or_else(|| panic!("no arrival number in {text:?}")), r.get(1))
        })
        .collect()
}

fn log(i: usize) -> Value {
    json!({"prompt_name": PROMPT, "response_text": format!("{} (arrival {i})", common::answer(i, 12))})
}

both_backends!(an_overload_is_sampled_and_full_scoring_returns, |db: TestDb| async move {
    // 3,000 samples over about six seconds, several times what the worker scores. A bound of
    // two seconds makes that an overload; at the default (60 s) it takes minutes of the model's
    // time to get there. Nothing else is changed.
    let server = TestServer::start(&db, &[("DRIFTBALLOON_WORKER_MAX_SCORING_DELAY_SECS", "2")]);
    let key = server.first_key.clone().unwrap();
    let sent = 3000;
    for batch in 0..sent / 100 {
        let logs: Vec<Value> = (batch * 100..(batch + 1) * 100).map(log).collect();
        let (status, body) = server.post_logs(&key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Until the backlog is gone, watch the rate in the API and on /metrics.
    let started = Instant::now();
    let (mut lowest_rate, mut lowest_gauge) = (1.0_f64, 1.0_f64);
    let last_scrape = loop {
        let body = prompt(&server, &key).await;
        lowest_rate = lowest_rate.min(body["sampling_rate"].as_f64().unwrap());
        let text = metrics_text(&server).await;
        let gauges = sampling_gauges(&text);
        lowest_gauge = gauges.into_iter().fold(lowest_gauge, f64::min);
        if body["samples"]["pending"] == 0 {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "backlog not gone: {body}\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let counts = prompt(&server, &key).await["samples"].clone();

    // Everything is stored; what was not scored was skipped, nothing failed.
    let (done, skipped) = (counts["done"].as_i64().unwrap(), counts["skipped"].as_i64().unwrap());
    assert_eq!(counts["total"], sent, "{counts}");
    assert_eq!(counts["failed"], 0, "{counts}");
    assert!(skipped > 0 && done > 0, "an overload is sampled: {counts}");
    assert_eq!(done + skipped, sent as i64, "{counts}");
    assert!(lowest_rate < 1.0, "the API showed the sampling rate ({lowest_rate})");
    assert!(lowest_gauge < 1.0, "/metrics showed the sampling rate ({lowest_gauge})");
    assert_eq!(metric(&last_scrape, "driftballoon_samples_skipped_total"), Some(skipped as f64));

    // The subsample is content-blind (even and odd arrivals carry different answers) and spread
    // over the whole burst, not its oldest or newest part.
    let states = states(&db).await;
    assert_eq!(states.len(), sent);
    let mut kept_by_parity = [0usize; 2];
    let mut kept_by_fifth = [0usize; 5];
    for (arrival, state) in &states {
        assert!(state == "done" || state == "skipped", "{arrival}: {state}");
        if state == "done" {
            kept_by_parity[arrival % 2] += 1;
            kept_by_fifth[arrival * 5 / sent] += 1;
        }
    }
    let share = |n: usize| n as f64 / (sent / 2) as f64;
    assert!((share(kept_by_parity[0]) - share(kept_by_parity[1])).abs() < 0.06, "kept by parity {kept_by_parity:?}");
    assert!(kept_by_fifth.iter().all(|&n| n > 0), "kept in each fifth of the burst: {kept_by_fifth:?}");

    // When the load drops, the rate returns to 1 and every new sample is scored.
    let started = Instant::now();
    while prompt(&server, &key).await["sampling_rate"] != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the rate did not return to 1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for batch in 0..5 {
        let logs: Vec<Value> = (sent + batch * 10..sent + (batch + 1) * 10).map(log).collect();
        let (status, body) = server.post_logs(&key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = server.wait_processed(&key, PROMPT).await;
    assert_eq!(after["samples"]["done"], done + 50, "{after}");
    assert_eq!(after["samples"]["skipped"], skipped, "{after}");
    assert_eq!(after["sampling_rate"], 1.0);
    let gauges = sampling_gauges(&metrics_text(&server).await);
    assert!(!gauges.is_empty() && gauges.iter().all(|&rate| rate == 1.0), "{gauges:?}");
    server.assert_no_server_errors();
});
