//! `POST /v1/logs`: GenAI content events sent as OTLP log records join their LLM call's span by
//! trace and span id, whichever arrives first and however the content is split across
//! requests, and every call gets exactly one drift sample equal to its completion, also when
//! the content comes on both paths and when span and logs race each other. Other records are
//! stored and read back with their trace; retries are skipped; an over-size export is refused
//! whole; bad records are rejected alone in `partialSuccess`; with content capture off no body
//! or content is stored.

use crate::common;
use crate::common::clock::{base_nanos, base_nanos_text};
use crate::common::{create_key, database_contains, status_json, TestDb, TestServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{json, Value};

/// The server's limit (src/validate/limits.rs), restated.
const MAX_LOG_RECORDS: usize = 10_000;
const SERVICE: &str = "parcel-bot";
const PROMPT: &str = "parcel-bot/chat";

fn text(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.into())) }
}

fn int(n: i64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::IntValue(n)) }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.into(), value: Some(value), ..Default::default() }
}

fn kvlist(pairs: Vec<(&str, AnyValue)>) -> AnyValue {
    let values = pairs.into_iter().map(|(k, v)| kv(k, v)).collect();
    AnyValue { value: Some(any_value::Value::KvlistValue(KeyValueList { values })) }
}

fn resource() -> Option<Resource> {
    Some(Resource { attributes: vec![kv("service.name", text(SERVICE))], ..Default::default() })
}

fn trace_id(call: u32) -> Vec<u8> {
    let mut id = vec![0x5au8; 16];
    id[..4].copy_from_slice(&call.to_be_bytes());
    id
}

fn span_id(call: u32) -> Vec<u8> {
    let mut id = vec![0x3cu8; 8];
    id[..4].copy_from_slice(&call.to_be_bytes());
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn completion(call: u32) -> String {
    format!("COMPLETION-{call}: the parcel is at the depot.")
}

fn question(call: u32) -> String {
    format!("QUESTION-{call}: where is my parcel?")
}

/// An LLM call's span as openai-v2 sends it in its default mode: model and usage, no content
/// (unless `content` is given, in the latest conventions' attribute).
fn llm_span(call: u32, content: Option<&str>) -> Span {
    let mut attributes = vec![
        kv("gen_ai.operation.name", text("chat")),
        kv("gen_ai.request.model", text("gpt-4o-mini")),
        kv("gen_ai.usage.input_tokens", int(11)),
        kv("gen_ai.usage.output_tokens", int(7)),
    ];
    if let Some(content) = content {
        let messages = json!([{"role": "assistant", "parts": [{"type": "text", "content": content}]}]);
        attributes.push(kv("gen_ai.output.messages", text(&messages.to_string())));
    }
    Span {
        trace_id: trace_id(call),
        span_id: span_id(call),
        name: "chat gpt-4o-mini".into(),
        start_time_unix_nano: base_nanos(call as i64 * 1000),
        end_time_unix_nano: base_nanos(call as i64 * 1000 + 500),
        attributes,
        ..Default::default()
    }
}

fn record(call: u32, event: &str, offset_ms: u64, body: AnyValue) -> LogRecord {
    LogRecord {
        trace_id: trace_id(call),
        span_id: span_id(call),
        time_unix_nano: base_nanos(call as i64 * 1000 + offset_ms as i64),
        event_name: event.into(),
        attributes: vec![kv("gen_ai.system", text("openai"))],
        body: Some(body),
        ..Default::default()
    }
}

fn user_message(call: u32) -> LogRecord {
    record(call, "gen_ai.user.message", 1, kvlist(vec![("content", text(&question(call)))]))
}

fn choice(call: u32) -> LogRecord {
    let message = kvlist(vec![("role", text("assistant")), ("content", text(&completion(call)))]);
    record(
        call,
        "gen_ai.choice",
        400,
        kvlist(vec![("index", int(0)), ("finish_reason", text("stop")), ("message", message)]),
    )
}

fn logs_export(records: Vec<LogRecord>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn spans_export(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(server: &TestServer, key: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let resp = server
        .http
        .post(server.url(path))
        .bearer_auth(key)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

async fn post_logs(server: &TestServer, key: &str, records: Vec<LogRecord>) -> ExportLogsServiceResponse {
    let (status, body) = post(server, key, "/v1/logs", logs_export(records)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    ExportLogsServiceResponse::decode(body.as_slice()).unwrap()
}

async fn post_spans(server: &TestServer, key: &str, spans: Vec<Span>) {
    let (status, body) = post(server, key, "/v1/traces", spans_export(spans)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// The prompt's drift samples' texts, sorted.
async fn sample_texts(server: &TestServer, key: &str) -> Vec<String> {
    let (status, body) =
        server.get(key, &format!("/api/v1/prompts/{}/samples?limit=200", common::encode(PROMPT))).await;
    assert_eq!(status, 200, "{body}");
    let mut texts: Vec<String> =
        body["samples"].as_array().unwrap().iter().map(|s| s["response_text"].as_str().unwrap().to_string()).collect();
    texts.sort();
    texts
}

async fn the_span(server: &TestServer, key: &str, call: u32) -> Value {
    let (status, body) = server.get(key, &format!("/api/v1/traces/{}", hex(&trace_id(call)))).await;
    assert_eq!(status, 200, "{body}");
    body["spans"][0].clone()
}

both_backends!(content_events_join_their_span_once_in_any_order, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();

    // 1: the logs first, in one export; the span minutes later in another
    assert_eq!(post_logs(&server, &key, vec![user_message(1), choice(1)]).await.partial_success, None);
    post_spans(&server, &key, vec![llm_span(1, None)]).await;
    // 2: the span first; then the question and the answer in two more exports
    post_spans(&server, &key, vec![llm_span(2, None)]).await;
    post_logs(&server, &key, vec![user_message(2)]).await;
    post_logs(&server, &key, vec![choice(2)]).await;
    // 3: the content on both paths, span first; 4: on both paths, logs first
    post_spans(&server, &key, vec![llm_span(3, Some(&completion(3)))]).await;
    post_logs(&server, &key, vec![user_message(3), choice(3)]).await;
    post_logs(&server, &key, vec![user_message(4), choice(4)]).await;
    post_spans(&server, &key, vec![llm_span(4, Some(&completion(4)))]).await;
    // 5: an exporter's retries of both
    for _ in 0..2 {
        post_logs(&server, &key, vec![user_message(5), choice(5)]).await;
        post_spans(&server, &key, vec![llm_span(5, None)]).await;
    }
    // 10..40: span and logs race each other, one request each, all at once
    let racing: Vec<u32> = (10..40).collect();
    let races = racing.iter().map(|&call| {
        let (server, key) = (&server, &key);
        async move {
            tokio::join!(
                post_spans(server, key, vec![llm_span(call, None)]),
                post_logs(server, key, vec![user_message(call), choice(call)]),
            );
        }
    });
    futures_util::future::join_all(races).await;
    // 40..70: exports of 5 spans race 30 single-call log exports (several calls locked at once)
    let batched: Vec<u32> = (40..70).collect();
    let span_exports =
        batched.chunks(5).map(|calls| post_spans(&server, &key, calls.iter().map(|c| llm_span(*c, None)).collect()));
    let log_exports = batched.iter().map(|&call| post_logs(&server, &key, vec![choice(call), user_message(call)]));
    tokio::join!(futures_util::future::join_all(span_exports), futures_util::future::join_all(log_exports));

    let calls: Vec<u32> = [1, 2, 3, 4, 5].into_iter().chain(racing).chain(batched).collect();
    server.wait_processed(&key, PROMPT).await;
    let mut expected: Vec<String> = calls.iter().map(|c| completion(*c)).collect();
    expected.sort();
    assert_eq!(sample_texts(&server, &key).await, expected, "one sample per call, equal to its completion");

    for call in [1, 2, 12] {
        let span = the_span(&server, &key, call).await;
        assert_eq!(span["response_text"], completion(call), "{span}");
        assert_eq!(span["request"], question(call), "{span}");
        assert!(span["sample_id"].is_i64(), "{span}");
        assert_eq!((span["usage"]["input_tokens"].as_i64(), span["model"].as_str()), (Some(11), Some("gpt-4o-mini")));
    }

    // the records themselves, with their trace, in time order
    let (status, trace) = server.get(&key, &format!("/api/v1/traces/{}", hex(&trace_id(5)))).await;
    assert_eq!((status, trace["log_record_count"].as_i64()), (200, Some(2)), "a retry is not stored twice: {trace}");
    let (status, page) = server.get(&key, &format!("/api/v1/traces/{}/logs", hex(&trace_id(2)))).await;
    assert_eq!(status, 200, "{page}");
    let records = page["log_records"].as_array().unwrap();
    let events: Vec<&str> = records.iter().map(|r| r["event_name"].as_str().unwrap()).collect();
    assert_eq!(events, ["gen_ai.user.message", "gen_ai.choice"]);
    assert_eq!(records[1]["body"]["message"]["content"], completion(2));
    assert_eq!(records[1]["span_id"], hex(&span_id(2)));
    let resource_id = records[1]["resource_id"].as_i64().unwrap().to_string();
    assert_eq!(page["resources"][resource_id]["service.name"], SERVICE, "{page}");
    let (status, _) = server.get(&key, &format!("/api/v1/traces/{}/logs", "ab".repeat(16))).await;
    assert_eq!(status, 404);
    server.assert_no_server_errors();
});

both_backends!(log_exports_are_checked_and_bounded, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();

    // OTLP/JSON: a plain application log inside a trace, and one outside any trace
    let json_export = json!({"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": SERVICE}}]},
        "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
            {"timeUnixNano": base_nanos_text(100), "severityNumber": 13, "severityText": "WARN",
             "traceId": hex(&trace_id(7)), "spanId": hex(&span_id(7)),
             "body": {"stringValue": "retrying the carrier API"}},
            {"observedTimeUnixNano": base_nanos_text(200), "severityNumber": 9,
             "body": {"stringValue": "cache warmed"}}]}]}]});
    let resp = server.http.post(server.url("/v1/logs")).bearer_auth(&key).json(&json_export).send().await.unwrap();
    assert_eq!(status_json(resp).await, (200, json!({"partialSuccess": null})));
    post_spans(&server, &key, vec![llm_span(7, None)]).await;
    let (_, page) = server.get(&key, &format!("/api/v1/traces/{}/logs", hex(&trace_id(7)))).await;
    assert_eq!(page["log_records"][0]["body"], "retrying the carrier API", "{page}");
    assert_eq!(page["log_records"][0]["severity_text"], "WARN");
    assert_eq!(server.sample_total(&key, PROMPT).await, 0, "an application log is no content");

    // bad ids are rejected alone, in the answer's partial_success
    let mut bad = choice(8);
    bad.trace_id = vec![0; 16];
    let mut short = choice(9);
    short.span_id = vec![1, 2, 3];
    let answer = post_logs(&server, &key, vec![bad, user_message(8), short]).await;
    let partial = answer.partial_success.expect("two records were refused");
    assert_eq!(partial.rejected_log_records, 2, "{}", partial.error_message);
    assert!(partial.error_message.contains("trace_id") && partial.error_message.contains("span_id"));

    // over the limit: refused whole, nothing stored
    let many: Vec<LogRecord> =
        (0..=MAX_LOG_RECORDS as u32).map(|i| record(100 + i, "app.event", 0, text("x"))).collect();
    let (status, body) = post(&server, &key, "/v1/logs", logs_export(many)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_many_log_records")), "{body}");
    let (_, page) = server.get(&key, &format!("/api/v1/traces/{}/logs", hex(&trace_id(100)))).await;
    assert_eq!(page["error"]["code"], "not_found", "nothing of the export is stored: {page}");

    // clear errors for what is not an export
    let (status, body) = post(&server, &key, "/v1/logs", vec![0xff, 0xff, 0xff]).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let resp =
        server.http.post(server.url("/v1/logs")).bearer_auth(&key).json(&json!({"resource_logs": []})).send().await;
    let (status, body) = status_json(resp.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_otlp_json")), "{body}");
    let resp = server.http.post(server.url("/v1/logs")).json(&json_export).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401, "the same auth as /v1/traces");
    server.assert_no_server_errors();
});

both_backends!(no_body_or_content_is_stored_with_capture_off, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = create_key(&db, "private");
    let resp =
        server.http.patch(server.url("/api/v1/project")).bearer_auth(&key).json(&json!({"capture_content": false}));
    assert_eq!(resp.send().await.unwrap().status().as_u16(), 200);

    let mut secret = choice(1);
    secret.attributes.push(kv("app.user_note", text("SECRET-NOTE about the parcel")));
    secret.severity_text = "INFO".into();
    let mut plain = record(1, "", 2, text("SECRET-BODY the customer wrote"));
    plain.attributes.push(kv("gen_ai.request.model", text("gpt-4o-mini")));
    post_logs(&server, &key, vec![user_message(1), secret, plain]).await;
    post_spans(&server, &key, vec![llm_span(1, None)]).await;

    let (_, page) = server.get(&key, &format!("/api/v1/traces/{}/logs", hex(&trace_id(1)))).await;
    let records = page["log_records"].as_array().unwrap();
    assert_eq!(records.len(), 3, "the records are kept: {page}");
    assert!(records.iter().all(|r| r["body"].is_null() && r["response_text"].is_null()), "{page}");
    let plain = records.iter().find(|r| r["event_name"].is_null()).unwrap();
    assert_eq!(plain["attributes"]["gen_ai.request.model"], "gpt-4o-mini", "allowed attributes stay: {plain}");
    for needle in ["COMPLETION-", "QUESTION-", "SECRET-"] {
        assert_eq!(database_contains(&db, needle).await, Vec::<String>::new(), "{needle} was stored");
    }
    assert_eq!(server.sample_total(&key, PROMPT).await, 0);
    server.assert_no_server_errors();
});

// A resource is shared by every record of an export: the trace's log page and its dashboard page
// hold it once, so a 64 KB resource over a hundred records does not read back as 100 copies
// (one such export read back as 12.6 MB, 176 times its size).
both_backends!(a_shared_resource_is_read_back_once, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let big_resource = Resource {
        attributes: (0..64).map(|i| kv(&format!("host.label.{i}"), text(&"r".repeat(1000)))).collect(),
        ..Default::default()
    };
    let records: Vec<LogRecord> =
        (0..100).map(|i| record(9, "app.step", i, kvlist(vec![("step", text(&format!("step {i} done")))]))).collect();
    let export = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(big_resource),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let sent = export.len();
    assert_eq!(post(&server, &key, "/v1/logs", export).await.0, 200);
    post_spans(&server, &key, vec![llm_span(9, None)]).await;

    let trace = hex(&trace_id(9));
    let resp = server
        .http
        .get(server.url(&format!("/api/v1/traces/{trace}/logs?limit=100")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let answer = resp.text().await.unwrap();
    assert!(answer.len() < 3 * sent, "{sent} bytes sent read back as {}", answer.len());
    let page: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(page["log_records"].as_array().unwrap().len(), 100);
    let resource_id = page["log_records"][0]["resource_id"].as_i64().unwrap().to_string();
    assert_eq!(page["resources"].as_object().unwrap().len(), 1, "one resource for the export");
    assert_eq!(page["resources"][&resource_id]["host.label.63"].as_str().unwrap().len(), 1000);

    // the dashboard page of the trace
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = browser.post(server.url("/ui/sign-in")).form(&[("api_key", key.as_str())]).send().await.unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = browser
        .get(server.url(&format!("/ui/traces/{trace}")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Resource #"), "{html}");
    assert!(html.len() < 3 * sent, "{sent} bytes sent make a {}-byte page", html.len());
    server.assert_no_server_errors();
});
