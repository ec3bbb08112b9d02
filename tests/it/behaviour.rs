//! Behaviour drift end to end (issue 31), through the real server and the real model at the
//! defaults: a stable stream stays quiet; a creep of refusals fires the refusal detector once,
//! switches a -> b, alerts and shows on the prompt's page; a shift in the mixture of answer
//! kinds (same templates, other shares) fires the distribution detector once.

use crate::common;
use crate::common::receiver::Receiver;
use crate::common::texts::{refusal, support_answer};
use crate::common::{TestDb, TestServer};
use serde_json::{json, Value};

const ALERT_ENV: &[(&str, &str)] =
    &[("DRIFTBALLOON_ALERTS_ALLOW_PRIVATE_NETWORKS", "true"), ("DRIFTBALLOON_ALERTS_POLL_INTERVAL_MS", "100")];

async fn log_texts(server: &TestServer, key: &str, prompt: &str, texts: &[String]) {
    for chunk in texts.chunks(10) {
        let logs: Vec<Value> = chunk.iter().map(|t| json!({"prompt_name": prompt, "response_text": t})).collect();
        let (status, body) = server.post_logs(key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
    }
}

async fn events_of(server: &TestServer, key: &str, prompt: &str) -> Vec<Value> {
    let (status, events) = server.get(key, &format!("/api/v1/prompts/{prompt}/drift-events")).await;
    assert_eq!(status, 200, "{events}");
    events["events"].as_array().unwrap().clone()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The prompt's dashboard page, signed in with the key.
async fn prompt_page(server: &TestServer, key: &str, prompt: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = client.post(server.url("/ui/sign-in")).form(&[("api_key", key)]).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let resp = client.get(server.url(&format!("/ui/prompts/{prompt}"))).header("cookie", cookie).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.unwrap()
}

both_backends!(refusal_creep_fires_once_switches_alerts_and_shows, |db: TestDb| async move {
    let receiver = Receiver::start();
    let server = TestServer::start(&db, ALERT_ENV);
    let key = server.first_key.clone().unwrap();
    let (status, channel) = {
        let resp = server
            .http
            .post(server.url("/api/v1/alert-channels"))
            .bearer_auth(&key)
            .json(&json!({"kind": "webhook", "url": receiver.url("/hook"), "events": ["drift.detected"]}))
            .send()
            .await
            .unwrap();
        common::status_json(resp).await
    };
    assert_eq!(status, 201, "{channel}");
    receiver.secrets(&[channel["secret"].as_str().unwrap()]).await;

    // A stable stream: a baseline of 30 and 170 more, no event of any kind.
    let prompt = "refusal-bot";
    let stable: Vec<String> = (0..200).map(support_answer).collect();
    log_texts(&server, &key, prompt, &stable).await;
    let detail = server.wait_processed(&key, prompt).await;
    assert_eq!(detail["baseline_status"], "ready", "{detail}");
    assert!(events_of(&server, &key, prompt).await.is_empty(), "a stable stream stays quiet");
    assert_eq!(detail["versions"]["a"]["reference_refusal_rate"], 0.0, "{detail}");
    assert_eq!(detail["false_alarm_budget"], 1.0, "{detail}");

    // Then 40 % of the answers are refusals.
    let creep: Vec<String> = (200..280).map(|i| if i % 5 < 2 { refusal(i) } else { support_answer(i) }).collect();
    log_texts(&server, &key, prompt, &creep).await;
    let detail = server.wait_processed(&key, prompt).await;
    let events = events_of(&server, &key, prompt).await;
    let refusals = of_kind(&events, "refusal");
    assert_eq!(refusals.len(), 1, "one refusal event per episode: {events:#?}");
    let event = refusals[0];
    assert_eq!(event["version"], "a");
    assert!(event["score"].as_f64().unwrap() >= event["threshold"].as_f64().unwrap(), "{event}");
    let explanation = &event["explanation"];
    assert_eq!(explanation["reference_rate"], 0.0, "{explanation}");
    assert!(explanation["recent_rate"].as_f64().unwrap() >= 0.2, "{explanation}");
    assert!(!explanation["recent_refusals"].as_array().unwrap().is_empty(), "{explanation}");
    // The first event of the episode switched the prompt to b.
    assert_eq!(events[0]["switched_to"], "b", "{events:#?}");
    assert_eq!((&detail["status"], &detail["active_prompt"]), (&json!("drifted"), &json!("b")), "{detail}");

    // The alert reached the receiver, signed.
    let got = receiver
        .wait_for(30, "the refusal alert", |r| {
            r.iter().any(|h| h["json"]["type"] == "drift.detected" && h["json"]["data"]["kind"] == "refusal")
        })
        .await;
    assert!(got.iter().all(|h| h["verified"] == true), "{got:#?}");

    // The page lists the event with its rates and draws the refusal chart.
    let html = prompt_page(&server, &key, prompt).await;
    assert!(html.contains("refusal drift"), "{html}");
    assert!(html.contains("Refusal rate of the last 50 responses"), "{html}");
    assert!(html.contains("in the reference"), "{html}");
    server.assert_no_server_errors();
});

both_backends!(a_shifted_mixture_fires_the_distribution_detector_once, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let prompt = "mixture-bot";
    // Every kind of support answer in turn, then only two of the ten kinds: each answer is one
    // the baseline has seen, so the centroid barely moves; the mixture does.
    let stable: Vec<String> = (0..200).map(support_answer).collect();
    log_texts(&server, &key, prompt, &stable).await;
    server.wait_processed(&key, prompt).await;
    assert!(events_of(&server, &key, prompt).await.is_empty());
    let narrow: Vec<String> =
        (200..1000).map(support_answer).filter(|t| t.starts_with("Your order")).take(60).collect();
    let other: Vec<String> =
        (200..1000).map(support_answer).filter(|t| t.starts_with("We have issued")).take(60).collect();
    let shifted: Vec<String> = narrow.into_iter().zip(other).flat_map(|(a, b)| [a, b]).collect();
    log_texts(&server, &key, prompt, &shifted).await;
    let detail = server.wait_processed(&key, prompt).await;
    let events = events_of(&server, &key, prompt).await;
    let distribution = of_kind(&events, "distribution");
    assert_eq!(distribution.len(), 1, "{events:#?}");
    let event = distribution[0];
    assert!(event["score"].as_f64().unwrap() >= event["threshold"].as_f64().unwrap(), "{event}");
    let explanation = &event["explanation"];
    assert_eq!(explanation["least_like_reference"].as_array().unwrap().len(), 3, "{explanation}");
    assert_eq!(explanation["reference_least_like_recent"].as_array().unwrap().len(), 3, "{explanation}");
    assert!(of_kind(&events, "refusal").is_empty(), "{events:#?}");
    assert_eq!(detail["active_prompt"], "b", "{detail}");
    assert!(detail["versions"]["a"]["distribution_score"].as_f64().unwrap() > 0.0, "{detail}");
    // The samples carry the new scores.
    let (_, page) = server.get(&key, &format!("/api/v1/prompts/{prompt}/samples?limit=50")).await;
    let samples = page["samples"].as_array().unwrap();
    assert!(samples.iter().any(|s| s["distribution_score"].is_f64()), "{page}");
    assert!(samples.iter().all(|s| s["refusal"] == false), "{page}");
    server.assert_no_server_errors();
});

both_backends!(the_budget_is_a_prompt_setting, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    log_texts(&server, &key, "budget-bot", &[support_answer(0)]).await;
    let patch = |body: Value| {
        let (server, key) = (&server, &key);
        async move {
            let resp = server
                .http
                .patch(server.url("/api/v1/prompts/budget-bot"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            common::status_json(resp).await
        }
    };
    let (status, body) = patch(json!({"false_alarm_budget": 10})).await;
    assert_eq!((status, &body["false_alarm_budget"]), (200, &json!(10.0)), "{body}");
    let (status, body) = patch(json!({"false_alarm_budget": 0})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("false_alarm_budget"), "{body}");
    let (status, body) = patch(json!({"false_alarm_budget": "lots"})).await;
    assert_eq!(status, 422, "{body}");
});
