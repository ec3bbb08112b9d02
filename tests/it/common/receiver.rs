//! The alert tests' webhook receiver: `tests/alerts/receiver.py` in the SDK venv, which checks
//! signatures with the `standardwebhooks` package (a verifier not written here). It exits when
//! this handle drops (its stdin closes).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::repo_root;

pub struct Receiver {
    child: Child,
    _stdin: ChildStdin,
    pub base: String,
    http: reqwest::Client,
}

impl Receiver {
    pub fn start() -> Receiver {
        let mut child = super::python()
            .arg(repo_root().join("tests/alerts/receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook receiver");
        let stdin = child.stdin.take().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let base = first.trim().strip_prefix("listening ").expect("receiver prints its address").to_string();
        Receiver { child, _stdin: stdin, base, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sets secrets to verify with, a plan of answers, etc. (see receiver.py).
    pub async fn configure(&self, config: Value) {
        let resp = self.http.post(self.url("/_control/config")).json(&config).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }

    pub async fn secrets(&self, secrets: &[&str]) {
        self.configure(json!({ "secrets": secrets })).await;
    }

    /// Every webhook request received so far, in arrival order.
    pub async fn received(&self) -> Vec<Value> {
        let body: Value = self.http.get(self.url("/_control/received")).send().await.unwrap().json().await.unwrap();
        body["requests"].as_array().unwrap().clone()
    }

    /// Waits until `done` holds for the received requests; fails after `seconds`.
    pub async fn wait_for(&self, seconds: u64, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let received = self.received().await;
            if done(&received) {
                return received;
            }
            assert!(Instant::now() < deadline, "receiver: {what} not seen in {seconds} s; got {received:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receiver on this machine that answers every request 500 with a body of `body_bytes`,
/// streamed as fast as the reader takes it: what a broken proxy in front of a webhook can send.
pub async fn huge_error_receiver(body_bytes: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 16 * 1024];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {body_bytes}\r\n\r\n"
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..body_bytes.div_ceil(chunk.len()) {
                    // the server stops reading after a few KiB and drops the connection
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    base
}
