//! Conformance of the real server to its own OpenAPI document, on SQLite and on Postgres:
//! `tests/contract/run_schemathesis.py` validates the served `/openapi.json` with
//! openapi-spec-validator, then Schemathesis fuzzes every operation from it (bounded examples
//! per operation, fixed seed) and checks that no answer is a 5xx and that every answer's status,
//! content type, headers and body are the documented ones; that schema-invalid input is refused
//! and schema-valid input accepted; that undocumented methods get 405 with `Allow`; and that
//! every operation refuses requests without a valid key.
//!
//! The server is seeded first (the names match the examples in the document), so the fuzzer
//! also reads real prompts, configs, templates, traces and metrics back, not just 404s.

use crate::common;
use std::time::Instant;

use crate::common::clock::base_iso;
use crate::common::{repo_root, TestDb, TestServer};
use serde_json::json;

/// Examples per operation in the fuzzing phase (the coverage phase adds its own).
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261123";

async fn seed(server: &TestServer, key: &str) {
    let logs: Vec<_> = (0..8)
        .map(|i| {
            json!({"prompt_name": "support-agent", "response_text": format!("Your refund {i} is on its way."),
                        "input_text": "Where is my refund?", "model": "gpt-4o"})
        })
        .collect();
    let (status, body) = server.post_logs(key, &json!({ "logs": logs })).await;
    assert_eq!(status, 202, "{body}");
    let posts = [
        (
            "/api/v1/model-configs",
            json!({"key": "summarizer", "variants": [{"model": "gpt-4o", "weight": 70}, {"model": "claude", "weight": 30}],
                   "targeting": {"enabled": true, "individualTargets": [{"field": "customerId", "value": "u1", "variantIndex": 1}],
                                 "rules": [{"conditions": [{"field": "plan", "operator": "in", "value": ["pro"]}], "variantIndex": 0}]}}),
        ),
        (
            "/sessions",
            json!({"config_key": "summarizer", "config_version": 1, "session_id": "s-1", "assigned_model": "gpt-4o"}),
        ),
        ("/spans", json!({"config_key": "summarizer", "session_id": "s-1", "data": {"csat": 4, "resolved": true}})),
        (
            "/v1/traces",
            json!({"config_key": "summarizer", "session_id": "s-1", "trace_id": "5b8efff798038103d269b633813fc60c",
                   "span_id": "eee19b7ec3c1b174", "name": "chat.completions.create", "start_time": base_iso(0),
                   "end_time": base_iso(1000), "duration_ms": 1000, "status": "OK", "model": "gpt-4o",
                   "tags": ["prod"], "metadata": {"team": "support"},
                   "attributes": {"fallom.raw.response": "{\"text\": \"Hello!\"}",
                                  "fallom.raw.usage": "{\"prompt_tokens\": 5, \"completion_tokens\": 2}"}}),
        ),
        (
            "/api/v1/prompt-templates",
            json!({"key": "onboarding", "system_prompt": "You are {{bot}}.", "user_template": "Hi {{name}}"}),
        ),
        (
            "/api/v1/prompt-ab-tests",
            json!({"key": "onboarding-test", "variants": [{"prompt_key": "onboarding", "weight": 100}]}),
        ),
        ("/api/v1/alert-channels", json!({"kind": "webhook", "url": "https://alerts.example.com/hook"})),
    ];
    for (path, body) in posts {
        let resp = server.http.post(server.url(path)).bearer_auth(key).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "seeding {path}: {} {}", resp.status(), resp.text().await.unwrap());
    }
}

both_backends!(server_conforms_to_its_openapi_document, |db: TestDb| async move {
    // Alerts are queued (the test endpoint) but not sent: there is no receiver to send to.
    // `ignored_auth` sends hundreds of invalid keys on purpose: the failed-auth budget per
    // address (tests/protection.rs) is off here, or most of them would get its 429
    let server = TestServer::start(
        &db,
        &[("DRIFTBALLOON_ALERTS_ENABLED", "false"), ("DRIFTBALLOON_FAILED_AUTH_PER_MINUTE", "0")],
    );
    let key = server.first_key.clone().unwrap();
    seed(&server, &key).await;
    let started = Instant::now();
    let out = common::python()
        .arg(repo_root().join("tests/contract/run_schemathesis.py"))
        .args(["--url", &server.base, "--key", &key, "--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .output()
        .expect("run the schemathesis runner");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "conformance run failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}", db.kind);
    // The summary (operations, requests, time) is part of the test's output.
    let summary = stdout.split("==== API conformance summary").nth(1).unwrap_or(&stdout);
    println!("{:?}: {:.0} s\n{summary}", db.kind, started.elapsed().as_secs_f64());
    server.assert_no_server_errors();
});

// The three schema-valid requests a longer fuzzing run found refused: the document now states
// the rules the server enforces (an alert channel URL names a host, at most 5 event types, a
// span time is a date-time), and the server still refuses what breaks them.
both_backends!(the_document_states_the_rules_the_fuzzer_found_unstated, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let doc: serde_json::Value =
        server.http.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    for name in ["NewAlertChannel", "AlertChannelPatch"] {
        let events = &schemas[name]["properties"]["events"];
        assert_eq!(events["maxItems"], 5, "{name}: {events}");
        let url = schemas[name]["properties"]["url"]["pattern"].as_str().unwrap_or_default();
        assert!(url.contains("[A-Za-z]") && url.ends_with('$'), "{name}'s url pattern requires a host: {url}");
    }
    for field in ["start_time", "end_time"] {
        assert_eq!(schemas["FallomSpan"]["properties"][field]["format"], "date-time", "{field}");
    }

    let send = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        let request = server.http.request(method, server.url(path)).bearer_auth(&key).json(&body);
        async move { common::status_json(request.send().await.unwrap()).await }
    };
    let (status, channel) = send(
        reqwest::Method::POST,
        "/api/v1/alert-channels",
        json!({"kind": "webhook", "url": "https://alerts.example.com/hook"}),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    let id = channel["id"].as_i64().unwrap();
    let (status, body) =
        send(reqwest::Method::PATCH, &format!("/api/v1/alert-channels/{id}"), json!({"url": "http://"})).await;
    assert_eq!((status, body["error"]["details"]["problems"][0]["path"].clone()), (422, json!("url")), "{body}");
    let twelve: Vec<&str> = ["drift.detected", "drift.resolved", "test"].iter().cycle().take(12).copied().collect();
    let (status, body) = send(
        reqwest::Method::POST,
        "/api/v1/alert-channels",
        json!({"kind": "webhook", "url": "https://alerts.example.com/hook", "events": twelve}),
    )
    .await;
    assert_eq!((status, body["error"]["details"]["problems"][0]["path"].clone()), (422, json!("events")), "{body}");
    let span = json!({"config_key": "c", "session_id": "s", "trace_id": "t", "span_id": "s", "name": "n",
                      "start_time": "0", "end_time": base_iso(0), "duration_ms": 0, "status": "OK"});
    let (status, body) = send(reqwest::Method::POST, "/v1/traces", span).await;
    assert_eq!((status, body["error"]["details"]["problems"][0]["path"].clone()), (422, json!("start_time")), "{body}");
    server.assert_no_server_errors();
});
