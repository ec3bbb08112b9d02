//! Mutation testing of every write endpoint: valid requests with one field swapped for a value
//! of another type or an extreme, and OTLP protobuf with flipped, cut or added bytes. Whatever
//! comes in, the answer is a 2xx or a 4xx JSON error, never a 5xx. Seeded, so a failure
//! repeats.

use crate::common;
use crate::common::clock::{base_iso, base_nanos_text};
use crate::common::{status_json, TestDb, TestServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const JSON_MUTATIONS: usize = 400;
const PROTOBUF_MUTATIONS: usize = 200;

fn valid_requests() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "POST",
            "/api/v1/logs",
            json!({"logs": [{"prompt_name": "p", "response_text": "r", "input_text": "i", "model": "m"}]}),
        ),
        (
            "POST",
            "/api/v1/model-configs",
            json!({"key": "k", "variants": [{"model": "a", "weight": 60}, {"model": "b", "weight": 40}],
                   "targeting": {"enabled": true, "individualTargets": [{"field": "customerId", "value": "u", "variantIndex": 1}],
                                 "rules": [{"conditions": [{"field": "plan", "operator": "in", "value": ["x"]}], "variantIndex": 0}]}}),
        ),
        (
            "POST",
            "/sessions",
            json!({"config_key": "k", "config_version": 1, "session_id": "s", "assigned_model": "a"}),
        ),
        ("POST", "/spans", json!({"config_key": "k", "session_id": "s", "data": {"score": 1, "label": "x"}})),
        (
            "POST",
            "/v1/traces",
            json!({"config_key": "k", "session_id": "s", "trace_id": "t", "span_id": "s1", "name": "n",
                   "start_time": base_iso(0), "end_time": base_iso(1000), "duration_ms": 1000,
                   "status": "OK", "kind": "llm", "model": "m", "time_to_first_token_ms": 5, "is_streaming": false,
                   "metadata": {"a": 1}, "tags": ["t"], "prompt_key": "p", "prompt_version": 1,
                   "prompt_ab_test_key": "ab", "prompt_variant_index": 0,
                   "attributes": {"fallom.raw.response": "{\"text\": \"hi\"}", "fallom.raw.usage": "{\"prompt_tokens\": 1}"}}),
        ),
        (
            "POST",
            "/v1/traces",
            json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]},
                "scopeSpans": [{"scope": {"name": "s"}, "spans": [{"traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174", "name": "chat", "kind": 3, "startTimeUnixNano": base_nanos_text(0),
                "endTimeUnixNano": base_nanos_text(1000), "status": {"code": 1},
                "attributes": [{"key": "gen_ai.completion", "value": {"stringValue": "hello"}},
                               {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3"}}]}]}]}]}),
        ),
        ("POST", "/api/v1/prompt-templates", json!({"key": "t", "system_prompt": "s", "user_template": "u {{x}}"})),
        ("POST", "/api/v1/prompt-ab-tests", json!({"key": "ab", "variants": [{"prompt_key": "t", "weight": 100}]})),
        ("PATCH", "/api/v1/project", json!({"capture_content": true})),
        ("PATCH", "/api/v1/prompts/p", json!({"drift_threshold": 0.5, "active_prompt": "b"})),
        (
            "POST",
            "/api/v1/alert-channels",
            json!({"kind": "webhook", "url": "https://alerts.example.com/hook", "events": ["drift.detected"],
                   "prompts": ["p"]}),
        ),
        ("PATCH", "/api/v1/alert-channels/1", json!({"url": "https://alerts.example.com/other", "events": null})),
        ("POST", "/api/v1/alert-channels/1/rotate-secret", json!({"grace_period_seconds": 60})),
    ]
}

fn odd_value(rng: &mut StdRng) -> Value {
    let deep = (0..40).fold(json!(1), |v, _| json!([v]));
    let choices = [
        Value::Null,
        json!(0),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e308),
        json!(-0.5),
        json!(""),
        json!(" "),
        json!("x".repeat(5000)),
        json!("\u{0}"),
        json!("é/?#%"),
        json!(true),
        json!([]),
        json!({}),
        json!([1, "a", null]),
        json!({"nested": {"deep": [1, 2]}}),
        deep,
        json!("2026-02-30T25:61:00Z"), // fixed-date: an impossible date, refused on any day
        json!("9999999999999999999999"),
    ];
    choices[rng.gen_range(0..choices.len())].clone()
}

/// Every (parent, key-or-index) location in a document, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

fn mutate(body: &Value, rng: &mut StdRng) -> Value {
    let mut body = body.clone();
    let mut places = Vec::new();
    pointers(&body, String::new(), &mut places);
    let changes = rng.gen_range(1..=2);
    for _ in 0..changes {
        if places.is_empty() || rng.gen_bool(0.05) {
            return odd_value(rng);
        }
        let place = &places[rng.gen_range(0..places.len())];
        if rng.gen_bool(0.15) {
            // remove the field / element instead
            let (parent, last) = place.rsplit_once('/').unwrap();
            match body.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                }
                _ => {}
            }
        } else if let Some(slot) = body.pointer_mut(place) {
            *slot = odd_value(rng);
        }
        places.clear();
        pointers(&body, String::new(), &mut places);
    }
    body
}

fn otlp_body() -> Vec<u8> {
    let kv = |k: &str, v: any_value::Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    let span = Span {
        trace_id: vec![9; 16],
        span_id: vec![8; 8],
        name: "chat".into(),
        start_time_unix_nano: common::clock::base_nanos(0),
        end_time_unix_nano: common::clock::base_nanos(1000),
        attributes: vec![
            kv("gen_ai.request.model", any_value::Value::StringValue("m".into())),
            kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(4)),
            kv("gen_ai.output.messages", any_value::Value::StringValue("[{\"parts\": [{\"content\": \"x\"}]}]".into())),
        ],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

both_backends!(mutated_requests_never_get_a_5xx, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let mut rng = StdRng::seed_from_u64(0x0D21F7);
    let requests = valid_requests();
    // The valid originals first: all accepted.
    for (method, path, body) in &requests {
        let req = server.http.request(method.parse().unwrap(), server.url(path)).bearer_auth(&key).json(body);
        let (status, answer) = status_json(req.send().await.unwrap()).await;
        assert!(status < 300, "{method} {path} valid body: {status} {answer}");
    }
    for i in 0..JSON_MUTATIONS {
        let (method, path, body) = &requests[i % requests.len()];
        let mutated = mutate(body, &mut rng);
        let req = server.http.request(method.parse().unwrap(), server.url(path)).bearer_auth(&key).json(&mutated);
        let (status, answer) = status_json(req.send().await.unwrap()).await;
        assert!(status < 500, "{method} {path} with {mutated}: {status} {answer}");
        if status >= 400 {
            assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
        }
    }
    let original = otlp_body();
    for _ in 0..PROTOBUF_MUTATIONS {
        let mut bytes = original.clone();
        match rng.gen_range(0..3) {
            0 => {
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
            }
            1 => bytes.truncate(rng.gen_range(0..bytes.len())),
            _ => bytes.extend((0..rng.gen_range(1..20)).map(|_| rng.gen::<u8>())),
        }
        let resp = server
            .http
            .post(server.url("/v1/traces"))
            .bearer_auth(&key)
            .header("content-type", "application/x-protobuf")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status < 500, "protobuf {bytes:?}: {status}");
    }
    server.assert_no_server_errors();
});
