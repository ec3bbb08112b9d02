//! Protection from one client: the per-key rate limit (429 + Retry-After, and the real
//! `driftballoon` SDK still delivers every log through it), the global bound on requests in
//! flight (503 + Retry-After under a burst, health checks still answered, recovery after), and
//! the failed-auth budget per client address.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{run_sdk_script, TestDb, TestServer};
use serde_json::{json, Value};

async fn metrics_text(server: &TestServer) -> String {
    let resp = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap()
}

/// The value of the first sample line starting with `series` (name and labels as rendered).
fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(series)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

both_backends!(the_sdk_delivers_every_log_through_the_rate_limit, |db: TestDb| async move {
    let server =
        TestServer::start(&db, &[("DRIFTBALLOON_RATE_LIMIT_PER_KEY", "4"), ("DRIFTBALLOON_RATE_LIMIT_BURST", "4")]);
    let key = server.first_key.clone().unwrap();

    // over the burst at once: 429 with Retry-After and the JSON error
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = server.http.get(server.url("/api/v1/config")).header("X-API-Key", &key).send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 429 {
            let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 4, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 120 logs = 12 requests of 10, flushed 5 at a time with config polls in between
    let logs = 120;
    // the script blocks this test's thread; the server is another process
    run_sdk_script(
        "driftballoon_rate_limited.py",
        &[("DRIFTBALLOON_API_KEY", key.as_str()), ("DRIFTBALLOON_BASE_URL", server.base.as_str()), ("LOGS", "120")],
    );
    // read with another key: this one's bucket is the SDK's
    let reader = common::create_key(&db, "default");
    assert_eq!(server.sample_total(&reader, "rate-limited").await, logs);
    let text = metrics_text(&server).await;
    let limited = sample_value(&text, "driftballoon_rate_limited_total").unwrap_or(0.0);
    assert!(limited >= 3.0, "the SDK's flushes were never rate limited ({limited} 429s)");
    let logs_429 = sample_value(
        &text,
        "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/api/v1/logs\",http_response_status_code=\"429\"}",
    )
    .unwrap_or(0.0);
    assert!(logs_429 >= 1.0, "no log batch got a 429:\n{text}");
    server.assert_no_server_errors();
});

/// Sends a request's headers and half its body, and keeps the connection: the request is in
/// flight until the rest is sent.
fn half_sent_request(server: &TestServer, key: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/v1/logs HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..body.len() / 2]).unwrap();
    stream
}

fn finish_request(mut stream: TcpStream, body: &str) -> String {
    stream.write_all(&body.as_bytes()[body.len() / 2..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

both_backends!(the_server_sheds_load_beyond_its_bound_and_recovers, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_MAX_CONCURRENT_REQUESTS", "2")]);
    let key = server.first_key.clone().unwrap();
    let body = json!({"logs": [{"prompt_name": "shed", "response_text": "A slow request's answer."}]}).to_string();

    let slow: Vec<TcpStream> = (0..2).map(|_| half_sent_request(&server, &key, &body)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // a burst while two requests are in flight: all shed at once, with Retry-After
    let burst = futures_util::future::join_all((0..8).map(|_| {
        server.http.post(server.url("/api/v1/logs")).header("X-API-Key", &key).json(&json!({"logs": []})).send()
    }))
    .await;
    for resp in burst {
        let resp = resp.unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
    }
    // health checks and metrics are exempt
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = server.http.get(server.url(path)).send().await.unwrap().status().as_u16();
        assert_eq!(status, 200, "{path} while overloaded");
    }

    // the requests in flight finish normally, and then the server takes new ones
    for stream in slow {
        let body = body.clone();
        let answer = tokio::task::spawn_blocking(move || finish_request(stream, &body)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    }
    let (status, _) =
        server.post_logs(&key, &json!({"logs": [{"prompt_name": "shed", "response_text": "After the burst."}]})).await;
    assert_eq!(status, 202);
    assert_eq!(server.sample_total(&key, "shed").await, 3);
    let text = metrics_text(&server).await;
    assert_eq!(sample_value(&text, "driftballoon_requests_shed_total"), Some(8.0), "{text}");
    server.assert_no_server_errors_except_503s(8);
});

both_backends!(invalid_keys_from_one_address_are_limited, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_FAILED_AUTH_PER_MINUTE", "5")]);
    let key = server.first_key.clone().unwrap();
    let get = |key: String| {
        let request = server.http.get(server.url("/api/v1/prompts")).bearer_auth(key);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get(key.clone()).await.status().as_u16(), 200);

    for _ in 0..5 {
        assert_eq!(get("db_sk_not_a_real_key".into()).await.status().as_u16(), 401);
    }
    let resp = get("db_sk_not_a_real_key".into()).await;
    assert_eq!(resp.status().as_u16(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_auth", "{body}");

    // a key this server checked lately still works from the address (it costs no query)
    assert_eq!(get(key.clone()).await.status().as_u16(), 200);
    let text = metrics_text(&server).await;
    assert_eq!(sample_value(&text, "driftballoon_auth_failures_total"), Some(5.0), "{text}");

    // the budget refills: 5 a minute is one every 12 s
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get("db_sk_not_a_real_key".into()).await.status().as_u16(), 401);
    server.assert_no_server_errors();
});
