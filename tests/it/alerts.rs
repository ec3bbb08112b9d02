//! Drift alerts end to end, through the real server and the real model: a drift produced by
//! real logs reaches a receiver that verifies the Standard Webhooks signature with the
//! `standardwebhooks` package; retries keep the `webhook-id`; 410 disables a channel; an alert
//! committed before a SIGKILL is delivered after the restart; two replicas on one Postgres
//! deliver each event once; Slack messages stay within Block Kit's limits; bad channels are 422s.

use crate::common;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::receiver::Receiver;
use crate::common::texts::{biology_answer, support_answer};
use crate::common::{encode, status_json, Kind, TestDb, TestServer};
use serde_json::{json, Value};

/// Alerts to this machine's receiver, retried quickly.
const ALERT_ENV: &[(&str, &str)] = &[
    ("DRIFTBALLOON_ALERTS_ALLOW_PRIVATE_NETWORKS", "true"),
    ("DRIFTBALLOON_ALERTS_RETRY_BASE_MS", "200"),
    ("DRIFTBALLOON_ALERTS_POLL_INTERVAL_MS", "100"),
    ("DRIFTBALLOON_ALERTS_TIMEOUT_MS", "3000"),
];

async fn send(server: &TestServer, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = server.http.request(method, server.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    if resp.status().as_u16() == 204 {
        return (204, Value::Null);
    }
    status_json(resp).await
}

async fn create_channel(server: &TestServer, key: &str, body: Value) -> Value {
    let (status, created) = send(server, key, "POST", "/api/v1/alert-channels", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn log_texts(server: &TestServer, key: &str, prompt: &str, texts: Vec<String>) {
    for chunk in texts.chunks(10) {
        let logs: Vec<Value> = chunk.iter().map(|t| json!({"prompt_name": prompt, "response_text": t})).collect();
        let (status, body) = server.post_logs(key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
    }
}

/// Makes a prompt drift with real answers: a 20-sample baseline of support answers, then
/// answers about biology. Returns the prompt's drift events.
async fn drive_drift(server: &TestServer, key: &str, prompt: &str) -> Vec<Value> {
    drive_drift_with(server, key, prompt, json!({"min_baseline_samples": 20})).await
}

async fn drive_drift_with(server: &TestServer, key: &str, prompt: &str, settings: Value) -> Vec<Value> {
    log_texts(server, key, prompt, (0..1).map(support_answer).collect()).await;
    let path = format!("/api/v1/prompts/{}", encode(prompt));
    let (status, body) = send(server, key, "PATCH", &path, Some(settings)).await;
    assert_eq!(status, 200, "{body}");
    log_texts(server, key, prompt, (1..45).map(support_answer).collect()).await;
    server.wait_processed(key, prompt).await;
    log_texts(server, key, prompt, (0..45).map(biology_answer).collect()).await;
    server.wait_processed(key, prompt).await;
    let (status, events) = server.get(key, &format!("{path}/drift-events")).await;
    assert_eq!(status, 200, "{events}");
    events["events"].as_array().unwrap().clone()
}

async fn deliveries(server: &TestServer, key: &str, channel: i64) -> Vec<Value> {
    let (status, body) = server.get(key, &format!("/api/v1/alert-channels/{channel}/deliveries")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits until a channel's deliveries satisfy `done`.
async fn wait_deliveries(server: &TestServer, key: &str, channel: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = deliveries(server, key, channel).await;
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "deliveries never settled: {list:#?}\n{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_backends!(drift_reaches_a_verifying_receiver_once_with_its_explanation, |db: TestDb| async move {
    let receiver = Receiver::start();
    let server =
        TestServer::start(&db, &[ALERT_ENV, &[("DRIFTBALLOON_PUBLIC_URL", "https://drift.example.com/")]].concat());
    let key = server.first_key.clone().unwrap();
    let prompt = "support <bot> & *co*";

    let webhook = create_channel(&server, &key, json!({"kind": "webhook", "url": receiver.url("/hook")})).await;
    let secret = webhook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    receiver.secrets(&[&secret]).await;
    let slack = create_channel(
        &server,
        &key,
        json!({"kind": "slack", "url": receiver.url("/slack/services/T000/B000/XXXX"), "events": ["drift.detected"],
               "prompts": [prompt]}),
    )
    .await;
    // A channel filtered to another prompt hears nothing.
    let other =
        create_channel(&server, &key, json!({"kind": "webhook", "url": receiver.url("/other"), "prompts": ["x"]}))
            .await;

    let events = drive_drift(&server, &key, prompt).await;
    let semantic: Vec<&Value> = events.iter().filter(|e| e["kind"] == "semantic").collect();
    assert_eq!(semantic.len(), 1, "{events:#?}");
    let event = semantic[0];
    let explanation = &event["explanation"];
    assert_eq!(explanation["kind"], "semantic", "{event}");
    let farthest = explanation["farthest_recent"].as_array().unwrap();
    let closest = explanation["closest_baseline"].as_array().unwrap();
    assert_eq!((farthest.len(), closest.len()), (3, 3), "{explanation}");
    // the farthest recent answers are the new topic's, the closest baseline ones the old topic's
    let biology: Vec<String> = (0..45).map(biology_answer).collect();
    let support: Vec<String> = (0..45).map(support_answer).collect();
    for quoted in farthest {
        assert!(
            biology.iter().any(|b| b.starts_with(quoted["text"].as_str().unwrap().trim_end_matches('…'))),
            "{quoted}"
        );
    }
    for quoted in closest {
        assert!(
            support.iter().any(|s| s.starts_with(quoted["text"].as_str().unwrap().trim_end_matches('…'))),
            "{quoted}"
        );
    }
    assert!(!explanation["terms_rose"].as_array().unwrap().is_empty(), "{explanation}");
    assert!(!explanation["terms_fell"].as_array().unwrap().is_empty(), "{explanation}");

    // the webhook: baseline ready, then the drift and the switch it caused, each once, signed
    receiver
        .wait_for(30, "drift.detected and prompt.version_switched", |r| {
            let hooks: Vec<_> = r.iter().filter(|x| x["path"] == "/hook").collect();
            ["drift.detected", "prompt.version_switched"].iter().all(|t| hooks.iter().any(|h| h["json"]["type"] == *t))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // room for any duplicate to show up
    let hooks: Vec<Value> = receiver.received().await.into_iter().filter(|r| r["path"] == "/hook").collect();
    let count = |t: &str| hooks.iter().filter(|h| h["json"]["type"] == t).count();
    assert_eq!(count("drift.detected"), events.len(), "one alert per drift event: {hooks:#?}");
    assert_eq!(count("prompt.version_switched"), 1);
    assert_eq!(count("baseline.ready"), 1, "{hooks:#?}");
    for hook in &hooks {
        assert_eq!(hook["verified"], true, "{hook}");
        assert!(hook["headers"]["webhook-id"].as_str().unwrap().starts_with("msg_"));
    }
    let alert = hooks
        .iter()
        .find(|h| h["json"]["type"] == "drift.detected" && h["json"]["data"]["kind"] == "semantic")
        .unwrap();
    let data = &alert["json"]["data"];
    assert_eq!(data["prompt"], prompt);
    assert_eq!(data["project"], "default");
    assert_eq!(data["kind"], "semantic");
    assert_eq!(data["version"], "a");
    assert_eq!(data["switched_to"], "b");
    assert_eq!(data["drift_event_id"], event["id"]);
    assert_eq!(data["sample_id"], event["sample_id"]);
    assert_eq!(data["threshold"], 0.7);
    assert_eq!(data["window_size"], 20);
    assert!(data["score"].as_f64().unwrap() < 0.7);
    assert_eq!(&data["explanation"], explanation, "the alert carries the stored explanation");
    assert!(alert["json"]["timestamp"].as_str().unwrap().ends_with('Z'));
    let ready = hooks.iter().find(|h| h["json"]["type"] == "baseline.ready").unwrap();
    assert_eq!(ready["json"]["data"]["version"], "a");
    assert_eq!(ready["json"]["data"]["sample_count"], 20);

    // Slack: only the drift (its filter), escaped and within Block Kit's limits, linking to
    // the dashboard
    let slack_posts: Vec<Value> = receiver.received().await.into_iter().filter(|r| r["path"] != "/hook").collect();
    assert_eq!(slack_posts.len(), events.len(), "{slack_posts:#?}");
    assert!(slack_posts.iter().all(|p| p["path"] == "/slack/services/T000/B000/XXXX"));
    for post in &slack_posts {
        assert_block_kit_limits(&post["json"]);
    }
    let message = &slack_posts[0]["json"];
    let text = message.to_string();
    assert!(text.contains("support &lt;bot&gt; &amp; *co*"), "{text}");
    assert!(!text.contains("<bot>"), "{text}");
    assert!(text.contains("https://drift.example.com/ui/prompts/support%20%3Cbot%3E%20%26%20%2Aco%2A"), "{text}");

    let list = wait_deliveries(&server, &key, webhook["id"].as_i64().unwrap(), |d| {
        d.iter().all(|x| x["status"] == "delivered")
    })
    .await;
    assert_eq!(list.len(), hooks.len(), "{list:#?}");
    assert!(list.iter().all(|d| d["attempts"] == 1 && d["last_status"] == 200));
    assert!(deliveries(&server, &key, other["id"].as_i64().unwrap()).await.is_empty());
    let _ = slack;

    // secrets are never listed nor logged
    let (_, listed) = server.get(&key, "/api/v1/alert-channels").await;
    let listed = listed.to_string();
    assert!(!listed.contains(&secret) && !listed.contains("XXXX"), "{listed}");
    assert!(listed.contains("/slack/services/***"), "{listed}");
    let log = server.log_text();
    assert!(!log.contains(&secret) && !log.contains("XXXX"), "a secret reached the log:\n{log}");
    server.assert_no_server_errors();
});

/// Checks a Slack message against the Block Kit limits Slack enforces (it refuses the whole
/// message with `invalid_blocks` otherwise) and that no user text can mention or link.
fn assert_block_kit_limits(message: &Value) {
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
    assert!(chars(&message["text"]) > 0 && chars(&message["text"]) <= 3000);
    let blocks = message["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(chars(&block["text"]["text"]) <= 150, "{block}");
            }
            "section" => {
                assert!(chars(&block["text"]["text"]) <= 3000, "{block}");
                if let Some(fields) = block["fields"].as_array() {
                    assert!(fields.len() <= 10);
                    assert!(fields.iter().all(|f| chars(&f["text"]) <= 2000));
                }
            }
            "context" => assert!(block["elements"].as_array().unwrap().len() <= 10),
            "actions" => {
                for e in block["elements"].as_array().unwrap() {
                    assert!(chars(&e["text"]["text"]) <= 75 && chars(&e["url"]) <= 3000, "{e}");
                }
            }
            "divider" => {}
            other => panic!("unexpected block type {other}"),
        }
    }
    let text = message.to_string();
    assert!(!text.contains("<!") && !text.contains("<@"), "{text}");
}

both_backends!(retries_keep_the_webhook_id_rotation_signs_twice_and_410_disables, |db: TestDb| async move {
    let receiver = Receiver::start();
    let server = TestServer::start(&db, ALERT_ENV);
    let key = server.first_key.clone().unwrap();
    let channel = create_channel(&server, &key, json!({"kind": "webhook", "url": receiver.url("/hook")})).await;
    let id = channel["id"].as_i64().unwrap();
    let secret = channel["secret"].as_str().unwrap().to_string();
    receiver.configure(json!({"secrets": [secret], "plan": [500, 500, 500]})).await;

    let (status, queued) = send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/test"), None).await;
    assert_eq!(status, 202, "{queued}");
    let list = wait_deliveries(&server, &key, id, |d| d.first().is_some_and(|x| x["status"] == "delivered")).await;
    assert_eq!(list[0]["attempts"], 4, "{list:#?}");
    assert_eq!(list[0]["last_status"], 200);
    assert_eq!(list[0]["message_id"], queued["message_id"]);
    assert_eq!(list[0]["event_type"], "test");
    let got = receiver.received().await;
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(
        got.iter().all(|r| r["headers"]["webhook-id"] == queued["message_id"] && r["verified"] == true),
        "{got:#?}"
    );
    assert_eq!(got.iter().map(|r| r["answered"].as_i64().unwrap()).collect::<Vec<_>>(), [500, 500, 500, 200]);

    // Retry-After on a 503 is honoured instead of the 200 ms backoff
    receiver.configure(json!({"plan": [503], "retry_after": "2"})).await;
    send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/test"), None).await;
    let got = receiver.wait_for(20, "the retry after a 503", |r| r.len() == 6).await;
    let gap = got[5]["received_at"].as_f64().unwrap() - got[4]["received_at"].as_f64().unwrap();
    assert!(gap >= 1.9, "retried after {gap:.2} s despite Retry-After: 2");

    // a rotated secret: both signatures are sent during the grace period
    let path = format!("/api/v1/alert-channels/{id}/rotate-secret");
    let (status, rotated) = send(&server, &key, "POST", &path, Some(json!({"grace_period_seconds": 3600}))).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_valid_until"].as_i64().is_some());
    for only in [&secret, &new_secret] {
        receiver.secrets(&[only]).await;
        let before = receiver.received().await.len();
        send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/test"), None).await;
        let got = receiver.wait_for(20, "a test event", |r| r.len() == before + 1).await;
        assert_eq!(got[before]["verified"], true, "{:#?}", got[before]);
        assert_eq!(got[before]["headers"]["webhook-signature"].as_str().unwrap().split(' ').count(), 2);
    }

    // 410 Gone: the delivery fails and the channel is disabled, with the reason shown
    receiver.configure(json!({"plan": [410]})).await;
    send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/test"), None).await;
    wait_deliveries(&server, &key, id, |d| d.first().is_some_and(|x| x["status"] == "failed")).await;
    let (_, channel) = server.get(&key, &format!("/api/v1/alert-channels/{id}")).await;
    assert_eq!(channel["enabled"], false, "{channel}");
    assert!(channel["disabled_reason"].as_str().unwrap().contains("410"), "{channel}");
    let (status, body) = send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/test"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("channel_disabled")), "{body}");
    let (status, channel) = send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/enable"), None).await;
    assert_eq!((status, &channel["enabled"], &channel["disabled_reason"]), (200, &json!(true), &Value::Null));
    server.assert_no_server_errors();
});

both_backends!(an_alert_committed_before_a_crash_is_delivered_after_restart, |db: TestDb| async move {
    let receiver = Receiver::start();
    // The first process commits the drift (and its alert) but never sends: SIGKILL comes first.
    let mut server = TestServer::start(&db, &[ALERT_ENV, &[("DRIFTBALLOON_ALERTS_ENABLED", "false")]].concat());
    let key = server.first_key.clone().unwrap();
    let channel = create_channel(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "events": ["drift.detected"]}),
    )
    .await;
    receiver.secrets(&[channel["secret"].as_str().unwrap()]).await;
    // Without content capture an explanation quotes responses by id only, and lists no terms.
    let (status, body) = send(&server, &key, "PATCH", "/api/v1/project", Some(json!({"capture_content": false}))).await;
    assert_eq!(status, 200, "{body}");
    let events = drive_drift(&server, &key, "crash-bot").await;
    let semantic: Vec<&Value> = events.iter().filter(|e| e["kind"] == "semantic").collect();
    assert_eq!(semantic.len(), 1, "{events:#?}");
    let explanation = &semantic[0]["explanation"];
    assert_eq!(explanation["content_captured"], false, "{explanation}");
    assert_eq!(explanation["farthest_recent"].as_array().unwrap().len(), 3, "{explanation}");
    assert!(
        explanation["farthest_recent"][0]["sample_id"].is_i64()
            && explanation["farthest_recent"][0].get("text").is_none()
    );
    assert!(explanation.get("terms_rose").is_none(), "{explanation}");
    server.kill();
    assert!(receiver.received().await.is_empty());

    let server = TestServer::start(&db, ALERT_ENV);
    let got = receiver.wait_for(30, "the drift alert after the restart", |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = receiver.received().await;
    assert_eq!(got_after.len(), events.len(), "one alert per drift event: {got_after:#?}");
    assert_eq!(got[0]["json"]["type"], "drift.detected");
    assert_eq!(got[0]["verified"], true);
    assert_eq!(got[0]["json"]["data"]["prompt"], "crash-bot");
    server.assert_no_server_errors();
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_deliver_each_event_once() {
    let Some(db) = TestDb::new(Kind::Postgres).await else { return };
    let receiver = Receiver::start();
    let env = [ALERT_ENV, &[("DRIFTBALLOON_WORKER_ENABLED", "false"), ("DRIFTBALLOON_ALERTS_POLL_INTERVAL_MS", "20")]]
        .concat();
    let first = TestServer::start(&db, &env);
    let key = first.first_key.clone().unwrap();
    let second = TestServer::start(&db, &env);
    let channel = create_channel(&first, &key, json!({"kind": "webhook", "url": receiver.url("/hook")})).await;
    let id = channel["id"].as_i64().unwrap();
    receiver.secrets(&[channel["secret"].as_str().unwrap()]).await;

    const EVENTS: usize = 60;
    let path = format!("/api/v1/alert-channels/{id}/test");
    let queued = futures_util::future::join_all((0..EVENTS).map(|i| {
        let server = if i % 2 == 0 { &first } else { &second };
        send(server, &key, "POST", &path, None)
    }))
    .await;
    assert!(queued.iter().all(|(status, _)| *status == 202), "{queued:?}");
    receiver.wait_for(60, "every event", |r| r.len() >= EVENTS).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // room for any duplicate to show up
    let got = receiver.received().await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        assert_eq!(r["verified"], true);
        *per_id.entry(r["headers"]["webhook-id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_id.len(), EVENTS, "every event arrived");
    assert!(per_id.values().all(|n| *n == 1), "an event arrived twice: {per_id:?}");
    let sent_by = |s: &TestServer| s.log_text().matches("alert delivered").count();
    let (a, b) = (sent_by(&first), sent_by(&second));
    assert_eq!(a + b, EVENTS, "replicas logged {a} + {b} deliveries");
    assert!(a > 0 && b > 0, "both replicas dispatched ({a}, {b})");
    first.assert_no_server_errors();
    second.assert_no_server_errors();
}

both_backends!(drift_resolved_once_the_old_answers_return, |db: TestDb| async move {
    let receiver = Receiver::start();
    let server = TestServer::start(&db, ALERT_ENV);
    let key = server.first_key.clone().unwrap();
    let channel = create_channel(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "events": ["drift.detected", "drift.resolved"]}),
    )
    .await;
    receiver.secrets(&[channel["secret"].as_str().unwrap()]).await;
    // Without auto-switch "a" keeps the traffic, so it can be seen to recover.
    let settings = json!({"min_baseline_samples": 20, "auto_switch_enabled": false});
    let events = drive_drift_with(&server, &key, "recovering-bot", settings).await;
    let semantic = events.iter().find(|e| e["kind"] == "semantic").expect("semantic drift").clone();
    log_texts(&server, &key, "recovering-bot", (100..170).map(support_answer).collect()).await;
    server.wait_processed(&key, "recovering-bot").await;
    let got = receiver
        .wait_for(30, "drift.resolved", |r| {
            r.iter().any(|x| x["json"]["type"] == "drift.resolved" && x["json"]["data"]["kind"] == "semantic")
        })
        .await;
    let resolved: Vec<&Value> = got
        .iter()
        .filter(|x| x["json"]["type"] == "drift.resolved" && x["json"]["data"]["kind"] == "semantic")
        .collect();
    assert_eq!(resolved.len(), 1, "{got:#?}");
    let data = &resolved[0]["json"]["data"];
    assert_eq!(data["drift_event_id"], semantic["id"]);
    assert_eq!(data["version"], "a");
    assert!(data["score"].as_f64().unwrap() >= 0.7, "{data}");
    assert!(resolved[0]["verified"] == true);
    server.assert_no_server_errors();
});

both_backends!(bad_channels_are_422s_naming_the_field, |db: TestDb| async move {
    // Private networks are not allowed here (the default).
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let cases = [
        (json!({"kind": "webhook", "url": "ftp://example.com/x"}), vec!["url"]),
        (json!({"kind": "webhook", "url": "not a url"}), vec!["url"]),
        (json!({"kind": "pager", "url": "https://example.com/x"}), vec!["kind"]),
        (
            json!({"kind": "webhook", "url": "https://example.com/x", "events": ["drift.detected", "drift.maybe"]}),
            vec!["events[1]"],
        ),
        (json!({"kind": "webhook", "url": "https://example.com/x", "prompts": "support"}), vec!["prompts"]),
        (json!({"kind": "webhook", "url": "https://example.com/x", "prompts": [7]}), vec!["prompts[0]"]),
        (json!({"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data"}), vec!["url"]),
        (json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook"}), vec!["url"]),
        (json!({"url": "https://example.com/x", "extra": 1}), vec!["extra", "kind"]),
    ];
    for (body, fields) in cases {
        let (status, answer) = send(&server, &key, "POST", "/api/v1/alert-channels", Some(body.clone())).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        let paths: Vec<&str> = answer["error"]["details"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, fields, "{body} -> {answer}");
    }
    let ok =
        create_channel(&server, &key, json!({"kind": "slack", "url": "https://hooks.slack.com/services/T/B/C"})).await;
    assert_eq!(ok["secret"], Value::Null);
    let id = ok["id"].as_i64().unwrap();
    let (status, body) =
        send(&server, &key, "PATCH", &format!("/api/v1/alert-channels/{id}"), Some(json!({"events": ["nope"]}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["problems"][0]["path"], "events[0]");
    let (status, body) = send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/rotate-secret"), None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server.get(&key, "/api/v1/alert-channels/999").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server.get(&key, "/api/v1/alert-channels/abc").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(&server, &key, "DELETE", &format!("/api/v1/alert-channels/{id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&server, &key, "DELETE", &format!("/api/v1/alert-channels/{id}"), None).await;
    assert_eq!(status, 404);
    server.assert_no_server_errors();
});

// A receiver's error answer is read only as far as the record keeps it: a 128 MiB body used to
// be read whole and raised the server's RSS by 332 MiB.
both_backends!(a_huge_error_answer_is_not_read_whole, |db: TestDb| async move {
    let base = common::receiver::huge_error_receiver(128 << 20).await;
    let server = TestServer::start(&db, ALERT_ENV);
    let key = server.first_key.clone().unwrap();
    let channel = create_channel(&server, &key, json!({"kind": "webhook", "url": format!("{base}/hook")})).await;
    let id = channel["id"].as_i64().unwrap();
    let peak_before = common::rss_mib(server.child.id(), "VmHWM:");
    let (status, body) = send(&server, &key, "POST", &format!("/api/v1/alert-channels/{id}/test"), None).await;
    assert_eq!(status, 202, "{body}");
    let list =
        wait_deliveries(&server, &key, id, |d| d.first().is_some_and(|x| x["attempts"].as_i64() >= Some(2))).await;
    assert_eq!(list[0]["last_status"], 500, "{list:#?}");
    let error = list[0]["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("xxxx"), "the start of the answer is kept: {error}");
    let grown = common::rss_mib(server.child.id(), "VmHWM:") - peak_before;
    assert!(grown < 48.0, "peak RSS grew {grown:.1} MiB over two 128 MiB error answers");
    server.assert_no_server_errors();
});

/// A receiver that answers 200 after `delay`, and counts the most requests it held at once.
async fn slow_receiver(delay: Duration) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (now, most) = (now.clone(), most.clone());
            tokio::spawn(async move {
                let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(held, Ordering::SeqCst);
                let mut request = [0u8; 64 * 1024];
                let _ = socket.read(&mut request).await;
                tokio::time::sleep(delay).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    (base, seen)
}

// Deliveries are shared fairly: 16 alerts to one project's slow receiver hold at most two of
// the dispatcher's slots, and another project's alert goes out at once (it waited 5.7 s behind
// them when one receiver could take every slot).
both_backends!(a_slow_receiver_does_not_hold_another_projects_alerts, |db: TestDb| async move {
    let (slow_base, slow_most) = slow_receiver(Duration::from_millis(1500)).await;
    let (fast_base, _) = slow_receiver(Duration::ZERO).await;
    let server = TestServer::start(&db, ALERT_ENV);
    let busy_key = server.first_key.clone().unwrap();
    let other_key = common::create_key(&db, "other");
    let slow = create_channel(&server, &busy_key, json!({"kind": "webhook", "url": format!("{slow_base}/hook")})).await;
    let fast =
        create_channel(&server, &other_key, json!({"kind": "webhook", "url": format!("{fast_base}/hook")})).await;
    let (slow_id, fast_id) = (slow["id"].as_i64().unwrap(), fast["id"].as_i64().unwrap());
    for _ in 0..16 {
        let (status, body) =
            send(&server, &busy_key, "POST", &format!("/api/v1/alert-channels/{slow_id}/test"), None).await;
        assert_eq!(status, 202, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = Instant::now();
    send(&server, &other_key, "POST", &format!("/api/v1/alert-channels/{fast_id}/test"), None).await;
    wait_deliveries(&server, &other_key, fast_id, |d| d.first().is_some_and(|x| x["status"] == "delivered")).await;
    let waited = queued.elapsed();
    println!("another project's alert delivered {} ms after it was queued", waited.as_millis());
    assert!(waited < Duration::from_millis(1200), "another project's alert waited {waited:?}");
    let list =
        wait_deliveries(&server, &busy_key, slow_id, |d| d.len() == 16 && d.iter().all(|x| x["status"] == "delivered"))
            .await;
    assert_eq!(list.len(), 16);
    assert!(
        slow_most.load(Ordering::SeqCst) <= 2,
        "{} attempts at once to one receiver",
        slow_most.load(Ordering::SeqCst)
    );
    server.assert_no_server_errors();
});
