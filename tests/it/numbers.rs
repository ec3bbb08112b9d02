//! Numbers are range-checked and sums never overflow: integers outside their documented range
//! are a 422 naming the field (never clamped), token counts outside 0..=10^12 are no counts,
//! `/sessions` refuses configs that were never published, and whatever was stored, the trace
//! list and the model-config summary answer. On SQLite and on Postgres.

use crate::common::clock::{base_iso, base_nanos_text};
use crate::common::{status_json, TestDb, TestServer};
use serde_json::{json, Value};

async fn post(server: &TestServer, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = server.http.post(server.url(path)).bearer_auth(key).json(body).send().await.unwrap();
    status_json(resp).await
}

fn first_problem(body: &Value) -> (String, String) {
    let p = &body["error"]["details"]["problems"][0];
    (p["path"].as_str().unwrap_or_default().to_string(), p["message"].as_str().unwrap_or_default().to_string())
}

fn fallom_span(trace: &str, span: &str, usage: Value) -> Value {
    json!({"config_key": "summarizer", "session_id": "s-1", "trace_id": trace, "span_id": span, "name": "chat",
           "start_time": base_iso(0), "end_time": base_iso(1000), "duration_ms": 1000,
           "status": "OK", "model": "gpt-4o",
           "attributes": {"fallom.raw.usage": usage.to_string()}})
}

both_backends!(integers_out_of_range_are_422_naming_the_field, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let config = json!({"key": "summarizer", "variants": [{"model": "gpt-4o", "weight": 100}]});
    assert_eq!(post(&server, &key, "/api/v1/model-configs", &config).await.0, 201);

    // 1e300 used to be stored as i64::MAX.
    for (version, why) in
        [(json!(1e300), "1e300"), (json!(9_223_372_036_854_775_807_i64), "i64::MAX"), (json!(0), "zero")]
    {
        let session = json!({"config_key": "summarizer", "config_version": version, "session_id": "s", "assigned_model": "gpt-4o"});
        let (status, body) = post(&server, &key, "/sessions", &session).await;
        assert_eq!(status, 422, "{why}: {body}");
        let (path, message) = first_problem(&body);
        assert_eq!(path, "config_version");
        assert!(message.contains("from 1 to 2147483647"), "{message}");
    }
    let mut span = fallom_span("t-range", "s-1", json!({}));
    span["prompt_version"] = json!(1e300);
    span["duration_ms"] = json!(-1);
    span["time_to_first_token_ms"] = json!(1.5);
    let (status, body) = post(&server, &key, "/v1/traces", &span).await;
    assert_eq!(status, 422, "{body}");
    let paths: Vec<&str> =
        body["error"]["details"]["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["duration_ms", "time_to_first_token_ms", "prompt_version"], "{body}");
    // A whole float is an integer (some clients send 2.0).
    let session =
        json!({"config_key": "summarizer", "config_version": 1.0, "session_id": "s", "assigned_model": "gpt-4o"});
    assert_eq!(post(&server, &key, "/sessions", &session).await.0, 202);
    server.assert_no_server_errors();
});

both_backends!(sessions_for_unpublished_configs_are_422, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let session = |key: &str, version: i64| json!({"config_key": key, "config_version": version, "session_id": "s-1", "assigned_model": "gpt-4o"});
    let (status, body) = post(&server, &key, "/sessions", &session("nope", 1)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(first_problem(&body).0, "config_version");
    let config = json!({"key": "summarizer", "variants": [{"model": "gpt-4o", "weight": 100}]});
    assert_eq!(post(&server, &key, "/api/v1/model-configs", &config).await.0, 201);
    assert_eq!(post(&server, &key, "/sessions", &session("summarizer", 2)).await.0, 422);
    assert_eq!(post(&server, &key, "/sessions", &session("summarizer", 1)).await.0, 202);
    let (status, summary) = server.get(&key, "/api/v1/model-configs/summarizer/summary").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["variants"][0]["sessions"], 1, "only the published version's session counts: {summary}");
    server.assert_no_server_errors();
});

both_backends!(token_counts_are_bounded_and_reads_never_fail, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let config = json!({"key": "summarizer", "variants": [{"model": "gpt-4o", "weight": 100}]});
    assert_eq!(post(&server, &key, "/api/v1/model-configs", &config).await.0, 201);
    let session =
        json!({"config_key": "summarizer", "config_version": 1, "session_id": "s-1", "assigned_model": "gpt-4o"});
    assert_eq!(post(&server, &key, "/sessions", &session).await.0, 202);

    // Negative counts, i64::MAX + 1 (the sum used to be stored negative), and 5e18 in two
    // traces (the summary's SUM used to overflow): all are no counts, and the spans are kept.
    let spans = [
        fallom_span("t-neg", "a", json!({"prompt_tokens": -5, "completion_tokens": 3})),
        fallom_span("t-max", "a", json!({"prompt_tokens": i64::MAX, "completion_tokens": 1})),
        fallom_span("t-max", "b", json!({"prompt_tokens": i64::MAX, "completion_tokens": 1})),
        fallom_span("t-big-1", "a", json!({"prompt_tokens": 5_000_000_000_000_000_000_u64, "completion_tokens": 1})),
        fallom_span("t-big-2", "a", json!({"prompt_tokens": 5e18, "completion_tokens": 2})),
        fallom_span(
            "t-ok",
            "a",
            json!({"prompt_tokens": 1_000_000_000_000_i64, "completion_tokens": 1_000_000_000_000_i64}),
        ),
    ];
    for span in &spans {
        let (status, body) = post(&server, &key, "/v1/traces", span).await;
        assert_eq!(status, 202, "{body}");
    }
    // The OTLP path: gen_ai usage attributes out of range are no counts either.
    let otlp = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat",
        "startTimeUnixNano": base_nanos_text(0), "endTimeUnixNano": base_nanos_text(1000),
        "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "-7"}},
                       {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "9223372036854775807"}},
                       {"key": "session.id", "value": {"stringValue": "s-1"}},
                       {"key": "fallom.config_key", "value": {"stringValue": "summarizer"}}]}]}]}]});
    let (status, body) = post(&server, &key, "/v1/traces", &otlp).await;
    assert_eq!(status, 200, "{body}");

    let (status, trace) = server.get(&key, "/api/v1/traces/t-neg").await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["spans"][0]["usage"], json!({"input_tokens": null, "output_tokens": 3, "total_tokens": null}));
    let (_, trace) = server.get(&key, "/api/v1/traces/t-max").await;
    for span in trace["spans"].as_array().unwrap() {
        assert_eq!(span["usage"]["input_tokens"], Value::Null, "{span}");
        assert_eq!(span["usage"]["total_tokens"], Value::Null, "no negative total: {span}");
    }
    let (_, trace) = server.get(&key, "/api/v1/traces/5b8efff798038103d269b633813fc60c").await;
    assert_eq!(trace["spans"][0]["usage"], json!({"input_tokens": null, "output_tokens": null, "total_tokens": null}));

    // Every read that sums tokens still answers, with the counts that were in range.
    let (status, list) = server.get(&key, "/api/v1/traces?limit=500").await;
    assert_eq!(status, 200, "{list}");
    let traces = list["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 6, "{list}");
    let t_max = traces.iter().find(|t| t["trace_id"] == "t-max").unwrap();
    assert_eq!((t_max["input_tokens"].clone(), t_max["output_tokens"].clone()), (Value::Null, json!(2)));
    let t_ok = traces.iter().find(|t| t["trace_id"] == "t-ok").unwrap();
    assert_eq!(t_ok["input_tokens"], 1_000_000_000_000_i64);
    let (status, summary) = server.get(&key, "/api/v1/model-configs/summarizer/summary").await;
    assert_eq!(status, 200, "{summary}");
    let variant = &summary["variants"][0];
    assert_eq!(variant["input_tokens"], 1_000_000_000_000_i64, "{summary}");
    assert_eq!(variant["output_tokens"], 3 + 1 + 1 + 1 + 2 + 1_000_000_000_000_i64, "{summary}");
    server.assert_no_server_errors();
});
