//! Span ingest rate: concurrent exporters POST OTLP/HTTP protobuf requests of 100 spans each
//! (the OpenTelemetry SDK's batch processor default is up to 512) to a release build of the
//! server, on SQLite and (with TEST_DATABASE_URL) on Postgres. Two kinds of spans:
//! - genai: GenAI attributes with a completion text, so every span also becomes a drift sample
//!   (stored in the same transaction; the embedding worker runs alongside);
//! - openinference: the same call in OpenInference's flattened attributes (also sampled);
//! - plain: the same spans without content (privacy mode, or non-LLM spans): stored only;
//! - genai+logs: as openai-v2 sends them in its default mode: the spans without content, and
//!   each call's question and answer as `gen_ai.user.message` / `gen_ai.choice` log records in
//!   a log export (200 records) posted just before, joined to the spans when they arrive (one
//!   sample per call). Its spans/s are calls/s, and a request is the two POSTs.
//!
//! Then one export of the maximum size (10,000 genai spans): its time and the longest time one
//! of its write transactions held the database writer.
//!
//! `make bench-spans` or `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench spans`
//! Options (env): BENCH_SECONDS (default 10), BENCH_CLIENTS (default 4), BENCH_BACKENDS (default
//! "sqlite,postgres"), BENCH_SHAPES (default "genai,openinference,plain,genai+logs,max-size"), to
//! compare two builds on one shape without waiting for the others.

#[allow(dead_code)] // a bench uses a part of the test harness
#[path = "../tests/it/common/mod.rs"]
mod common;
#[allow(dead_code)] // a bench uses a part of the load helpers
mod load;

use common::{Kind, TestDb, TestServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValueList;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const BATCH: usize = 100;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Genai,
    OpenInference,
    Plain,
    GenaiLogs,
}

/// One LLM call span; ids are unique per (client, request, index).
fn span(client: usize, request: usize, index: usize, shape: Shape) -> Span {
    let with_content = shape == Shape::Genai || shape == Shape::OpenInference;
    let id = ((client as u64) << 48) | ((request as u64) << 8) | index as u64;
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&id.to_be_bytes());
    trace_id[15] = 1;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut attributes = vec![
        kv("gen_ai.operation.name", Value::StringValue("chat".into())),
        kv("gen_ai.request.model", Value::StringValue("gpt-4o-mini".into())),
        kv("gen_ai.prompt.name", Value::StringValue(format!("bench-{}", index % 20))),
        kv("gen_ai.usage.input_tokens", Value::IntValue(120)),
        kv("gen_ai.usage.output_tokens", Value::IntValue(64)),
        kv("session.id", Value::StringValue(format!("session-{client}-{request}"))),
    ];
    let answer = format!(
        "Thanks for reaching out about order #{id}. The refund was issued to the original payment \
         method today and usually appears within three to five business days."
    );
    if shape == Shape::OpenInference {
        attributes = vec![
            kv("openinference.span.kind", Value::StringValue("LLM".into())),
            kv("llm.model_name", Value::StringValue("gpt-4o-mini".into())),
            kv("llm.token_count.prompt", Value::IntValue(120)),
            kv("llm.token_count.completion", Value::IntValue(64)),
            kv("llm.input_messages.0.message.role", Value::StringValue("user".into())),
            kv("llm.input_messages.0.message.content", Value::StringValue("Where is my refund?".into())),
            kv("llm.output_messages.0.message.role", Value::StringValue("assistant".into())),
            kv("llm.output_messages.0.message.content", Value::StringValue(answer.clone())),
            kv("session.id", Value::StringValue(format!("session-{client}-{request}"))),
        ];
    } else if with_content {
        let messages = format!(r#"[{{"role":"assistant","parts":[{{"type":"text","content":"{answer}"}}]}}]"#);
        attributes.push(kv("gen_ai.output.messages", Value::StringValue(messages)));
        attributes.push(kv(
            "gen_ai.input.messages",
            Value::StringValue(r#"[{"role":"user","parts":[{"type":"text","content":"Where is my refund?"}]}]"#.into()),
        ));
    }
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.max(1).to_be_bytes().to_vec(),
        name: "chat gpt-4o-mini".into(),
        kind: 3,
        start_time_unix_nano: now - 850_000_000,
        end_time_unix_nano: now,
        attributes,
        ..Default::default()
    }
}

fn export_body(client: usize, request: usize, shape: Shape) -> Vec<u8> {
    let spans = (0..BATCH).map(|i| span(client, request, i, shape)).collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The log export that carries a request's calls' content (genai+logs): a question and an
/// answer per call, with the call's trace and span ids.
fn logs_body(client: usize, request: usize) -> Vec<u8> {
    let text = |s: String| AnyValue { value: Some(Value::StringValue(s)) };
    let map = |pairs: Vec<(&str, AnyValue)>| AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: pairs
                .into_iter()
                .map(|(k, v)| KeyValue { key: k.into(), value: Some(v), ..Default::default() })
                .collect(),
        })),
    };
    let mut records = Vec::with_capacity(2 * BATCH);
    for index in 0..BATCH {
        let span = span(client, request, index, Shape::GenaiLogs);
        let record = |event: &str, body: AnyValue| LogRecord {
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
            observed_time_unix_nano: span.end_time_unix_nano,
            event_name: event.into(),
            body: Some(body),
            ..Default::default()
        };
        records.push(record("gen_ai.user.message", map(vec![("content", text("Where is my refund?".into()))])));
        let answer = format!(
            "Thanks for reaching out about order #{}. The refund was issued to the original payment \
             method today and usually appears within three to five business days.",
            u64::from_be_bytes(span.span_id.clone().try_into().unwrap())
        );
        let message = map(vec![("role", text("assistant".into())), ("content", text(answer))]);
        records.push(record("gen_ai.choice", map(vec![("message", message)])));
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

async fn run(kind: Kind, shape: Shape, seconds: u64, clients: usize) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let server = TestServer::start(
        &db,
        &[("RUST_LOG", "warn,driftballoon::server=info,driftballoon::store::spans=debug,driftballoon::store::group_commit=debug"), load::NO_RATE_LIMIT],
    );
    let key = server.first_key.clone().unwrap();
    let http = reqwest::Client::new();
    let url = server.url("/v1/traces");
    let logs_url = server.url("/v1/logs");
    let read_key = key.clone();
    let (latencies, elapsed) = load::drive_clients(clients, seconds, move |client, n| {
        let logs = (shape == Shape::GenaiLogs).then(|| {
            http.post(&logs_url)
                .bearer_auth(&key)
                .header("content-type", "application/x-protobuf")
                .body(logs_body(client, n))
        });
        let request = http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/x-protobuf")
            .body(export_body(client, n, shape));
        async move {
            if let Some(logs) = logs {
                let resp = logs.send().await.unwrap();
                assert_eq!(resp.status().as_u16(), 200);
                let answer = ExportLogsServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
                assert!(answer.partial_success.is_none(), "log records rejected: {answer:?}");
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let answer = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
            assert!(answer.partial_success.is_none(), "spans rejected: {answer:?}");
        }
    })
    .await;
    let pct = |p: f64| common::percentile_ms(&latencies, p);
    let requests = latencies.len() as f64;
    let spans_per_second = requests * BATCH as f64 / elapsed;
    let targets = match shape {
        Shape::Plain => Some("without content: >= 20,000"),
        Shape::Genai => Some("with content (drift samples): >= 12,000"),
        _ => None,
    };
    if let Some(target) = targets {
        let (what, target) = target.split_once(": ").unwrap();
        println!("SUMMARY|{kind:?}: OTLP spans/s {what}|{:.0}|{target}", spans_per_second);
    }
    println!(
        "{:<9} {:<13} clients={clients:<3} spans/s={:>7.0} requests/s={:>6.1} p50={:>7.2}ms p99={:>7.2}ms ({} requests in {:.1}s)",
        format!("{kind:?}"),
        if shape == Shape::GenaiLogs { "genai+logs".to_string() } else { format!("{shape:?}").to_lowercase() },
        spans_per_second,
        requests / elapsed,
        pct(0.50),
        pct(0.99),
        latencies.len(),
        elapsed
    );
    let holds = writer_holds_ms(&server);
    println!(
        "{:<16} write transactions: {} held the writer {:.2}ms on average, {:.0}% of the run",
        "",
        holds.len(),
        holds.iter().sum::<f64>() / holds.len().max(1) as f64,
        holds.iter().sum::<f64>() / (elapsed * 10.0)
    );
    let stored = latencies.len() * BATCH;
    if shape == Shape::GenaiLogs {
        // every call joined its logged content: one sample each
        let mut samples = 0;
        for index in 0..20 {
            samples += server.sample_total(&read_key, &format!("bench-{index}")).await;
        }
        assert_eq!(samples, stored as i64, "one drift sample per call");
    }
    if kind == Kind::Postgres {
        // What autovacuum does within a minute of a bulk load; without statistics on the
        // just-filled tables the planner picks plans for empty ones.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        sqlx::Executor::execute(&mut conn, "ANALYZE").await.unwrap();
    }
    let list = median_read_ms(&server, &read_key, "/api/v1/traces?limit=50").await;
    let by_session = median_read_ms(&server, &read_key, "/api/v1/traces?session_id=session-1-3&limit=50").await;
    let by_model = median_read_ms(&server, &read_key, "/api/v1/traces?model=gpt-4o-mini&limit=50").await;
    println!(
        "{:<16} trace list over {stored} spans: newest 50 {list:.2}ms, by session {by_session:.2}ms, by model {by_model:.2}ms (median of 21)",
        ""
    );
    server.assert_no_server_errors();
}

/// One export of the maximum size (GenAI spans with content, so as many drift samples too):
/// how long it takes, and the longest time one of its write transactions held the
/// database writer, from the server's debug log.
async fn max_size_export(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let server = TestServer::start(
        &db,
        &[("RUST_LOG", "warn,driftballoon::server=info,driftballoon::store=debug"), load::NO_RATE_LIMIT],
    );
    let key = server.first_key.clone().unwrap();
    // as many genai spans as the limits allow: 10,000, or fewer when the body would pass the
    // default 5 MiB body limit (it does first: each span carries its messages)
    let one = span(9, 0, 0, Shape::Genai).encoded_len() + 8;
    let count = (10_000).min((5 * 1024 * 1024 - 4096) / one);
    let spans: Vec<Span> = (0..count).map(|i| span(9, i / BATCH, i % BATCH, Shape::Genai)).collect();
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(server.url("/v1/traces"))
        .bearer_auth(&key)
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let elapsed = started.elapsed().as_secs_f64() * 1e3;
    let holds = writer_holds_ms(&server);
    let longest = holds.iter().copied().fold(0.0, f64::max);
    println!(
        "{:<9} max-size export: {count} genai spans ({:.1} MiB) stored in {elapsed:.0}ms, {} write transactions, longest writer hold {longest:.1}ms",
        format!("{kind:?}"),
        body.len() as f64 / 1048576.0,
        holds.len()
    );
    server.assert_no_server_errors();
}

/// How long each span write transaction held the database writer (from BEGIN to COMMIT), in
/// ms, from the server's debug log: one line per chunk on Postgres, per group of concurrent
/// requests' chunks on SQLite (`store::group_commit`).
fn writer_holds_ms(server: &TestServer) -> Vec<f64> {
    server
        .log_text()
        .lines()
        .filter(|l| l.contains("stored a span chunk") || l.contains("stored a write group"))
        .filter_map(|l| l.split("held_us=").nth(1)?.split_whitespace().next()?.parse::<f64>().ok())
        .map(|us| us / 1e3)
        .collect()
}

/// The median time of 21 dashboard reads, right after the load.
async fn median_read_ms(server: &TestServer, key: &str, path: &str) -> f64 {
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = std::time::Instant::now();
        let (status, body) = server.get(key, path).await;
        assert_eq!(status, 200, "{body}");
        times.push(started.elapsed());
    }
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_or("BENCH_SECONDS", 10);
    let clients = env_or("BENCH_CLIENTS", 4) as usize;
    let list = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let backends = list("BENCH_BACKENDS", "sqlite,postgres");
    let shapes = list("BENCH_SHAPES", "genai,openinference,plain,genai+logs,max-size");
    let chosen = |list: &str, name: &str| list.split(',').any(|item| item.trim() == name);
    println!("span ingest benchmark: OTLP/HTTP protobuf, {BATCH} spans per request, {seconds}s per run");
    for kind in [Kind::Sqlite, Kind::Postgres] {
        if !chosen(&backends, &format!("{kind:?}").to_lowercase()) {
            continue;
        }
        for (name, shape) in [
            ("genai", Shape::Genai),
            ("openinference", Shape::OpenInference),
            ("plain", Shape::Plain),
            ("genai+logs", Shape::GenaiLogs),
        ] {
            if chosen(&shapes, name) {
                run(kind, shape, seconds, clients).await;
            }
        }
        if chosen(&shapes, "max-size") {
            max_size_export(kind).await;
        }
    }
}
