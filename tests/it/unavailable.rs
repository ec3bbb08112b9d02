//! When the database goes away the server answers 503 quickly (the SDK retries 5xx, while a
//! 4xx would make it drop logs), never hangs, and recovers when the database comes back.
//! Postgres only: the server reaches it through a TCP proxy the test can cut.

use std::time::{Duration, Instant};

use crate::common::{Kind, TestDb, TestServer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards connections from a local port to Postgres until aborted.
fn start_proxy(listener: TcpListener, target: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

fn host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map(|(_, r)| r).unwrap_or(url.split("://").nth(1).unwrap());
    after_at.split('/').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_fast_503_then_recovers() {
    let Some(db) = TestDb::new(Kind::Postgres).await else {
        return;
    };
    let target = host_port(&db.url);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let proxy = start_proxy(listener, target.clone());
    let proxied = TestDb { kind: db.kind, url: db.url.replace(&target, &proxy_addr.to_string()), dir: db.dir.clone() };

    let server = TestServer::start(&proxied, &[("DRIFTBALLOON_DB_ACQUIRE_TIMEOUT_MS", "500")]);
    let key = server.first_key.clone().unwrap();
    let body = json!({"logs": [{"prompt_name": "p", "response_text": "before"}]});
    assert_eq!(server.post_logs(&key, &body).await.0, 202);

    proxy.abort(); // drops the listener and every forwarded connection
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, err) =
            server.post_logs(&key, &json!({"logs": [{"prompt_name": "p", "response_text": "during"}]})).await;
        assert_eq!(status, 503, "{err}");
        assert_eq!(err["error"]["code"], "unavailable");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // the database comes back on the same address
    let listener = TcpListener::bind(proxy_addr).await.unwrap();
    let _proxy = start_proxy(listener, target);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) =
            server.post_logs(&key, &json!({"logs": [{"prompt_name": "p", "response_text": "after"}]})).await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.sample_total(&key, "p").await, 2);
    assert!(!server.log_text().contains("panicked"));
}
