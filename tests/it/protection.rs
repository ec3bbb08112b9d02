//! Protection from one client: the per-key rate limit (429 + Retry-After, and the real
//! `driftballoon` SDK still delivers every log through it), the global bound on requests in
//! flight (503 + Retry-After under a burst, health checks still answered, recovery after), and
//! the failed-auth budget per client address.

use crate::common;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{run_sdk_script, TestDb, TestServer};
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
    // the key verified once, as a running app's is: admission counts it as its project's
    assert_eq!(server.get(&key, "/api/v1/project").await.0, 200);

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

/// A request line and headers sent as raw bytes (methods reqwest would not send), and the answer.
fn raw_request(server: &TestServer, request: &str) -> String {
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

// Nothing a client chooses becomes a metric label: made-up methods are counted as `_OTHER`, so
// a scrape does not grow with them; /docs is never framed and loads only its own files.
both_backends!(made_up_methods_add_no_series_and_docs_cannot_be_framed, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    for i in 0..30 {
        let method = format!("FOO{i}{}", "X".repeat(i * 30));
        let answer = raw_request(&server, &format!("{method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        assert!(answer.starts_with("HTTP/1.1 4"), "{method}: {answer:?}");
    }
    let text = metrics_text(&server).await;
    assert!(!text.contains("FOO"), "a made-up method became a label value");
    // one label set per route and status those requests had (405 or 400), not thirty
    let other: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count") && l.contains("=\"_OTHER\""))
        .collect();
    assert!((1..=2).contains(&other.len()), "{other:#?}");
    let counted: f64 = other.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
    assert_eq!(counted, 30.0, "{other:#?}");

    for path in ["/docs/", "/openapi.json"] {
        let resp = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let csp = resp.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
        let csp = csp.unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"));
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"), "{path}: {csp}");
        assert_eq!(resp.headers()["x-frame-options"], "DENY", "{path}");
    }
    server.assert_no_server_errors();
});

// The failed-auth budget is spent before the database is asked: 40 bad keys at once from one
// address get at most the budget's worth (30 a minute, the default) of lookups and 401s.
both_backends!(concurrent_bad_keys_get_no_more_lookups_than_the_budget, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    assert_eq!(server.get(&key, "/api/v1/prompts").await.0, 200);
    let answers = futures_util::future::join_all((0..40).map(|i| {
        server.http.get(server.url("/api/v1/prompts")).bearer_auth(format!("db_sk_not_a_real_key_{i}")).send()
    }))
    .await;
    let statuses: Vec<u16> = answers.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((unauthorized, limited), (30, 10), "{statuses:?}");
    let text = metrics_text(&server).await;
    assert_eq!(sample_value(&text, "driftballoon_auth_failures_total"), Some(30.0), "{text}");
    // a key this server verified still works from the same address
    assert_eq!(server.get(&key, "/api/v1/prompts").await.0, 200);
    server.assert_no_server_errors();
});

/// `clients` loops posting SDK-shaped batches (10 logs) for `seconds`: the answers' statuses
/// and each 202's latency.
async fn flood(
    server: &TestServer,
    key: &str,
    prompt: &str,
    clients: usize,
    seconds: u64,
) -> (Vec<u16>, Vec<Duration>) {
    let url = server.url("/api/v1/logs");
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (http, url, key, prompt) = (server.http.clone(), url.clone(), key.to_string(), prompt.to_string());
            tokio::spawn(async move {
                let (mut statuses, mut latencies) = (Vec::new(), Vec::new());
                while std::time::Instant::now() < deadline {
                    let n = statuses.len();
                    let logs: Vec<Value> = (0..10)
                        .map(|i| json!({"prompt_name": prompt, "response_text": format!("Answer {client}-{n}-{i}: the parcel ships on Monday.")}))
                        .collect();
                    let started = std::time::Instant::now();
                    let resp = http.post(&url).header("X-API-Key", &key).json(&json!({"logs": logs})).send().await.unwrap();
                    let status = resp.status().as_u16();
                    let _ = resp.bytes().await;
                    if status == 202 {
                        latencies.push(started.elapsed());
                    }
                    statuses.push(status);
                }
                (statuses, latencies)
            })
        })
        .collect();
    let (mut statuses, mut latencies) = (Vec::new(), Vec::new());
    for task in tasks {
        let (s, l) = task.await.unwrap();
        statuses.extend(s);
        latencies.extend(l);
    }
    latencies.sort();
    (statuses, latencies)
}

// At the defaults, one key flooding as 16 SDK clients is never refused while the server has
// room (the old fixed cap of 200 requests a second answered most of such a flood 429), and
// every acknowledged log is stored.
both_backends!(sixteen_sdk_clients_on_one_key_get_no_429_at_defaults, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let (statuses, _) = flood(&server, &key, "flooded", 16, 4).await;
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!(accepted, statuses.len(), "refused: {:?}", statuses.iter().filter(|s| **s != 202).collect::<Vec<_>>());
    assert!(accepted > 200, "only {accepted} requests in 4 s");
    assert_eq!(server.sample_total(&key, "flooded").await, accepted as i64 * 10);
    server.assert_no_server_errors();
});

// Noisy neighbour: project A floods with far more concurrent requests than the server has
// slots (64 here, so the test needs few clients); project B keeps being admitted with a bounded
// latency, A is answered 429 over_fair_share for what it sends over its share, and everything
// either was told 202 is stored.
both_backends!(a_flooding_project_cannot_starve_another, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_MAX_CONCURRENT_REQUESTS", "64")]);
    let noisy = server.first_key.clone().unwrap();
    let quiet = common::create_key(&db, "quiet");
    // both keys verified once, as any running app's are
    assert_eq!(server.get(&noisy, "/api/v1/prompts").await.0, 200);
    assert_eq!(server.get(&quiet, "/api/v1/prompts").await.0, 200);

    let (noisy_answers, quiet_answers) =
        tokio::join!(flood(&server, &noisy, "noisy", 120, 5), flood(&server, &quiet, "quiet", 2, 5));
    let (quiet_statuses, quiet_latencies) = quiet_answers;
    assert!(quiet_statuses.iter().all(|s| *s == 202), "project B refused: {quiet_statuses:?}");
    let p99 = common::percentile_ms(&quiet_latencies, 0.99);
    println!("project B: {} batches, p99 {p99:.1} ms beside a flooding project A", quiet_statuses.len());
    assert!(p99 < 5_000.0, "project B's p99 {p99:.0} ms");

    let (noisy_statuses, _) = noisy_answers;
    let over_share = noisy_statuses.iter().filter(|s| **s == 429).count();
    let accepted = noisy_statuses.iter().filter(|s| **s == 202).count();
    assert!(over_share > 0, "project A was never pushed back to its share");
    assert!(noisy_statuses.iter().all(|s| *s == 202 || *s == 429), "A got other answers");
    assert_eq!(server.sample_total(&noisy, "noisy").await, accepted as i64 * 10);
    assert_eq!(server.sample_total(&quiet, "quiet").await, quiet_statuses.len() as i64 * 10);
    let text = metrics_text(&server).await;
    assert_eq!(sample_value(&text, "driftballoon_over_fair_share_total"), Some(over_share as f64));
    server.assert_no_server_errors();
});

/// Opens a request that announces a 1,000-byte body and sends 5 bytes of it.
fn slow_body(server: &TestServer, path: &str, headers: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 1000\r\n\r\napi_k");
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

// Slow bodies cannot take the request slots: 530 keyless sign-in forms and 20 requests with a
// valid key, each sending 5 bytes of a 1,000-byte body, at the defaults. Another project is
// served at once meanwhile, and every slow request is answered 408 (or 503 when the keyless
// share was full) within the body's grace, not held until the request timeout.
both_backends!(slow_bodies_cannot_take_the_slots, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let slow_key = server.first_key.clone().unwrap();
    let other = common::create_key(&db, "other");
    assert_eq!(server.get(&slow_key, "/api/v1/prompts").await.0, 200);
    let opened = std::time::Instant::now();
    let mut slow: Vec<(&str, TcpStream)> = (0..530)
        .map(|_| ("sign-in", slow_body(&server, "/ui/sign-in", "Content-Type: application/x-www-form-urlencoded\r\n")))
        .collect();
    let with_key = format!("X-API-Key: {slow_key}\r\nContent-Type: application/json\r\n");
    slow.extend((0..20).map(|_| ("api", slow_body(&server, "/api/v1/logs", &with_key))));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = std::time::Instant::now();
    assert_eq!(server.get(&other, "/api/v1/project").await.0, 200);
    let logs = json!({"logs": [{"prompt_name": "beside", "response_text": "Served while others crawl."}]});
    assert_eq!(server.post_logs(&other, &logs).await.0, 202);
    let served_in = started.elapsed();
    assert!(served_in < Duration::from_secs(3), "another project waited {served_in:?}");

    let answers = tokio::task::spawn_blocking(move || {
        slow.into_iter()
            .map(|(kind, mut stream)| {
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                (kind, answer)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let all_answered_in = opened.elapsed();
    assert!(all_answered_in < Duration::from_secs(20), "slow bodies held for {all_answered_in:?}");
    let status = |answer: &str| answer.get(9..12).unwrap_or("none").to_string();
    for (kind, answer) in &answers {
        let code = status(answer);
        assert!(code == "408" || (*kind == "sign-in" && code == "503"), "{kind}: {answer:?}");
    }
    let api_timeouts = answers.iter().filter(|(k, a)| *k == "api" && a.contains("\"body_too_slow\"")).count();
    assert_eq!(api_timeouts, 20, "requests with a key are answered 408 body_too_slow");
    let sign_in_timeouts = answers.iter().filter(|(k, a)| *k == "sign-in" && status(a) == "408").count();
    assert!(sign_in_timeouts >= 1, "no sign-in form was timed out");
    let text = metrics_text(&server).await;
    assert_eq!(sample_value(&text, "driftballoon_body_too_slow_total"), Some((20 + sign_in_timeouts) as f64));
    server.assert_no_server_errors_except_503s(530 - sign_in_timeouts);
});
