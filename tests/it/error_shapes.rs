//! Every error answer has the JSON error shape, whichever layer made it: a wrong method (405
//! with `Allow`), an unsupported `Content-Encoding` (415), an unknown path (404), an oversized
//! body (413), a request that runs past the timeout (503 with `Retry-After`). And a 422 lists
//! every problem as `{path, message}`, on every endpoint. On SQLite and on Postgres.

use std::time::Duration;

use crate::common::{status_json, TestDb, TestServer};
use serde_json::{json, Value};

/// Asserts the API's error shape and returns the error object.
fn error_of(status: u16, body: &Value, expected_status: u16, expected_code: &str) -> Value {
    assert_eq!(status, expected_status, "{body}");
    let error = &body["error"];
    assert_eq!(error["code"], expected_code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error.get("details").is_some(), "{body}");
    error.clone()
}

fn is_json(resp: &reqwest::Response) -> bool {
    resp.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

both_backends!(framework_errors_have_the_json_shape, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_BODY_LIMIT_BYTES", "1000")]);
    let key = server.first_key.clone().unwrap();

    // 405: the path exists, the method does not; `Allow` names the methods it has.
    let resp = server.http.delete(server.url("/api/v1/logs")).bearer_auth(&key).send().await.unwrap();
    assert!(is_json(&resp));
    assert_eq!(resp.headers()["allow"], "POST");
    let (status, body) = status_json(resp).await;
    error_of(status, &body, 405, "method_not_allowed");
    let resp = server.http.put(server.url("/api/v1/prompts/x")).bearer_auth(&key).send().await.unwrap();
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("PATCH"), "{allow}");
    let (status, body) = status_json(resp).await;
    error_of(status, &body, 405, "method_not_allowed");

    // 415: only gzip (once) is decoded.
    for encoding in ["deflate", "gzip, gzip", "br", "zstd"] {
        let resp = server
            .http
            .post(server.url("/api/v1/logs"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(is_json(&resp), "{encoding}");
        let (status, body) = status_json(resp).await;
        error_of(status, &body, 415, "unsupported_content_encoding");
    }

    // 404 for an unknown path, with or without a key.
    let (status, body) = server.get(&key, "/api/v2/nothing").await;
    error_of(status, &body, 404, "not_found");

    // 413 both ways: a declared Content-Length over the limit, and a chunked body that grows
    // past it.
    let big = json!({"logs": [{"prompt_name": "p", "response_text": "x".repeat(2000)}]});
    let resp =
        reqwest::Client::new().post(server.url("/api/v1/logs")).bearer_auth(&key).json(&big).send().await.unwrap();
    let (status, body) = status_json(resp).await;
    let error = error_of(status, &body, 413, "payload_too_large");
    assert_eq!(error["details"]["limit_bytes"], 1000);
    // The server closes a connection whose body it refused: the refused requests get their own.
    let chunks = futures_util::stream::iter((0..5).map(|_| Ok::<_, std::io::Error>(vec![b' '; 400])));
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/logs"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    error_of(status, &body, 413, "payload_too_large");

    // 401 without a key.
    let resp = server.http.get(server.url("/api/v1/prompts")).send().await.unwrap();
    let (status, body) = status_json(resp).await;
    error_of(status, &body, 401, "unauthorized");
    server.assert_no_server_errors();
});

both_backends!(a_request_past_the_timeout_is_a_json_503_with_retry_after, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_REQUEST_TIMEOUT_SECS", "1")]);
    let key = server.first_key.clone().unwrap();
    // A client that sends its body slowly keeps the handler waiting past the timeout.
    let slow = futures_util::stream::unfold(0, |n| async move {
        if n == 3 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        Some((Ok::<_, std::io::Error>(if n == 0 { b"{\"logs\": [".to_vec() } else { b" ".to_vec() }), n + 1))
    });
    let resp = server
        .http
        .post(server.url("/api/v1/logs"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert!(is_json(&resp));
    assert_eq!(resp.headers()["retry-after"], "1");
    let (status, body) = status_json(resp).await;
    error_of(status, &body, 503, "timeout");
    // The server keeps serving.
    let (status, _) = server.get(&key, "/api/v1/prompts").await;
    assert_eq!(status, 200);
});

/// Every problem's shape: `{path, message}`, plus `index` and `field` on the logs endpoint.
fn problems(body: &Value) -> Vec<(String, String)> {
    let error = error_of(422, body, 422, "validation_failed");
    assert_eq!(
        error["details"]["problem_count"].as_u64().unwrap() as usize,
        error["details"]["problems"].as_array().unwrap().len()
    );
    error["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_string(), p["message"].as_str().unwrap().to_string()))
        .collect()
}

both_backends!(every_422_lists_every_problem_in_one_shape, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let (status, _) = server.post_logs(&key, &json!({"logs": [{"prompt_name": "p", "response_text": "a"}]})).await;
    assert_eq!(status, 202);

    // Prompt PATCH used to stop at the first problem and name it `field`.
    let resp = server
        .http
        .patch(server.url("/api/v1/prompts/p"))
        .bearer_auth(&key)
        .json(&json!({"drift_threshold": 2, "min_baseline_samples": 1e300, "active_prompt": "c", "colour": "red"}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    let paths: Vec<String> = problems(&body).into_iter().map(|(p, _)| p).collect();
    assert_eq!(status, 422);
    assert_eq!(paths, ["colour", "drift_threshold", "min_baseline_samples", "active_prompt"], "{body}");

    // Logs keep `index` and `field` beside `path`.
    let (status, body) = server
        .post_logs(&key, &json!({"logs": [{"prompt_name": "p", "response_text": "a"}, {"prompt_name": 3}]}))
        .await;
    assert_eq!(status, 422);
    let listed = problems(&body);
    assert_eq!(listed[0].0, "logs[1].prompt_name");
    assert_eq!(
        (
            body["error"]["details"]["problems"][0]["index"].clone(),
            body["error"]["details"]["problems"][0]["field"].clone()
        ),
        (json!(1), json!("prompt_name"))
    );
    assert_eq!(listed[1].0, "logs[1].response_text");

    // The same shape everywhere else, query parameters included.
    let cases: Vec<(&str, &str, Value)> = vec![
        ("POST", "/api/v1/model-configs", json!({"key": "a/b", "variants": [{"model": "m", "weight": 60}]})),
        ("POST", "/sessions", json!({"config_key": "", "config_version": 0, "session_id": 5})),
        ("POST", "/spans", json!({"config_key": "k", "session_id": 5, "data": {}})),
        ("POST", "/api/v1/prompt-templates", json!({"key": "t", "user_template": 5})),
        ("PATCH", "/api/v1/project", json!({"capture_content": "yes", "colour": 1})),
        ("POST", "/v1/traces", json!({"config_key": "k", "name": 1})),
    ];
    for (method, path, body) in cases {
        let request = match method {
            "POST" => server.http.post(server.url(path)),
            _ => server.http.patch(server.url(path)),
        };
        let resp = request.bearer_auth(&key).json(&body).send().await.unwrap();
        let (status, answer) = status_json(resp).await;
        assert_eq!(status, 422, "{path}: {answer}");
        assert!(problems(&answer).len() >= 2, "{path} lists every problem: {answer}");
    }
    let (status, body) = server.get(&key, "/api/v1/traces?limit=0&status=maybe&from=1e300").await;
    assert_eq!(status, 422);
    let paths: Vec<String> = problems(&body).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths.len(), 3, "{body}");
    for name in ["limit", "status", "from"] {
        assert!(paths.iter().any(|p| p == name), "{name} in {paths:?}");
    }
    server.assert_no_server_errors();
});
