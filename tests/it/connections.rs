//! Connections and shutdown: a half-sent header and an idle connection are closed after the
//! header timeout; beyond `max_connections` the server stops accepting until one closes; on
//! SIGTERM it exits 0 within its grace period even with idle and half-open connections open;
//! and SIGTERM during a steady ingest loses nothing: every log answered 202 is stored, and no
//! request sent on an accepted connection is cut off before its answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{TestDb, TestServer};
use serde_json::json;
use sqlx::{Connection, Row};

fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// How long until the server closes this connection (reads until EOF or a reset).
fn seconds_until_closed(mut stream: TcpStream) -> f64 {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed().as_secs_f64(),
            Ok(_) => continue, // a response; keep reading until the close
        }
    }
}

fn sigterm(server: &TestServer) {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

both_backends!(slow_and_idle_connections_are_closed, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_HEADER_READ_TIMEOUT_SECS", "1")]);

    // half a header, then nothing
    let mut half = connect(&server);
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let waited = tokio::task::spawn_blocking(move || seconds_until_closed(half)).await.unwrap();
    assert!(waited < 5.0, "a half-sent header held the connection {waited:.1}s");

    // one request, then idle on a keep-alive connection
    let mut idle = connect(&server);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let waited = tokio::task::spawn_blocking(move || seconds_until_closed(idle)).await.unwrap();
    assert!(waited < 5.0, "an idle connection stayed open {waited:.1}s");
    server.assert_no_server_errors();
});

both_backends!(beyond_max_connections_the_server_waits_for_one_to_close, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_MAX_CONNECTIONS", "3")]);
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    assert!(http.get(server.url("/healthz")).send().await.is_err(), "a 4th connection was served");
    drop(held);
    let resp = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served once the others closed");
    server.assert_no_server_errors();
});

both_backends!(sigterm_exits_within_the_grace_period_whatever_clients_do, |db: TestDb| async move {
    let mut server = TestServer::start(&db, &[("DRIFTBALLOON_SHUTDOWN_GRACE_SECS", "2")]);
    let mut half = connect(&server);
    half.write_all(b"POST /api/v1/logs HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut idle = connect(&server);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    sigterm(&server);
    let status = server.child.wait().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}\n{}", server.log_text());
    assert!(took < Duration::from_secs(4), "exit took {took:?}");
    drop((half, idle));
});

both_backends!(sigterm_during_ingest_loses_no_accepted_log, |db: TestDb| async move {
    // (as fast as the server takes them: the rate limit is not what this test is about)
    let mut server = TestServer::start(&db, &[("DRIFTBALLOON_SHUTDOWN_GRACE_SECS", "5")]);
    let key = server.first_key.clone().unwrap();
    // a new connection per request: once the server stops accepting, new requests are refused
    // (which a client sees before sending anything), never cut off half-way
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (http, url, key, stop) = (http.clone(), server.url("/api/v1/logs"), key.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut accepted, mut refused) = (Vec::new(), 0);
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let text = format!("SHUTDOWN-{client}-{i}: your parcel is on its way.");
                    let body = json!({"logs": [{"prompt_name": "shutdown", "response_text": text}]});
                    match http.post(&url).header("X-API-Key", &key).json(&body).send().await {
                        Ok(resp) => {
                            assert_eq!(resp.status().as_u16(), 202, "{}", resp.text().await.unwrap());
                            accepted.push(text);
                        }
                        Err(e) if e.is_connect() => refused += 1,
                        // a connection the kernel completed just as the listener closed is
                        // reset before the server read anything: unanswered, so the client
                        // retries it like a refused one (every 202 is still checked below)
                        Err(e) if format!("{e:?}").contains("ConnectionReset") => refused += 1,
                        Err(e) => panic!("request {i} of client {client} failed after connecting: {e:?}"),
                    }
                }
                (accepted, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    sigterm(&server);
    let exited = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (status, server)
    });
    let (status, server) = exited.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut accepted = Vec::new();
    for c in clients {
        accepted.extend(c.await.unwrap().0);
    }
    assert!(status.success(), "exit status {status}\n{}", server.log_text());
    assert!(accepted.len() > 20, "only {} logs were accepted", accepted.len());

    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let stored: Vec<String> = sqlx::query("SELECT response_text FROM samples")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("response_text"))
        .collect();
    let missing: Vec<&String> = accepted.iter().filter(|t| !stored.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} accepted logs are not stored: {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(3)]
    );
});
