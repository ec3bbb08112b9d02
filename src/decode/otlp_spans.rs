//! OTLP/HTTP trace export, protobuf or JSON, decoded with the `opentelemetry-proto` types.
//! Spans are read with the GenAI semantic conventions in mind: model, token usage, and the
//! completion text (which becomes a drift sample). A span that breaks the OTLP rules (bad ids)
//! is rejected alone and counted in the answer's `partial_success`, as the spec asks.

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use std::sync::Arc;

use prost::Message;
use serde_json::{Map, Value};

use super::content::genai_event_content;
use super::conventions;
use crate::domain::{SpanSource, SpanStatus};
use crate::ingest::bounds::bound_attributes;
use crate::ingest::privacy;
use crate::ingest::NewSpan;
use crate::ingest::{finish_span, IngestOptions};
use crate::validate::limits::{MAX_ERROR_CHARS, MAX_ID_CHARS, MAX_SPAN_NAME_CHARS};

/// Rejected-span reasons named in `partial_success.error_message`, at most this many.
const MAX_REPORTED_REJECTIONS: usize = 5;

/// What one export request held: the spans to store and the ones refused, with why.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<NewSpan>,
    pub rejected: Vec<String>,
}

pub fn decode_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    ExportTraceServiceRequest::decode(body).map_err(|e| format!("body is not an OTLP ExportTraceServiceRequest: {e}"))
}

pub fn decode_json(body: Value) -> Result<ExportTraceServiceRequest, String> {
    serde_json::from_value(body).map_err(|e| format!("body is not OTLP/JSON trace data: {e}"))
}

/// The OTLP answer: empty on full success, else `partial_success` with the count and reasons.
pub fn response(rejected: &[String]) -> ExportTraceServiceResponse {
    let partial_success = (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: rejection_message(rejected),
    });
    ExportTraceServiceResponse { partial_success }
}

/// `partial_success.error_message`: the first few reasons, and "..." when there were more.
pub(super) fn rejection_message(rejected: &[String]) -> String {
    let mut reasons: Vec<&str> = rejected.iter().take(MAX_REPORTED_REJECTIONS).map(String::as_str).collect();
    if rejected.len() > MAX_REPORTED_REJECTIONS {
        reasons.push("...");
    }
    reasons.join("; ")
}

pub fn any_value_json(value: &AnyValue) -> Value {
    match &value.value {
        // A string-table index only means something inside OTLP profiles; there is no table here.
        None | Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(any_value_json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes_json(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex::encode(b)),
    }
}

pub fn attributes_json(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any_value_json))).collect()
}

fn string_attr(attributes: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| match attributes.get(*k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .map(|s| s.chars().take(MAX_ID_CHARS).collect())
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// An id must have its exact length and not be all zeros (OTLP's "invalid id").
pub(super) fn valid_id(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().any(|b| *b != 0)
}

fn convert(span: &Span, resource: &Option<Arc<Map<String, Value>>>, scope_name: &str) -> Result<NewSpan, String> {
    if !valid_id(&span.trace_id, 16) {
        return Err(format!("span {:?}: trace_id must be 16 bytes and not all zero", span.name));
    }
    if !valid_id(&span.span_id, 8) {
        return Err(format!("span {:?}: span_id must be 8 bytes and not all zero", span.name));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!("span {:?}: parent_span_id must be 8 bytes", span.name));
    }
    if span.name.trim().is_empty() {
        return Err("a span has an empty name".into());
    }
    let start_ms = (span.start_time_unix_nano / 1_000_000) as i64;
    let end_ms = (span.end_time_unix_nano.max(span.start_time_unix_nano) / 1_000_000) as i64;
    let mut attributes = attributes_json(&span.attributes);
    let call = conventions::read(&attributes);
    let status = span.status.as_ref();
    let status_code = status.map_or(StatusCode::Unset, |s| StatusCode::try_from(s.code).unwrap_or(StatusCode::Unset));
    let error_message = status
        .filter(|_| status_code == StatusCode::Error)
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| string_attr(&attributes, &["error.type"]).filter(|_| status_code == StatusCode::Error))
        .map(|m| m.chars().take(MAX_ERROR_CHARS).collect());

    let mut out = NewSpan {
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex::encode(&span.parent_span_id)),
        source: SpanSource::Otlp,
        session_id: call.session_id,
        customer_id: call.user_id,
        config_key: string_attr(&attributes, &["fallom.config_key"]),
        name: span.name.chars().take(MAX_SPAN_NAME_CHARS).collect(),
        kind: Some(if call.is_llm { "llm" } else { kind_name(span.kind) }.to_string()),
        model: call.model,
        start_ms,
        end_ms,
        duration_ms: end_ms - start_ms,
        status: match status_code {
            StatusCode::Ok => SpanStatus::Ok,
            StatusCode::Error => SpanStatus::Error,
            StatusCode::Unset => SpanStatus::Unset,
        },
        error_message,
        usage: call.usage,
        request_text: call.request_text,
        response_text: call.response_text,
        ..Default::default()
    };
    // Older GenAI instrumentations put the content in span events instead.
    if out.response_text.is_none() || out.request_text.is_none() {
        let events: Vec<(&str, Map<String, Value>)> =
            span.events.iter().map(|e| (e.name.as_str(), attributes_json(&e.attributes))).collect();
        let (request, response) = genai_event_content(events.iter().map(|(name, attrs)| (*name, attrs)));
        out.request_text = out.request_text.or(request);
        out.response_text = out.response_text.or(response);
    }
    out.resource = resource.clone();
    if !scope_name.is_empty() {
        attributes.insert("otel.scope.name".into(), Value::String(scope_name.to_string()));
    }
    out.attributes = attributes;
    Ok(out)
}

/// A resource block's attributes as stored: only the allowed ones when the project does not
/// capture content, bounded, and shared by the block's spans (and stored once).
pub(super) fn stored_resource(attributes: &[KeyValue], options: IngestOptions) -> Option<Arc<Map<String, Value>>> {
    let mut resource = attributes_json(attributes);
    if !options.capture_content {
        resource.retain(|key, _| privacy::keep_resource_attribute(key));
    }
    bound_attributes(&mut resource);
    (!resource.is_empty()).then(|| Arc::new(resource))
}

/// How many spans an export holds, counted before anything is converted.
pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

/// Turns an export request into spans, rejecting bad spans one by one.
pub fn spans(request: &ExportTraceServiceRequest, options: IngestOptions) -> Decoded {
    let mut decoded = Decoded::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.as_ref().and_then(|r| stored_resource(&r.attributes, options));
        for scope_spans in &resource_spans.scope_spans {
            let scope_name = scope_spans.scope.as_ref().map_or("", |s| s.name.as_str());
            for span in &scope_spans.spans {
                match convert(span, &resource, scope_name) {
                    Ok(mut s) => {
                        finish_span(&mut s, options);
                        decoded.spans.push(s);
                    }
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
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    fn genai_span() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "chat gpt-4o".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: 1_000_000_000,
            end_time_unix_nano: 1_500_000_000,
            attributes: vec![
                kv("gen_ai.request.model", any_value::Value::StringValue("gpt-4o".into())),
                kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(12)),
                kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(5)),
                kv("gen_ai.completion", any_value::Value::StringValue("Hello there.".into())),
                kv("session.id", any_value::Value::StringValue("sess".into())),
            ],
            status: Some(Status { code: StatusCode::Ok as i32, message: String::new() }),
            ..Default::default()
        }
    }

    const ON: IngestOptions = IngestOptions { capture_content: true, max_text_chars: 1000 };

    #[test]
    fn protobuf_round_trip_reads_genai_attributes() {
        let bytes = request(vec![genai_span()]).encode_to_vec();
        let decoded = spans(&decode_protobuf(&bytes).unwrap(), ON);
        let s = &decoded.spans[0];
        assert_eq!(s.trace_id, "01".repeat(16));
        assert_eq!((s.start_ms, s.duration_ms), (1000, 500));
        assert_eq!((s.usage.input, s.usage.output, s.usage.total), (Some(12), Some(5), Some(17)));
        assert_eq!(s.model.as_deref(), Some("gpt-4o"));
        assert_eq!((s.kind.as_deref(), s.status), (Some("llm"), SpanStatus::Ok));
        assert_eq!(s.session_id.as_deref(), Some("sess"));
        assert_eq!(s.sample.as_ref().unwrap().response_text, "Hello there.");
    }

    #[test]
    fn bad_spans_are_rejected_alone() {
        let mut bad = genai_span();
        bad.trace_id = vec![0; 16];
        let decoded = spans(&request(vec![bad, genai_span()]), ON);
        assert_eq!((decoded.spans.len(), decoded.rejected.len()), (1, 1));
        let answer = response(&decoded.rejected);
        assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);
        assert!(decode_protobuf(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn json_encoding_with_hex_ids_and_string_ints() {
        let body = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "chat", "kind": 3, "startTimeUnixNano": "1544712660000000000",
                "endTimeUnixNano": "1544712661000000000",
                "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}}],
                "status": {"code": 2, "message": "boom"}}]}]}]});
        let decoded = spans(&decode_json(body).unwrap(), ON);
        let s = &decoded.spans[0];
        assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!((s.duration_ms, s.usage.input), (1000, Some(7)));
        assert_eq!((s.status, s.error_message.as_deref()), (SpanStatus::Error, Some("boom")));
        assert_eq!(s.resource.as_ref().unwrap()["service.name"], "bot");
        assert!(decode_json(serde_json::json!({"resourceSpans": [{"scopeSpans": "nope"}]})).is_err());
    }
}
