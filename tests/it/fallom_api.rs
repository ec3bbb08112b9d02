//! Black-box tests of the Fallom-compatible endpoints and OTLP ingest over HTTP, on SQLite and
//! on Postgres: management REST, the SDK paths, every kind of bad input, privacy, paging.

use crate::common;
use crate::common::clock::{base_iso, base_ms, base_nanos, base_nanos_text};
use crate::common::{status_json, TestDb, TestServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{json, Value};

impl TestServer {
    async fn post_json(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.http.post(self.url(path)).bearer_auth(key).json(body).send().await.unwrap();
        status_json(resp).await
    }

    async fn post_raw(&self, key: &str, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// The problem paths of a 422 answer.
fn problem_paths(status: u16, body: &Value) -> Vec<String> {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    body["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().into())
        .collect()
}

fn fallom_span(trace: &str, span: &str, session: &str, model: &str, start: &str) -> Value {
    json!({
        "config_key": "summarizer", "session_id": session, "trace_id": trace, "span_id": span,
        "name": "chat.completions.create", "start_time": start, "end_time": start, "duration_ms": 0,
        "status": "OK", "kind": "llm", "model": model, "customer_id": format!("cust-{session}"),
        "attributes": {
            "fallom.raw.request": "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]}",
            "fallom.raw.response": "{\"text\": \"Hello! How can I help?\"}",
            "fallom.raw.usage": "{\"input_tokens\": 3, \"output_tokens\": 6}"
        }
    })
}

both_backends!(model_configs_rest_and_sdk_paths, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let variants = json!([{"model": "gpt-4o", "weight": 70}, {"model": "claude", "weight": 30}]);
    let (status, v1) =
        server.post_json(&key, "/api/v1/model-configs", &json!({"key": "summ", "variants": variants})).await;
    assert_eq!((status, v1["version"].clone()), (201, json!(1)), "{v1}");
    let v2_body = json!({"key": "summ", "variants": [{"model": "mini", "weight": 100}],
        "targeting": {"rules": [{"conditions": [{"field": "plan", "operator": "eq", "value": "pro"}], "variantIndex": 0}]}});
    let (status, v2) = server.post_json(&key, "/api/v1/model-configs", &v2_body).await;
    assert_eq!((status, v2["version"].clone()), (201, json!(2)), "{v2}");

    let (_, configs) = server.get(&key, "/configs").await;
    assert_eq!(configs["configs"].as_array().unwrap().len(), 1, "latest version only: {configs}");
    assert_eq!(configs["configs"][0]["version"], 2);
    assert_eq!(configs["configs"][0]["variants"], json!([{"model": "mini", "weight": 100}]));
    assert_eq!(configs["configs"][0]["targeting"]["rules"][0]["variantIndex"], 0);
    let (status, pinned) = server.get(&key, "/configs/summ/version/1").await;
    assert_eq!((status, pinned["variants"].clone()), (200, variants.clone()));
    assert!(pinned.get("targeting").is_none(), "{pinned}");
    let (status, err) = server.get(&key, "/configs/summ/version/9").await;
    assert_eq!((status, err["error"]["code"].clone()), (404, json!("not_found")));
    let (status, err) = server.get(&key, "/configs/summ/version/latest").await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid_path")), "{err}");

    let (_, list) = server.get(&key, "/api/v1/model-configs").await;
    assert_eq!(list["model_configs"][0]["latest_version"], 2);
    let (_, detail) = server.get(&key, "/api/v1/model-configs/summ").await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    let (status, _) = server.get(&key, "/api/v1/model-configs/summ/versions/1").await;
    assert_eq!(status, 200);

    // Archiving hides the config from the SDK; pinned versions keep working.
    let (status, _) = server.post_json(&key, "/api/v1/model-configs/summ/archive", &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(server.get(&key, "/configs").await.1["configs"], json!([]));
    assert_eq!(server.get(&key, "/configs/summ/version/2").await.0, 200);
    let (status, _) = server.post_json(&key, "/api/v1/model-configs/nope/archive", &json!({})).await;
    assert_eq!(status, 404);
    let (_, v3) = server.post_json(&key, "/api/v1/model-configs", &v2_body).await;
    assert_eq!(v3["version"], 3);
    assert_eq!(server.get(&key, "/configs").await.1["configs"][0]["version"], 3, "publishing un-archives");

    // Sessions: stored once per (config, version, session), repeats counted.
    for _ in 0..3 {
        let body = json!({"config_key": "summ", "config_version": 3, "session_id": "s1", "assigned_model": "mini"});
        assert_eq!(server.post_json(&key, "/sessions", &body).await.0, 202);
    }
    let body = json!({"config_key": "summ", "config_version": 3, "session_id": "s2", "assigned_model": "mini"});
    assert_eq!(server.post_json(&key, "/sessions", &body).await.0, 202);
    // Traffic of those sessions: durations 100/300/200 ms, one error, 3 + 6 tokens each.
    for (i, (session, ms, status)) in [("s1", 100, "OK"), ("s1", 300, "ERROR"), ("s2", 200, "OK")].iter().enumerate() {
        let mut span = fallom_span(&format!("sum-{i}"), "x", session, "mini", &base_iso(0));
        span["config_key"] = json!("summ");
        span["duration_ms"] = json!(ms);
        span["status"] = json!(status);
        assert_eq!(server.post_json(&key, "/v1/traces", &span).await.0, 202);
    }
    for (session, score) in [("s1", 4), ("s2", 2)] {
        let body = json!({"config_key": "summ", "session_id": session, "data": {"score": score, "note": "text"}});
        assert_eq!(server.post_json(&key, "/spans", &body).await.0, 202);
    }
    let (_, summary) = server.get(&key, "/api/v1/model-configs/summ/summary").await;
    let mini = &summary["variants"][0];
    assert_eq!(
        (mini["model"].clone(), mini["weight"].clone(), mini["sessions"].clone(), mini["assignments"].clone()),
        (json!("mini"), json!(100), json!(2), json!(4))
    );
    assert_eq!(
        (mini["traces"].clone(), mini["errors"].clone(), mini["mean_latency_ms"].clone()),
        (json!(3), json!(1), json!(200.0))
    );
    assert_eq!((mini["input_tokens"].clone(), mini["output_tokens"].clone()), (json!(9), json!(18)));
    assert!((mini["error_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9, "{mini}");
    assert_eq!(mini["metrics"], json!({"score": 3.0}), "numeric metrics averaged per variant");
    // "mini" has no price: no cost, never 0; with the project's own price its calls are priced
    assert_eq!(
        mini["cost"],
        json!({"usd": null, "status": "no_price", "unpriced_calls": 3, "unpriced_models": ["mini"]})
    );
    assert_eq!(mini["cost_per_call_usd"], Value::Null);
    let url = server.url("/api/v1/prices/mini");
    let resp = server.http.put(url).bearer_auth(&key).json(&json!({"input": 1.0, "output": 2.0})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (_, summary) = server.get(&key, "/api/v1/model-configs/summ/summary").await;
    let mini = &summary["variants"][0];
    let per_call = (3.0 * 1.0 + 6.0 * 2.0) / 1e6;
    assert!((mini["cost"]["usd"].as_f64().unwrap() - 3.0 * per_call).abs() < 1e-12, "{mini}");
    assert_eq!(mini["cost"]["status"], "priced");
    assert!((mini["cost_per_call_usd"].as_f64().unwrap() - per_call).abs() < 1e-12, "{mini}");
    assert_eq!(server.get(&key, "/api/v1/model-configs/summ/summary?version=7").await.0, 404);
    let (status, err) = server.get(&key, "/api/v1/model-configs/summ/summary?version=x").await;
    assert_eq!((status, err["error"]["code"].clone()), (422, json!("validation_failed")));
    assert_eq!(err["error"]["details"]["problems"][0]["path"], "version", "{err}");
    let (status, body) = server
        .post_json(&key, "/sessions", &json!({"config_key": "summ", "config_version": "3", "session_id": 4}))
        .await;
    assert_eq!(problem_paths(status, &body), ["config_version", "session_id", "assigned_model"]);
    server.assert_no_server_errors();
});

both_backends!(model_config_validation_names_each_problem, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let post = |body: Value| {
        let server = &server;
        let key = key.clone();
        async move { server.post_json(&key, "/api/v1/model-configs", &body).await }
    };
    let (s, b) =
        post(json!({"key": "k", "variants": [{"model": "a", "weight": 60}, {"model": "b", "weight": 30}]})).await;
    assert_eq!(problem_paths(s, &b), ["variants"]);
    assert!(b["error"]["message"].as_str().unwrap().contains("sum to 100"), "{b}");
    let (s, b) = post(json!({"key": "k", "variants": [{"model": "a", "weight": "100"}]})).await;
    assert_eq!(problem_paths(s, &b), ["variants[0].weight"]);
    let (s, b) =
        post(json!({"key": "k", "variants": [{"model": "a", "weight": 50}, {"model": "a", "weight": 50}]})).await;
    assert_eq!(problem_paths(s, &b), ["variants[1].model"]);
    let (s, b) = post(json!({"key": "k", "variants": [{"model": "a", "weight": 100}], "targeting": {
        "individualTargets": [{"field": "customerId", "value": "u1", "variantIndex": 3}],
        "rules": [{"conditions": [{"field": "plan", "operator": "like", "value": "x"}], "variantIndex": 0}]}}))
    .await;
    assert_eq!(
        problem_paths(s, &b),
        ["targeting.individualTargets[0].variantIndex", "targeting.rules[0].conditions[0].operator"]
    );
    let (s, b) = post(json!({"key": "a/b", "variants": []})).await;
    assert_eq!(problem_paths(s, &b), ["key", "variants"]);
    let (s, b) = post(json!(["not", "an", "object"])).await;
    assert_eq!(problem_paths(s, &b), ["body"]);
    let resp = server.post_raw(&key, "/api/v1/model-configs", "application/json", b"{\"key\": ".to_vec()).await;
    let (s, b) = status_json(resp).await;
    assert_eq!((s, b["error"]["code"].clone()), (400, json!("invalid_json")));
    assert_eq!(server.get(&key, "/configs").await.1["configs"], json!([]), "nothing was stored");
    server.assert_no_server_errors();
});

fn otlp_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn otlp_span(trace: u8, span: u8, completion: &str) -> Span {
    let kv = |k: &str, v: any_value::Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        name: "chat".into(),
        start_time_unix_nano: base_nanos(0),
        end_time_unix_nano: base_nanos(250),
        attributes: vec![
            kv("gen_ai.request.model", any_value::Value::StringValue("gpt-4o".into())),
            kv("gen_ai.usage.prompt_tokens", any_value::Value::IntValue(9)),
            kv("gen_ai.usage.completion_tokens", any_value::Value::IntValue(4)),
            kv("gen_ai.completion", any_value::Value::StringValue(completion.into())),
            kv("fallom.config_key", any_value::Value::StringValue("otlp-config".into())),
        ],
        ..Default::default()
    }
}

both_backends!(traces_accept_three_formats_and_refuse_bad_input, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_BODY_LIMIT_BYTES", "20000")]);
    let key = server.first_key.clone().unwrap();

    // 1. Fallom JSON: stored, sampled; the same span again is a duplicate.
    // Python's isoformat() writes the offset as +00:00
    let span = fallom_span("t-1", "s-1", "sess-1", "gpt-4o", &base_iso(0).replace('Z', "+00:00"));
    let (status, body) = server.post_json(&key, "/v1/traces", &span).await;
    assert_eq!((status, body["stored"].clone(), body["samples"].clone()), (202, json!(1), json!(1)), "{body}");
    let (_, body) = server.post_json(&key, "/v1/traces", &span).await;
    assert_eq!((body["stored"].clone(), body["duplicates"].clone()), (json!(0), json!(1)), "{body}");
    let (_, trace) = server.get(&key, "/api/v1/traces/t-1").await;
    assert_eq!(trace["spans"][0]["usage"], json!({"input_tokens": 3, "output_tokens": 6, "total_tokens": 9}));
    assert_eq!(server.sample_total(&key, "summarizer").await, 1);

    // 2. OTLP protobuf, answered in protobuf; a span with a zero trace id is rejected alone.
    let mut bad = otlp_span(0, 1, "x");
    bad.trace_id = vec![0; 16];
    let request = otlp_request(vec![otlp_span(7, 1, "Sure, here it is."), bad]);
    let resp = server.post_raw(&key, "/v1/traces", "application/x-protobuf", request.encode_to_vec()).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);
    let (_, trace) = server.get(&key, &format!("/api/v1/traces/{}", "07".repeat(16))).await;
    let stored = &trace["spans"][0];
    assert_eq!((stored["model"].clone(), stored["duration_ms"].clone()), (json!("gpt-4o"), json!(250)));
    assert_eq!(stored["usage"]["total_tokens"], 13);
    assert_eq!(server.sample_total(&key, "otlp-config").await, 1);
    // the same span twice in one export is stored once, with one drift sample
    let twice = otlp_request(vec![otlp_span(8, 1, "Once only."), otlp_span(8, 1, "Once only.")]);
    let resp = server.post_raw(&key, "/v1/traces", "application/x-protobuf", twice.encode_to_vec()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let (_, trace) = server.get(&key, &format!("/api/v1/traces/{}", "08".repeat(16))).await;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(1), "{trace}");
    assert!(trace["spans"][0]["sample_id"].is_i64(), "{trace}");
    assert_eq!(server.sample_total(&key, "otlp-config").await, 2);

    // 3. OTLP JSON, answered in JSON.
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "embed",
        "startTimeUnixNano": base_nanos_text(0), "endTimeUnixNano": base_nanos_text(100), "kind": 3}]}]}]});
    let (status, answer) = server.post_json(&key, "/v1/traces", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("partialSuccess").is_none_or(Value::is_null), "{answer}");
    let (_, trace) = server.get(&key, "/api/v1/traces/5b8efff798038103d269b633813fc60c").await;
    assert_eq!(
        (trace["spans"][0]["kind"].clone(), trace["spans"][0]["sample_id"].clone()),
        (json!("client"), Value::Null)
    );

    // Bad input: a clear 4xx each time, never a 5xx.
    let resp = server.post_raw(&key, "/v1/traces", "application/x-protobuf", vec![0xff, 0xff, 0xff, 0x01]).await;
    let (status, err) = status_json(resp).await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid_protobuf")), "{err}");
    let (status, err) = server.post_json(&key, "/v1/traces", &json!({"resourceSpans": [{"scopeSpans": 5}]})).await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid_otlp_json")), "{err}");
    let (status, err) = server.post_json(&key, "/v1/traces", &json!({"resource_spans": []})).await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid_otlp_json")), "{err}");
    let resp = server.post_raw(&key, "/v1/traces", "text/plain", b"hello".to_vec()).await;
    let (status, err) = status_json(resp).await;
    assert_eq!((status, err["error"]["code"].clone()), (415, json!("unsupported_media_type")));
    let mut wrong = fallom_span("t-2", "s-2", "sess", "m", "not a time");
    wrong["duration_ms"] = json!("slow");
    wrong["metadata"] = json!([1]);
    let (status, err) = server.post_json(&key, "/v1/traces", &wrong).await;
    assert_eq!(problem_paths(status, &err), ["start_time", "end_time", "duration_ms", "metadata"]);
    let resp = server
        .http
        .post(server.url("/v1/traces"))
        .bearer_auth(&key)
        .header("content-type", "application/x-protobuf")
        .body(vec![0u8; 30_000])
        .send()
        .await
        .unwrap();
    let (status, err) = status_json(resp).await;
    assert_eq!((status, err["error"]["code"].clone()), (413, json!("payload_too_large")));
    let resp = reqwest::Client::new().post(server.url("/v1/traces")).json(&span).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    server.assert_no_server_errors();
});

both_backends!(capture_content_off_drops_content_from_stored_spans, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let (status, project) = server.get(&key, "/api/v1/project").await;
    assert_eq!((status, project["capture_content"].clone()), (200, json!(true)));
    let resp =
        server.http.patch(server.url("/api/v1/project")).bearer_auth(&key).json(&json!({"capture_content": "no"}));
    let (status, err) = status_json(resp.send().await.unwrap()).await;
    assert_eq!(problem_paths(status, &err), ["capture_content"]);
    let resp =
        server.http.patch(server.url("/api/v1/project")).bearer_auth(&key).json(&json!({"capture_content": false}));
    let (status, project) = status_json(resp.send().await.unwrap()).await;
    assert_eq!((status, project["capture_content"].clone()), (200, json!(false)));

    let (status, _) =
        server.post_json(&key, "/v1/traces", &fallom_span("t-p", "s-p", "sess", "gpt-4o", &base_iso(0))).await;
    assert_eq!(status, 202);
    let request = otlp_request(vec![otlp_span(9, 9, "a private answer")]);
    let resp = server.post_raw(&key, "/v1/traces", "application/x-protobuf", request.encode_to_vec()).await;
    assert_eq!(resp.status().as_u16(), 200);
    for trace in ["t-p".to_string(), "09".repeat(16)] {
        let (_, body) = server.get(&key, &format!("/api/v1/traces/{trace}")).await;
        let span = &body["spans"][0];
        assert_eq!((span["request"].clone(), span["response_text"].clone()), (Value::Null, Value::Null), "{span}");
        let attributes = span["attributes"].as_object().unwrap();
        assert!(!attributes.keys().any(|k| k.starts_with("fallom.raw.re") || k == "gen_ai.completion"), "{span}");
        assert!(span["usage"]["total_tokens"].as_i64().unwrap() > 0, "usage is kept: {span}");
        assert_eq!(span["sample_id"], Value::Null);
    }
    assert_eq!(server.sample_total(&key, "summarizer").await, 0);
    server.assert_no_server_errors();
});

both_backends!(trace_list_filters_and_pages, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    for i in 0..7 {
        let model = if i % 2 == 0 { "gpt-4o" } else { "claude" };
        let mut span = fallom_span(&format!("tr-{i}"), "root", &format!("sess-{}", i % 3), model, &base_iso(0));
        // two traces share a start time, so paging must break ties by id
        span["start_time"] = json!(base_iso(1000 * i.min(5) as i64));
        span["end_time"] = span["start_time"].clone();
        if i == 3 {
            span["status"] = json!("ERROR");
            span["error_message"] = json!("timeout");
        }
        assert_eq!(server.post_json(&key, "/v1/traces", &span).await.0, 202);
    }
    let child = json!({"config_key": "summarizer", "session_id": "sess-0", "trace_id": "tr-0", "span_id": "child",
        "parent_span_id": "root", "name": "tool", "start_time": base_iso(0),
        "end_time": base_iso(500), "duration_ms": 500, "status": "OK"});
    assert_eq!(server.post_json(&key, "/v1/traces", &child).await.0, 202);

    let mut seen = Vec::new();
    let mut path = "/api/v1/traces?limit=3".to_string();
    loop {
        let (status, page) = server.get(&key, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["traces"].as_array().unwrap().iter().map(|t| t["trace_id"].as_str().unwrap().to_string()));
        match page["next_before"].as_str() {
            Some(cursor) => path = format!("/api/v1/traces?limit=3&before={}", common::encode(cursor)),
            None => break,
        }
    }
    assert_eq!(seen, ["tr-6", "tr-5", "tr-4", "tr-3", "tr-2", "tr-1", "tr-0"]);

    let ids = |body: &Value| -> Vec<String> {
        body["traces"].as_array().unwrap().iter().map(|t| t["trace_id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&server.get(&key, "/api/v1/traces?model=claude").await.1), ["tr-5", "tr-3", "tr-1"]);
    assert_eq!(ids(&server.get(&key, "/api/v1/traces?session_id=sess-0").await.1), ["tr-6", "tr-3", "tr-0"]);
    assert_eq!(ids(&server.get(&key, "/api/v1/traces?status=error").await.1), ["tr-3"]);
    assert_eq!(
        ids(&server.get(&key, "/api/v1/traces?customer_id=cust-sess-1&config_key=summarizer").await.1),
        ["tr-4", "tr-1"]
    );
    let from = base_ms() + 2000;
    assert_eq!(
        ids(&server.get(&key, &format!("/api/v1/traces?from={from}&to={}", from + 2000)).await.1),
        ["tr-3", "tr-2"]
    );
    let (_, tr0) = server.get(&key, "/api/v1/traces/tr-0").await;
    assert_eq!((tr0["span_count"].clone(), tr0["duration_ms"].clone()), (json!(2), json!(500)));
    assert_eq!(tr0["spans"][1]["parent_span_id"], "root");
    let (_, listed) = server.get(&key, "/api/v1/traces?session_id=sess-0&limit=1").await;
    assert_eq!(
        (listed["traces"][0]["name"].clone(), listed["traces"][0]["span_count"].clone()),
        (json!("chat.completions.create"), json!(1))
    );
    let ok = ids(&server.get(&key, "/api/v1/traces?status=OK").await.1);
    assert_eq!(ok, ["tr-6", "tr-5", "tr-4", "tr-2", "tr-1", "tr-0"]);
    assert_eq!(server.get(&key, "/api/v1/traces?status=maybe").await.0, 422);
    // spans of one trace that arrived in separate requests are rolled up together
    let (_, page) = server.get(&key, "/api/v1/traces?session_id=sess-0").await;
    let tr0 = &page["traces"][2];
    assert_eq!(
        (tr0["trace_id"].clone(), tr0["span_count"].clone(), tr0["duration_ms"].clone()),
        (json!("tr-0"), json!(2), json!(500))
    );
    assert_eq!((tr0["input_tokens"].clone(), tr0["name"].clone()), (json!(3), json!("chat.completions.create")));
    assert_eq!(server.get(&key, "/api/v1/traces/missing").await.0, 404);
    assert_eq!(server.get(&key, "/api/v1/traces?limit=0").await.0, 422);
    let (status, err) = server.get(&key, "/api/v1/traces?before=garbage").await;
    assert_eq!((status, err["error"]["code"].clone()), (422, json!("validation_failed")));
    assert_eq!(err["error"]["details"]["problems"][0]["path"], "before", "{err}");
    server.assert_no_server_errors();
});

both_backends!(metrics_and_prompt_templates_validate_and_store, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let body = json!({"config_key": "c", "session_id": "s", "data": {"score": 1, "label": "x"}});
    assert_eq!(server.post_json(&key, "/spans", &body).await.0, 202);
    let body = json!({"config_key": "c", "session_id": "s", "data": {"score": 2}});
    assert_eq!(server.post_json(&key, "/spans", &body).await.0, 202);
    let (_, metrics) = server.get(&key, "/api/v1/metrics?config_key=c").await;
    assert_eq!(metrics["sessions"][0]["metrics"], json!({"score": 2, "label": "x"}));
    let (status, err) = server.post_json(&key, "/spans", &json!({"config_key": "c", "data": 5})).await;
    assert_eq!(problem_paths(status, &err), ["session_id", "data"]);
    let (status, err) = server.get(&key, "/api/v1/metrics").await;
    assert_eq!((status, err["error"]["code"].clone()), (422, json!("validation_failed")));
    assert_eq!(err["error"]["details"]["problems"][0]["path"], "config_key", "{err}");

    let template = json!({"key": "greet", "system_prompt": "", "user_template": "Hi {{name}}"});
    let (status, t1) = server.post_json(&key, "/api/v1/prompt-templates", &template).await;
    assert_eq!((status, t1["version"].clone()), (201, json!(1)), "{t1}");
    let (_, t2) = server.post_json(&key, "/api/v1/prompt-templates", &template).await;
    assert_eq!(t2["version"], 2);
    let (status, err) =
        server.post_json(&key, "/api/v1/prompt-templates", &json!({"key": "x", "user_template": 3})).await;
    assert_eq!(problem_paths(status, &err), ["system_prompt", "user_template"]);
    let (_, prompts) = server.get(&key, "/prompts").await;
    let versions: Vec<i64> =
        prompts["prompts"].as_array().unwrap().iter().map(|p| p["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [1, 2], "oldest first so the SDK ends on the latest");
    assert_eq!(server.get(&key, "/api/v1/prompt-templates").await.1["prompt_templates"][0]["version"], 2);
    assert_eq!(server.get(&key, "/api/v1/prompt-templates/greet").await.1["versions"].as_array().unwrap().len(), 2);
    assert_eq!(server.get(&key, "/api/v1/prompt-templates/none").await.0, 404);

    let ab = json!({"key": "greet-test", "variants": [
        {"prompt_key": "greet", "prompt_version": 1, "weight": 50}, {"prompt_key": "greet", "weight": 50}]});
    let (status, test) = server.post_json(&key, "/api/v1/prompt-ab-tests", &ab).await;
    assert_eq!((status, test["version"].clone()), (201, json!(1)), "{test}");
    let (_, tests) = server.get(&key, "/prompt-ab-tests").await;
    assert_eq!(
        tests["prompt_ab_tests"][0]["variants"][0],
        json!({"prompt_key": "greet", "prompt_version": 1, "weight": 50})
    );
    let bad = json!({"key": "t", "variants": [{"prompt_key": "greet", "prompt_version": 9, "weight": 50},
        {"prompt_key": "missing", "weight": 40}]});
    let (status, err) = server.post_json(&key, "/api/v1/prompt-ab-tests", &bad).await;
    assert_eq!(problem_paths(status, &err), ["variants[0].prompt_key", "variants[1].prompt_key", "variants"]);
    assert_eq!(server.get(&key, "/api/v1/prompt-ab-tests/greet-test").await.0, 200);
    assert_eq!(server.get(&key, "/api/v1/prompt-ab-tests").await.1["prompt_ab_tests"].as_array().unwrap().len(), 1);
    server.assert_no_server_errors();
});

both_backends!(concurrent_publishes_get_distinct_versions, |db: TestDb| async move {
    let server = std::sync::Arc::new(TestServer::start(&db, &[]));
    let key = server.first_key.clone().unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (server, key) = (server.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let config = json!({"key": "race", "variants": [{"model": format!("m{i}"), "weight": 100}]});
            let template = json!({"key": "race", "system_prompt": "", "user_template": format!("v{i}")});
            let (s1, c) = server.post_json(&key, "/api/v1/model-configs", &config).await;
            let (s2, t) = server.post_json(&key, "/api/v1/prompt-templates", &template).await;
            assert_eq!((s1, s2), (201, 201), "{c} {t}");
            (c["version"].as_i64().unwrap(), t["version"].as_i64().unwrap())
        }));
    }
    let mut config_versions = Vec::new();
    let mut template_versions = Vec::new();
    for t in tasks {
        let (c, t) = t.await.unwrap();
        config_versions.push(c);
        template_versions.push(t);
    }
    config_versions.sort();
    template_versions.sort();
    assert_eq!(config_versions, (1..=12).collect::<Vec<_>>());
    assert_eq!(template_versions, (1..=12).collect::<Vec<_>>());
    server.assert_no_server_errors();
});

both_backends!(nul_characters_are_stored_replaced_never_a_5xx, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    // Postgres cannot store NUL in text; every backend stores U+FFFD instead.
    let logs = json!({"logs": [{"prompt_name": "p\u{0}", "response_text": "a\u{0}b", "input_text": "\u{0}"}]});
    assert_eq!(server.post_logs(&key, &logs).await.0, 202);
    let (status, page) = server.get(&key, &format!("/api/v1/prompts/{}/samples", common::encode("p\u{FFFD}"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["samples"][0]["response_text"], "a\u{FFFD}b");

    let mut span = fallom_span("t\u{0}", "s", "sess\u{0}", "m", &base_iso(0));
    span["attributes"]["fallom.raw.response"] = json!("{\"text\": \"nul \\u0000 inside\"}");
    span["metadata"] = json!({"k\u{0}": "v\u{0}"});
    let (status, body) = server.post_json(&key, "/v1/traces", &span).await;
    assert_eq!(status, 202, "{body}");
    let (_, trace) = server.get(&key, &format!("/api/v1/traces/{}", common::encode("t\u{FFFD}"))).await;
    assert_eq!(trace["spans"][0]["response_text"], "nul \u{FFFD} inside");
    assert_eq!(trace["spans"][0]["metadata"], json!({"k\u{FFFD}": "v\u{FFFD}"}));

    let mut named = otlp_span(3, 3, "ok");
    named.name = "chat\u{0}".into();
    let resp =
        server.post_raw(&key, "/v1/traces", "application/x-protobuf", otlp_request(vec![named]).encode_to_vec()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let (_, trace) = server.get(&key, &format!("/api/v1/traces/{}", "03".repeat(16))).await;
    assert_eq!(trace["spans"][0]["name"], "chat\u{FFFD}");

    let metrics = json!({"config_key": "c\u{0}", "session_id": "s", "data": {"f\u{0}": "\u{0}"}});
    assert_eq!(server.post_json(&key, "/spans", &metrics).await.0, 202);
    let (status, err) = server.get(&key, "/api/v1/prompts/%00").await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid_path")));
    let (status, err) = server.get(&key, "/api/v1/traces?session_id=%00").await;
    assert_eq!((status, err["error"]["code"].clone()), (400, json!("invalid_query")));
    server.assert_no_server_errors();
});
