//! Black-box tests of the foundation API over HTTP, on SQLite and on Postgres.

use crate::common;
use crate::common::{create_key, run_cli, TestDb, TestServer};
use serde_json::{json, Value};

fn log(prompt: &str, text: &str) -> Value {
    json!({ "prompt_name": prompt, "response_text": text, "input_text": "question", "model": "gpt-4o" })
}

fn prompt_count(config: &Value, prompt: &str) -> i64 {
    config["prompts"][prompt]["baseline_sample_count"].as_i64().unwrap_or(0)
}

both_backends!(first_start_creates_default_key_and_ingests, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().expect("first start prints a key");
    assert!(key.starts_with("db_sk_") && key.len() >= 6 + 32);

    let batch: Vec<Value> =
        (0..10).map(|i| log(if i % 2 == 0 { "support" } else { "summarize" }, &format!("answer {i}"))).collect();
    let (status, body) = server.post_logs(&key, &json!({ "logs": batch })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["count"], 10);
    let ids: Vec<i64> = body["log_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 10);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in request order: {ids:?}");

    // older callers send nulls
    let (status, _) = server
        .post_logs(
            &key,
            &json!({"logs": [{"prompt_name": "support", "response_text": "x", "input_text": null, "model": null}]}),
        )
        .await;
    assert_eq!(status, 202);

    server.wait_processed(&key, "support").await;
    server.wait_processed(&key, "summarize").await;
    let config = server.config(&key).await;
    assert_eq!(config["cache_ttl_seconds"], 30);
    let support = &config["prompts"]["support"];
    assert_eq!(support["active_prompt"], "a");
    assert_eq!(support["baseline_status"], "learning");
    assert_eq!(support["baseline_sample_count"], 6);
    assert_eq!(support["min_baseline_samples"], 30);
    assert_eq!(support["drift_threshold"], 0.7);
    assert_eq!(support["length_drift_threshold"], 1.5);
    assert_eq!(support["auto_switch_enabled"], true);
    assert_eq!(support["status"], "active");
    assert_eq!(prompt_count(&config, "summarize"), 5);

    // a second start does not create another key
    drop(server);
    let again = TestServer::start(&db, &[]);
    assert!(again.first_key.is_none());
    again.assert_no_server_errors();
});

/// The (id, prompt, text) of every sample of `prompts`, as the samples endpoint lists them.
async fn stored_samples(server: &TestServer, key: &str, prompts: &[&str]) -> Vec<(i64, String, String)> {
    let mut stored = Vec::new();
    for prompt in prompts {
        let (status, page) = server.get(key, &format!("/api/v1/prompts/{prompt}/samples?limit=100")).await;
        assert_eq!(status, 200, "{page}");
        for s in page["samples"].as_array().unwrap() {
            let text = s["response_text"].as_str().unwrap().to_string();
            stored.push((s["id"].as_i64().unwrap(), prompt.to_string(), text));
        }
    }
    stored.sort();
    stored
}

// Postgres stores a batch of known prompts in one statement and falls back to a transaction
// when a prompt is new: both paths keep every row, in order, with its own prompt.
both_backends!(batches_of_known_new_and_mixed_prompts_keep_order_and_content, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let mut expected: Vec<(i64, String, String)> = Vec::new();
    let batches: [&[&str]; 3] = [
        &["alpha", "beta", "alpha"],                   // both new
        &["beta", "alpha", "beta", "alpha", "beta"],   // both known
        &["alpha", "gamma", "beta", "gamma", "alpha"], // one new among known
    ];
    for (b, prompts) in batches.iter().enumerate() {
        let logs: Vec<Value> =
            prompts.iter().enumerate().map(|(i, p)| log(p, &format!("batch {b} row {i} for {p}"))).collect();
        let (status, body) = server.post_logs(&key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
        let ids: Vec<i64> = body["log_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(ids.len(), prompts.len());
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in request order: {ids:?}");
        for (i, (id, p)) in ids.iter().zip(prompts.iter()).enumerate() {
            expected.push((*id, p.to_string(), format!("batch {b} row {i} for {p}")));
        }
    }
    // a batch naming an unknown prompt next to a bad row stores nothing
    let bad = json!({ "logs": [log("alpha", "kept out"), log("delta", "kept out"), { "prompt_name": "alpha" }] });
    let (status, _) = server.post_logs(&key, &bad).await;
    assert_eq!(status, 422);
    expected.sort();
    assert_eq!(stored_samples(&server, &key, &["alpha", "beta", "gamma"]).await, expected);
    let (status, _) = server.get(&key, "/api/v1/prompts/delta/samples").await;
    assert_eq!(status, 404);
    server.assert_no_server_errors();
});

both_backends!(baseline_becomes_ready_at_min_samples, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    for chunk in 0..4 {
        let batch: Vec<Value> =
            (0..10).map(|i| log("ready", &format!("Answer {i} of round {chunk}: your parcel ships soon."))).collect();
        assert_eq!(server.post_logs(&key, &json!({ "logs": batch })).await.0, 202);
        let detail = server.wait_processed(&key, "ready").await;
        let expected = if chunk < 2 { "learning" } else { "ready" };
        assert_eq!(detail["baseline_status"], expected, "{detail}");
    }
    let config = server.config(&key).await;
    // 30 learnt; the 10 after them sit in the recent window and are not in the reference yet
    assert_eq!(config["prompts"]["ready"]["baseline_status"], "ready");
    assert_eq!(prompt_count(&config, "ready"), 30);
});

both_backends!(auth_cases, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let default_key = server.first_key.clone().unwrap();
    let other_key = create_key(&db, "other-team");
    let body = json!({ "logs": [log("mine", "hello")] });

    // missing, malformed, unknown
    let resp = server.http.post(server.url("/api/v1/logs")).json(&body).send().await.unwrap();
    let (status, err) = common::status_json(resp).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["code"], "unauthorized");
    assert_eq!(server.post_logs("db_sk_notarealkey000000000000000000000000", &body).await.0, 401);
    let resp = server.http.get(server.url("/api/v1/config")).header("Authorization", "Basic abc").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // both header styles work
    assert_eq!(server.post_logs(&other_key, &body).await.0, 202);
    let resp = server.http.post(server.url("/api/v1/logs")).bearer_auth(&default_key).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    // a key sees only its own project
    assert_eq!(server.sample_total(&other_key, "mine").await, 1);
    assert_eq!(server.sample_total(&default_key, "mine").await, 1);
    let other_config = server.config(&other_key).await;
    assert_eq!(other_config["prompts"].as_object().unwrap().len(), 1);

    // a key revoked with the CLI stops working within the key cache time (`key_cache_ttl_secs`,
    // 5 s: the CLI is another process); the list shows prefixes, never whole keys
    let (code, listing, _) = run_cli(&db, &["keys", "list"], &[]);
    assert_eq!(code, 0);
    assert!(listing.contains(&other_key[..14]) && !listing.contains(&other_key));
    assert!(listing.contains("other-team"));
    let (code, _, stderr) = run_cli(&db, &["keys", "revoke", &other_key[..14]], &[]);
    assert_eq!(code, 0, "{stderr}");
    let revoked_at = std::time::Instant::now();
    let (status, err) = loop {
        let (status, err) = server.post_logs(&other_key, &body).await;
        if status == 401 || revoked_at.elapsed() > std::time::Duration::from_secs(7) {
            break (status, err);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(status, 401, "a revoked key still worked after {:?}", revoked_at.elapsed());
    assert!(revoked_at.elapsed() < std::time::Duration::from_secs(6));
    assert!(err["error"]["message"].as_str().unwrap().contains("revoked"));
    assert_eq!(server.get(&other_key, "/api/v1/config").await.0, 401);
    assert_eq!(server.post_logs(&default_key, &body).await.0, 202);
    let (code, _, stderr) = run_cli(&db, &["keys", "revoke", "db_sk_nosuch"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no active key"), "{stderr}");
    server.assert_no_server_errors();
});

both_backends!(validation_errors_name_field_and_index_and_store_nothing, |db: TestDb| async move {
    let server =
        TestServer::start(&db, &[("DRIFTBALLOON_MAX_TEXT_CHARS", "50"), ("DRIFTBALLOON_MAX_LOGS_PER_REQUEST", "20")]);
    let key = server.first_key.clone().unwrap();
    let good = log("valid", "fine");
    let cases: Vec<(Value, &str, Option<i64>)> = vec![
        (json!({"logs": [good, {"response_text": "no name"}]}), "prompt_name", Some(1)),
        (json!({"logs": [good, good, {"prompt_name": "", "response_text": "x"}]}), "prompt_name", Some(2)),
        (json!({"logs": [{"prompt_name": "n".repeat(201), "response_text": "x"}]}), "prompt_name", Some(0)),
        (json!({"logs": [{"prompt_name": 42, "response_text": "x"}]}), "prompt_name", Some(0)),
        (json!({"logs": [{"prompt_name": "p"}]}), "response_text", Some(0)),
        (json!({"logs": [{"prompt_name": "p", "response_text": ["list"]}]}), "response_text", Some(0)),
        (json!({"logs": [{"prompt_name": "p", "response_text": "y".repeat(51)}]}), "response_text", Some(0)),
        (json!({"logs": [{"prompt_name": "p", "response_text": "ok", "input_text": 7}]}), "input_text", Some(0)),
        (json!({"logs": [{"prompt_name": "p", "response_text": "ok", "model": {"a": 1}}]}), "model", Some(0)),
        (json!({"logs": ["not an object"]}), "log", Some(0)),
        (json!({"logs": []}), "logs", None),
        (json!({"logs": {"prompt_name": "p"}}), "logs", None),
        (json!({"entries": []}), "logs", None),
        (json!([good]), "logs", None),
        (json!({ "logs": vec![good; 21] }), "logs", None),
    ];
    for (body, field, index) in cases {
        let (status, err) = server.post_logs(&key, &body).await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert_eq!(err["error"]["code"], "validation_failed");
        let problem = &err["error"]["details"]["problems"][0];
        assert_eq!(problem["field"], field, "{err}");
        assert_eq!(problem["index"].as_i64(), index, "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(field));
    }

    // not JSON at all
    let resp = server
        .http
        .post(server.url("/api/v1/logs"))
        .header("X-API-Key", &key)
        .header("Content-Type", "application/json")
        .body("{\"logs\": [")
        .send()
        .await
        .unwrap();
    let (status, err) = common::status_json(resp).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "invalid_json");

    // none of the rejected batches stored anything, not even their valid logs
    let config = server.config(&key).await;
    assert_eq!(config["prompts"], json!({}), "{config}");
    // unicode names are fine, up to 200 characters
    let name = "é".repeat(200);
    assert_eq!(server.post_logs(&key, &json!({"logs": [log(&name, "ok")]})).await.0, 202);
    assert_eq!(server.sample_total(&key, &name).await, 1);
    server.assert_no_server_errors();
});

both_backends!(oversized_body_is_413, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_BODY_LIMIT_BYTES", "2000")]);
    let key = server.first_key.clone().unwrap();
    let body = json!({ "logs": [log("big", &"z".repeat(5000))] });
    // A server may close the connection after refusing a body it did not read, so each refused
    // request gets a client of its own and the later requests a fresh connection.
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/logs"))
        .header("X-API-Key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, err) = common::status_json(resp).await;
    assert_eq!(status, 413);
    assert_eq!(err["error"]["code"], "payload_too_large");
    // a streamed body without Content-Length hits the same limit
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"logs\": [".to_vec()), Ok(vec![b' '; 4000]), Ok(b"]}".to_vec())];
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/logs"))
        .header("X-API-Key", &key)
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    let (status, err) = common::status_json(resp).await;
    assert_eq!(status, 413, "{err}");
    assert_eq!(server.config(&key).await["prompts"], json!({}));
});

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(chunks)
}

both_backends!(accepted_logs_survive_sigkill, |db: TestDb| async move {
    let mut server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let mut accepted = Vec::new();
    for round in 0..20 {
        let batch: Vec<Value> = (0..10).map(|i| log(&format!("p{i}"), &format!("r{round}-{i}"))).collect();
        let (status, body) = server.post_logs(&key, &json!({ "logs": batch })).await;
        assert_eq!(status, 202);
        accepted.extend(body["log_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()));
    }
    server.kill(); // SIGKILL: no chance to flush anything
    let server = TestServer::start(&db, &[]);
    let mut stored = 0;
    for i in 0..10 {
        stored += server.sample_total(&key, &format!("p{i}")).await;
    }
    assert_eq!(stored, 200);
    assert_eq!(accepted.len(), 200);
    let mut unique = accepted.clone();
    unique.dedup();
    assert_eq!(unique.len(), 200);
});

both_backends!(health_and_readiness, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    for path in ["/health", "/healthz"] {
        let resp = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let (status, body) = common::status_json(server.http.get(server.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "ok");
    let (status, body) = common::status_json(server.http.get(server.url("/nope")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
});

both_backends!(cli_commands_work_on_a_brand_new_database, |db: TestDb| async move {
    let key = create_key(&db, "fresh");
    assert!(key.starts_with("db_sk_") && key.len() == 46, "{key}");
    let (code, stdout, _) = run_cli(&db, &["migrate"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("up to date"));
    // the key created before the first start works, and no default key is made
    let server = TestServer::start(&db, &[]);
    assert!(server.first_key.is_none());
    assert_eq!(server.post_logs(&key, &json!({"logs": [log("p", "x")]})).await.0, 202);
});

both_backends!(graceful_shutdown_on_sigterm, |db: TestDb| async move {
    let mut server = TestServer::start(&db, &[]);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let log = server.log_text();
    assert!(log.contains("stopped accepting connections") && log.contains("all connections closed"), "{log}");
});

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let dir = std::env::temp_dir();
    for (name, value) in [
        ("DRIFTBALLOON_LISTEN", "not-an-address"),
        ("DRIFTBALLOON_BODY_LIMIT_BYTES", "-3"),
        ("DATABASE_URL", "mysql://x"),
    ] {
        let out =
            std::process::Command::new(common::BIN).arg("serve").env(name, value).current_dir(&dir).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}
