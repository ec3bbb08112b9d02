//! Hostile OTLP exports cannot hurt the server: an export over the span limit is refused whole
//! (413, nothing stored); a big resource is stored once, not copied into every span (a small
//! export cannot become a huge trace); attributes and status messages are bounded and marked;
//! and a maximum-size export does not keep another project's ingest waiting.

use crate::common;
use crate::common::clock::base_nanos;
use crate::common::{create_key, status_json, TestDb, TestServer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

/// The server's limits (src/validate/limits.rs), restated: a test that read them from the
/// code could not notice them change.
const MAX_SPANS: usize = 10_000;
const MAX_ATTRIBUTES: usize = 128;
const MAX_VALUE_CHARS: usize = 4096;
const MAX_ERROR_CHARS: usize = 10_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn span(trace: u32, n: u32) -> Span {
    let mut trace_id = vec![7u8; 16];
    trace_id[..4].copy_from_slice(&trace.to_be_bytes());
    let mut span_id = vec![9u8; 8];
    span_id[..4].copy_from_slice(&n.to_be_bytes());
    Span {
        trace_id,
        span_id,
        name: format!("step {n}"),
        start_time_unix_nano: base_nanos(n as i64),
        end_time_unix_nano: base_nanos(n as i64 + 500),
        ..Default::default()
    }
}

fn export(resource: Vec<KeyValue>, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: resource, ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn post(server: &TestServer, key: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let resp = server
        .http
        .post(server.url("/v1/traces"))
        .bearer_auth(key)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

/// Total characters stored for the project's spans and resources, read from the database.
async fn stored_chars(db: &TestDb) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let spans: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(LENGTH(attributes) + LENGTH(name) + COALESCE(LENGTH(error_message), 0)), 0) AS BIGINT) \
         AS n FROM spans",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    let resources: i64 =
        sqlx::query("SELECT CAST(COALESCE(SUM(LENGTH(attributes)), 0) AS BIGINT) AS n FROM otel_resources")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
    spans + resources
}

both_backends!(an_export_over_the_span_limit_is_refused_whole, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let spans: Vec<Span> = (0..=MAX_SPANS as u32).map(|n| span(1, n)).collect();
    let (status, body) = post(&server, &key, export(vec![], spans)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, body["error"]["code"].clone()), (413, json!("too_many_spans")), "{body}");
    assert_eq!(body["error"]["details"], json!({"max_spans": MAX_SPANS, "spans": MAX_SPANS + 1}));
    assert_eq!(server.get(&key, "/api/v1/traces").await.1["traces"], json!([]), "nothing was stored");
    server.assert_no_server_errors();
});

both_backends!(a_big_resource_is_stored_once_not_per_span, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    // 60 attributes of 1,000 characters (60 KB) and 300 small spans: copied into every span
    // this stored 18 MB, about 250 times the request
    let resource: Vec<KeyValue> = (0..60).map(|i| kv(&format!("host.label.{i}"), &"r".repeat(1000))).collect();
    let body = export(resource, (0..300).map(|n| span(2, n)).collect());
    let request_bytes = body.len() as i64;
    let (status, _) = post(&server, &key, body.clone()).await;
    assert_eq!(status, 200);
    let stored = stored_chars(&db).await;
    assert!(stored < 3 * request_bytes, "{request_bytes} bytes sent became {stored} characters stored");
    // sent again (an exporter's retry), nothing more is stored
    assert_eq!(post(&server, &key, body).await.0, 200);
    assert_eq!(stored_chars(&db).await, stored);
    // each span still reads back with its resource, which the answer holds once
    let resp =
        server.http.get(server.url(&format!("/api/v1/traces/{}", hex(2)))).bearer_auth(&key).send().await.unwrap();
    let answer = resp.text().await.unwrap();
    assert!((answer.len() as i64) < 3 * request_bytes, "{request_bytes} bytes sent read back as {}", answer.len());
    let trace: Value = serde_json::from_str(&answer).unwrap();
    let spans = trace["spans"].as_array().unwrap();
    let resource_id = spans[0]["resource_id"].as_i64().unwrap();
    assert!(spans.iter().all(|s| s["resource_id"] == resource_id), "one resource for the export");
    let resource = &trace["resources"][resource_id.to_string()];
    assert_eq!(resource["host.label.7"].as_str().unwrap().len(), 1000, "{resource}");
    assert!(spans[0]["attributes"].get("otel.resource").is_none(), "not repeated in every span");
    server.assert_no_server_errors();
});

fn hex(trace: u32) -> String {
    let mut id = [7u8; 16];
    id[..4].copy_from_slice(&trace.to_be_bytes());
    id.iter().map(|b| format!("{b:02x}")).collect()
}

both_backends!(attributes_and_status_messages_are_bounded_and_marked, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let mut s = span(3, 1);
    s.attributes = (0..300).map(|i| kv(&format!("attr.{i:03}"), "v")).collect();
    // attributes are kept by name, first ones first
    s.attributes.insert(0, kv("aaa.big", &"x".repeat(100_000)));
    s.status = Some(Status { code: StatusCode::Error as i32, message: "e".repeat(1_000_000) });
    let (status, _) = post(&server, &key, export(vec![], vec![s])).await;
    assert_eq!(status, 200);
    let (_, trace) = server.get(&key, &format!("/api/v1/traces/{}", hex(3))).await;
    let stored = &trace["spans"][0];
    let attributes = stored["attributes"].as_object().unwrap();
    assert_eq!(attributes.len(), MAX_ATTRIBUTES + 1, "the kept ones and the dropped count");
    assert_eq!(attributes["otel.dropped_attributes_count"], json!(301 - MAX_ATTRIBUTES));
    let big = attributes["aaa.big"].as_str().unwrap();
    assert!(big.starts_with(&"x".repeat(MAX_VALUE_CHARS)), "kept its start");
    assert!(big.ends_with(&format!("…[cut: {} more characters]", 100_000 - MAX_VALUE_CHARS)), "marked");
    assert_eq!(stored["error_message"].as_str().unwrap().chars().count(), MAX_ERROR_CHARS);
    server.assert_no_server_errors();
});

both_backends!(a_maximum_size_export_does_not_starve_another_project, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let other = create_key(&db, "other-project");
    let spans: Vec<Span> = (0..MAX_SPANS as u32)
        .map(|n| {
            let mut s = span(4 + n / 100, n);
            s.attributes = vec![kv("gen_ai.request.model", "gpt-4o-mini"), kv("note", &"n".repeat(200))];
            s
        })
        .collect();
    let big = export(vec![kv("service.name", "batch")], spans);
    let big_post = post(&server, &key, big);
    let small_logs = async {
        // while the big export is written, the other project's single logs keep being accepted
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut statuses = Vec::new();
        for i in 0..20 {
            let log = json!({"logs": [{"prompt_name": "other", "response_text": format!("answer {i}")}]});
            let resp = server.http.post(server.url("/api/v1/logs")).header("x-api-key", &other).json(&log).send();
            statuses.push(status_json(resp.await.unwrap()).await.0);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        statuses
    };
    let ((status, _), statuses) = tokio::join!(big_post, small_logs);
    assert_eq!(status, 200);
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let (_, traces) = server.get(&key, "/api/v1/traces?limit=500").await;
    assert_eq!(traces["traces"].as_array().unwrap().len(), 100, "every trace of the export was stored");
    server.assert_no_server_errors();
});

both_backends!(a_trace_is_read_a_page_at_a_time, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let (status, _) =
        post(&server, &key, export(vec![kv("service.name", "paged")], (0..120).map(|n| span(5, n)).collect())).await;
    assert_eq!(status, 200);
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/traces/{}?limit=50", hex(5));
    let mut pages = 0;
    loop {
        let (status, page) = server.get(&key, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["span_count"], 120);
        let spans = page["spans"].as_array().unwrap();
        assert!(spans.len() <= 50);
        seen.extend(spans.iter().map(|s| s["name"].as_str().unwrap().to_string()));
        pages += 1;
        match page["next_after"].as_str() {
            Some(after) => path = format!("/api/v1/traces/{}?limit=50&after={}", hex(5), common::encode(after)),
            None => break,
        }
    }
    let expected: Vec<String> = (0..120).map(|n| format!("step {n}")).collect();
    assert_eq!((pages, seen), (3, expected), "every span once, in start order");
    let (status, body) = server.get(&key, &format!("/api/v1/traces/{}?after=soon", hex(5))).await;
    assert_eq!((status, body["error"]["details"]["problems"][0]["path"].clone()), (422, json!("after")), "{body}");
    server.assert_no_server_errors();
});

both_backends!(privacy_drops_content_under_any_name, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let resp = server
        .http
        .patch(server.url("/api/v1/project"))
        .header("x-api-key", &key)
        .json(&json!({"capture_content": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // content under names no denylist would know, on the span, its status and its resource
    let mut s = span(6, 1);
    s.attributes = vec![
        kv("openinference.span.kind", "LLM"),
        kv("llm.model_name", "gpt-4o-mini"),
        kv("llm.input_messages.0.message.content", "SECRET-QUESTION-1"),
        kv("llm.output_messages.0.message.content", "SECRET-ANSWER-2"),
        kv("output.value", "SECRET-ANSWER-3"),
        kv("ai.response.text", "SECRET-ANSWER-4"),
        kv("traceloop.entity.output", "SECRET-ANSWER-5"),
        kv("my.app.last_reply", "SECRET-ANSWER-6"),
        kv("llm.token_count.prompt", "12"),
    ];
    s.status = Some(Status { code: StatusCode::Error as i32, message: "refused: SECRET-QUESTION-7".into() });
    let resource = vec![kv("service.name", "shop"), kv("app.greeting", "SECRET-RESOURCE-8")];
    let (status, _) = post(&server, &key, export(resource, vec![s])).await;
    assert_eq!(status, 200);
    assert_eq!(common::database_contains(&db, "SECRET-").await, Vec::<String>::new(), "content was stored");
    // what carries no content is kept
    let (_, trace) = server.get(&key, &format!("/api/v1/traces/{}", hex(6))).await;
    let stored = &trace["spans"][0];
    assert_eq!(stored["model"], "gpt-4o-mini");
    assert_eq!(stored["usage"]["input_tokens"], 12);
    assert_eq!(stored["status"], "ERROR");
    let resource_id = stored["resource_id"].as_i64().unwrap().to_string();
    assert_eq!(trace["resources"][resource_id], json!({"service.name": "shop"}));
    server.assert_no_server_errors();
});
