//! OTLP/HTTP log export, protobuf or JSON. Every record is stored, linked to its trace and span
//! when it names them. GenAI content events (`gen_ai.user.message`, `gen_ai.choice`, the latest
//! conventions' `gen_ai.client.inference.operation.details`, ...) also carry an LLM call's
//! messages: their text is taken out here, whole, so the store can join it to the call's span
//! and take the drift sample the span's own content would have given.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::content::genai_event_content;
use super::otlp_spans::{any_value_json, attributes_json, rejection_message, stored_resource, valid_id};
use crate::ingest::bounds::{bound_attributes, bound_body};
use crate::ingest::NewLogRecord;
use crate::ingest::{privacy, truncate_chars, IngestOptions};
use crate::validate::limits::{MAX_ID_CHARS, MAX_SPAN_NAME_CHARS};
use crate::validate::{replace_nul, replace_nul_in};

/// Event names whose records carry an LLM call's messages.
const GENAI_CONTENT_EVENTS: &[&str] = &[
    "gen_ai.user.message",
    "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
];

/// What one export request held: the records to store and the ones refused, with why.
#[derive(Debug, Default)]
pub struct DecodedLogs {
    pub records: Vec<NewLogRecord>,
    pub rejected: Vec<String>,
}

pub fn decode_protobuf(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    ExportLogsServiceRequest::decode(body).map_err(|e| format!("body is not an OTLP ExportLogsServiceRequest: {e}"))
}

pub fn decode_json(body: Value) -> Result<ExportLogsServiceRequest, String> {
    serde_json::from_value(body).map_err(|e| format!("body is not OTLP/JSON log data: {e}"))
}

/// How many log records an export holds, counted before anything is converted.
pub fn record_count(request: &ExportLogsServiceRequest) -> usize {
    request.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum()
}

/// The OTLP answer: empty on full success, else `partial_success` with the count and reasons.
pub fn response(rejected: &[String]) -> ExportLogsServiceResponse {
    let partial_success = (!rejected.is_empty()).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected.len() as i64,
        error_message: rejection_message(rejected),
    });
    ExportLogsServiceResponse { partial_success }
}

/// The event's name: the record's own field, or the older `event.name` attribute.
fn event_name(record: &LogRecord, attributes: &Map<String, Value>) -> Option<String> {
    Some(record.event_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| attributes.get("event.name").and_then(Value::as_str).map(str::to_string))
        .filter(|n| !n.trim().is_empty())
        .map(|n| n.chars().take(MAX_SPAN_NAME_CHARS).collect())
}

/// The (request, response) text of a GenAI content event. Instrumentations put the message in
/// the body (`{"content": ...}`, `{"message": {"content": ...}}`) or in attributes
/// (`gen_ai.output.messages`), so both are read as one map.
fn event_content(
    name: &str,
    attributes: &Map<String, Value>,
    body: Option<&Value>,
) -> (Option<String>, Option<String>) {
    let mut fields = attributes.clone();
    match body {
        Some(Value::Object(map)) => {
            for (key, value) in map {
                fields.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        Some(text @ Value::String(_)) => {
            fields.entry("content".to_string()).or_insert_with(|| text.clone());
        }
        _ => {}
    }
    genai_event_content([(name, &fields)])
}

/// The record's identity for duplicate detection: its resource, scope and encoded bytes. An
/// exporter's retry sends the same bytes; two records that differ in anything are both kept.
fn content_hash(resource: Option<&Map<String, Value>>, scope_name: &str, record: &LogRecord) -> String {
    let mut hash = Sha256::new();
    if let Some(resource) = resource {
        hash.update(Value::Object(resource.clone()).to_string().as_bytes());
    }
    hash.update([0]);
    hash.update(scope_name.as_bytes());
    hash.update([0]);
    hash.update(record.encode_to_vec());
    hex::encode(hash.finalize())
}

fn convert(
    record: &LogRecord,
    resource: &Option<Arc<Map<String, Value>>>,
    raw_resource: Option<&Map<String, Value>>,
    scope_name: &str,
    options: IngestOptions,
) -> Result<NewLogRecord, String> {
    // Records outside a trace are valid (empty ids); ids that are there must be valid ones.
    if !record.trace_id.is_empty() && !valid_id(&record.trace_id, 16) {
        return Err("a log record's trace_id must be empty or 16 bytes and not all zero".into());
    }
    if !record.span_id.is_empty() && !valid_id(&record.span_id, 8) {
        return Err("a log record's span_id must be empty or 8 bytes and not all zero".into());
    }
    if record.trace_id.is_empty() && !record.span_id.is_empty() {
        return Err("a log record with a span_id needs its trace_id".into());
    }
    let nanos = [record.time_unix_nano, record.observed_time_unix_nano].into_iter().find(|n| *n > 0);
    let time_ms = nanos.map_or_else(crate::domain::now_ms, |n| (n / 1_000_000) as i64);
    let mut attributes = attributes_json(&record.attributes);
    let mut body = record.body.as_ref().map(any_value_json).filter(|b| !b.is_null());
    let event_name = event_name(record, &attributes);
    let (mut request_text, mut response_text) = match event_name.as_deref() {
        Some(name) if GENAI_CONTENT_EVENTS.contains(&name) => event_content(name, &attributes, body.as_ref()),
        _ => (None, None),
    };
    if options.capture_content {
        for text in [&mut request_text, &mut response_text].into_iter().flatten() {
            *text = truncate_chars(text, options.max_text_chars);
            replace_nul_in(text);
        }
    } else {
        // a body is the record's message; content attributes can be under any name
        body = None;
        request_text = None;
        response_text = None;
        attributes.retain(|key, _| privacy::keep_log_attribute(key));
    }
    bound_attributes(&mut attributes);
    let mut attributes = Value::Object(attributes);
    replace_nul(&mut attributes);
    if let Some(body) = body.as_mut() {
        bound_body(body);
        replace_nul(body);
    }
    let text = |s: &str, max: usize| {
        let mut s: String = s.chars().take(max).collect();
        replace_nul_in(&mut s);
        Some(s).filter(|s| !s.is_empty())
    };
    Ok(NewLogRecord {
        trace_id: (!record.trace_id.is_empty()).then(|| hex::encode(&record.trace_id)),
        span_id: (!record.span_id.is_empty()).then(|| hex::encode(&record.span_id)),
        time_ms,
        severity_number: (record.severity_number != 0).then_some(i64::from(record.severity_number)),
        severity_text: text(&record.severity_text, MAX_ID_CHARS),
        event_name: event_name.and_then(|n| text(&n, MAX_SPAN_NAME_CHARS)),
        body,
        attributes: match attributes {
            Value::Object(map) => map,
            _ => Map::new(),
        },
        scope_name: text(scope_name, MAX_SPAN_NAME_CHARS),
        resource: resource.clone(),
        request_text,
        response_text,
        content_hash: content_hash(raw_resource, scope_name, record),
    })
}

/// Turns an export request into log records, rejecting bad records one by one.
pub fn records(request: &ExportLogsServiceRequest, options: IngestOptions) -> DecodedLogs {
    let mut decoded = DecodedLogs::default();
    for resource_logs in &request.resource_logs {
        let raw_resource = resource_logs.resource.as_ref().map(|r| attributes_json(&r.attributes));
        let resource = resource_logs.resource.as_ref().and_then(|r| stored_resource(&r.attributes, options));
        for scope_logs in &resource_logs.scope_logs {
            let scope_name = scope_logs.scope.as_ref().map_or("", |s| s.name.as_str());
            for record in &scope_logs.log_records {
                match convert(record, &resource, raw_resource.as_ref(), scope_name, options) {
                    Ok(r) => decoded.records.push(r),
                    Err(reason) => decoded.rejected.push(reason),
                }
            }
        }
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

    const ON: IngestOptions = IngestOptions { capture_content: true, max_text_chars: 1000 };
    const OFF: IngestOptions = IngestOptions { capture_content: false, max_text_chars: 1000 };

    fn string(s: &str) -> AnyValue {
        AnyValue { value: Some(any_value::Value::StringValue(s.into())) }
    }

    fn kvlist(pairs: Vec<(&str, AnyValue)>) -> AnyValue {
        let values = pairs.into_iter().map(|(k, v)| KeyValue { key: k.into(), value: Some(v), ..Default::default() });
        AnyValue { value: Some(any_value::Value::KvlistValue(KeyValueList { values: values.collect() })) }
    }

    /// openai-v2's `gen_ai.choice` record, as its default mode emits it.
    fn choice(text: &str) -> LogRecord {
        LogRecord {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            time_unix_nano: 2_000_000_000,
            event_name: "gen_ai.choice".into(),
            attributes: vec![KeyValue {
                key: "gen_ai.system".into(),
                value: Some(string("openai")),
                ..Default::default()
            }],
            body: Some(kvlist(vec![
                ("index", AnyValue { value: Some(any_value::Value::IntValue(0)) }),
                ("finish_reason", string("stop")),
                ("message", kvlist(vec![("role", string("assistant")), ("content", string(text))])),
            ])),
            ..Default::default()
        }
    }

    fn export(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_choice_event_gives_the_response_text() {
        let bytes = export(vec![choice("Your parcel is on its way.")]).encode_to_vec();
        let decoded = records(&decode_protobuf(&bytes).unwrap(), ON);
        let r = &decoded.records[0];
        assert_eq!((r.trace_id.as_deref(), r.span_id.as_deref()), (Some(&*"01".repeat(16)), Some(&*"02".repeat(8))));
        assert_eq!(r.time_ms, 2000);
        assert_eq!(r.event_name.as_deref(), Some("gen_ai.choice"));
        assert_eq!(r.response_text.as_deref(), Some("Your parcel is on its way."));
        assert_eq!(r.body.as_ref().unwrap()["message"]["role"], "assistant");
    }

    #[test]
    fn a_user_message_event_gives_the_request_text_and_older_event_names_count() {
        let record = LogRecord {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![KeyValue {
                key: "event.name".into(),
                value: Some(string("gen_ai.user.message")),
                ..Default::default()
            }],
            body: Some(kvlist(vec![("content", string("Where is my parcel?"))])),
            ..Default::default()
        };
        let r = &records(&export(vec![record]), ON).records[0];
        assert_eq!(r.request_text.as_deref(), Some("Where is my parcel?"));
        assert_eq!(r.response_text, None);
    }

    #[test]
    fn without_capture_no_body_and_no_content_survive() {
        let mut record = choice("secret answer");
        record.attributes.push(KeyValue {
            key: "app.note".into(),
            value: Some(string("secret")),
            ..Default::default()
        });
        let r = &records(&export(vec![record]), OFF).records[0];
        assert!(r.body.is_none() && r.response_text.is_none() && r.request_text.is_none());
        assert_eq!(r.attributes.keys().collect::<Vec<_>>(), ["gen_ai.system"]);
    }

    #[test]
    fn bad_ids_are_rejected_alone_and_retries_hash_the_same() {
        let mut bad = choice("x");
        bad.span_id = vec![0; 8];
        let mut orphan = choice("y");
        orphan.trace_id.clear();
        let decoded = records(&export(vec![bad, choice("a"), orphan]), ON);
        assert_eq!((decoded.records.len(), decoded.rejected.len()), (1, 2));
        assert_eq!(response(&decoded.rejected).partial_success.unwrap().rejected_log_records, 2);
        let again = records(&export(vec![choice("a")]), ON);
        assert_eq!(again.records[0].content_hash, decoded.records[0].content_hash);
        assert_ne!(records(&export(vec![choice("b")]), ON).records[0].content_hash, decoded.records[0].content_hash);
    }

    #[test]
    fn json_records_outside_a_trace_are_kept() {
        let body = serde_json::json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [{
                "observedTimeUnixNano": "1544712660000000000", "severityNumber": 9, "severityText": "INFO",
                "body": {"stringValue": "cache warmed"}}]}]}]});
        let decoded = records(&decode_json(body).unwrap(), ON);
        let r = &decoded.records[0];
        assert_eq!((r.trace_id.as_deref(), r.time_ms), (None, 1_544_712_660_000));
        assert_eq!((r.severity_number, r.severity_text.as_deref()), (Some(9), Some("INFO")));
        assert_eq!(r.body, Some(Value::String("cache warmed".into())));
        assert_eq!(r.scope_name.as_deref(), Some("app"));
        assert_eq!(r.resource.as_ref().unwrap()["service.name"], "bot");
    }
}
