//! The Fallom SDK's span: one JSON object per `POST /v1/traces` (an array of them is accepted
//! too). Identifiers, times and status are required; everything else is optional. Token usage
//! and the response text are read from the raw attributes, as the SDK leaves that to the server.

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use super::content::{fallom_response_text, fallom_usage, genai_model, genai_usage};
use super::{finish_span, IngestOptions, MAX_ID_CHARS, MAX_NAME_CHARS};
use crate::store::NewSpan;
use crate::validate::{Fields, Problems, ValidationError};

const MAX_ERROR_CHARS: usize = 10_000;
const MAX_TAGS: usize = 100;
/// Status values: Fallom sends OK/ERROR; UNSET is OpenTelemetry's default.
const STATUSES: &[&str] = &["OK", "ERROR", "UNSET"];

/// Epoch milliseconds of an ISO 8601 time. Python's `isoformat()` gives an offset
/// (`+00:00`); a time without one is taken as UTC.
pub fn parse_iso_ms(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

fn time_field(fields: &Fields, name: &str, problems: &mut Problems) -> Option<i64> {
    let text = fields.required_str(name, 100, problems)?;
    let parsed = parse_iso_ms(&text);
    if parsed.is_none() {
        problems.push(fields.path(name), "must be an ISO 8601 time like 2026-11-22T10:00:00.000+00:00");
    }
    parsed
}

/// Parses one span (at `path`, "" for a single-span body) or records what is wrong with it.
fn parse_one(value: &Value, path: &str, problems: &mut Problems) -> Option<NewSpan> {
    let before = problems.len();
    let f = Fields::of(value, path, problems)?;
    let config_key = f.required_str("config_key", crate::validate::MAX_PROMPT_NAME_CHARS, problems);
    let session_id = f.required_str("session_id", MAX_ID_CHARS, problems);
    let trace_id = f.required_str("trace_id", MAX_ID_CHARS, problems);
    let span_id = f.required_str("span_id", MAX_ID_CHARS, problems);
    let name = f.required_str("name", MAX_NAME_CHARS, problems);
    let start_ms = time_field(&f, "start_time", problems);
    let end_ms = time_field(&f, "end_time", problems);
    let duration_ms = f.required_i64("duration_ms", 0, problems);
    let status = f.required_str("status", 20, problems).map(|s| s.to_ascii_uppercase());
    if let Some(s) = status.as_deref().filter(|s| !STATUSES.contains(s)) {
        problems.push(f.path("status"), format!("must be one of OK, ERROR, UNSET; got {s:?}"));
    }
    let tags = f.optional_array("tags", problems);
    if let Some(tags) = tags {
        if tags.len() > MAX_TAGS {
            problems.push(f.path("tags"), format!("has {} tags; at most {MAX_TAGS} are accepted", tags.len()));
        } else if let Some(i) = tags.iter().position(|t| !t.is_string()) {
            problems.push(format!("{}[{i}]", f.path("tags")), "must be a string");
        }
    }
    let mut span = NewSpan {
        source: "fallom",
        customer_id: f.optional_str("customer_id", MAX_ID_CHARS, problems),
        parent_span_id: f.optional_str("parent_span_id", MAX_ID_CHARS, problems),
        kind: f.optional_str("kind", 100, problems),
        model: f.optional_str("model", MAX_NAME_CHARS, problems),
        error_message: f.optional_str("error_message", MAX_ERROR_CHARS, problems),
        time_to_first_token_ms: f.optional_i64("time_to_first_token_ms", 0, problems),
        is_streaming: f.optional_bool("is_streaming", problems),
        metadata: f.optional_object("metadata", problems).cloned().map(Value::Object),
        tags: tags.cloned().map(Value::Array),
        attributes: f.optional_object("attributes", problems).cloned().unwrap_or_default(),
        prompt_key: f.optional_str("prompt_key", crate::validate::MAX_PROMPT_NAME_CHARS, problems),
        prompt_version: f.optional_i64("prompt_version", 1, problems),
        prompt_ab_test_key: f.optional_str("prompt_ab_test_key", crate::validate::MAX_PROMPT_NAME_CHARS, problems),
        prompt_variant_index: f.optional_i64("prompt_variant_index", 0, problems),
        ..Default::default()
    };
    if let (Some(start), Some(end)) = (start_ms, end_ms) {
        if end < start {
            problems.push(f.path("end_time"), "is before start_time");
        }
    }
    if problems.len() > before {
        return None;
    }
    span.config_key = config_key;
    span.session_id = session_id;
    span.trace_id = trace_id?;
    span.span_id = span_id?;
    span.name = name?;
    span.start_ms = start_ms?;
    span.end_ms = end_ms?;
    span.duration_ms = duration_ms?;
    span.status = status?;

    // The SDK sends the raw request once; keep it in its own column rather than twice.
    span.request_text = span.attributes.remove("fallom.raw.request").map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    });
    span.response_text = span.attributes.get("fallom.raw.response").and_then(fallom_response_text);
    span.usage = match span.attributes.get("fallom.raw.usage") {
        Some(raw) => fallom_usage(raw),
        None => genai_usage(&span.attributes),
    };
    if span.model.is_none() {
        span.model = genai_model(&span.attributes);
    }
    Some(span)
}

/// Parses a body holding one span or an array of spans, all or nothing.
pub fn parse(body: &Value, options: IngestOptions, max_spans: usize) -> Result<Vec<NewSpan>, ValidationError> {
    let mut problems = Problems::default();
    let mut spans = Vec::new();
    match body {
        Value::Array(items) if items.is_empty() || items.len() > max_spans => {
            problems.push("body", format!("must hold between 1 and {max_spans} spans, got {}", items.len()));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                spans.extend(parse_one(item, &format!("[{i}]"), &mut problems));
            }
        }
        single => spans.extend(parse_one(single, "", &mut problems)),
    }
    for span in &mut spans {
        finish_span(span, options);
    }
    problems.finish("span", spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ON: IngestOptions = IngestOptions { capture_content: true, max_text_chars: 1000 };

    fn sdk_span() -> Value {
        json!({
            "config_key": "summarizer", "session_id": "s1", "trace_id": "a".repeat(32), "span_id": "b".repeat(16),
            "name": "chat.completions.create", "start_time": "2026-11-22T10:00:00.000000+00:00",
            "end_time": "2026-11-22T10:00:01.250000+00:00", "duration_ms": 1250, "status": "OK", "kind": "llm",
            "model": "gpt-4o", "attributes": {
                "fallom.raw.request": "{\"messages\": []}",
                "fallom.raw.response": "{\"text\": \"A summary.\"}",
                "fallom.raw.usage": "{\"prompt_tokens\": 10, \"completion_tokens\": 3, \"total_tokens\": 13}"
            }
        })
    }

    #[test]
    fn parses_the_sdk_span() {
        let spans = parse(&sdk_span(), ON, 10).unwrap();
        let s = &spans[0];
        assert_eq!(s.end_ms - s.start_ms, 1250);
        assert_eq!(s.usage.total, Some(13));
        assert_eq!(s.response_text.as_deref(), Some("A summary."));
        assert_eq!(s.request_text.as_deref(), Some("{\"messages\": []}"));
        assert!(!s.attributes.contains_key("fallom.raw.request"));
        let sample = s.sample.as_ref().unwrap();
        assert_eq!((sample.prompt_name.as_str(), sample.model.as_deref()), ("summarizer", Some("gpt-4o")));
    }

    #[test]
    fn names_every_bad_field() {
        let mut body = sdk_span();
        body["duration_ms"] = json!("long");
        body["status"] = json!("MAYBE");
        body["start_time"] = json!("yesterday");
        body["tags"] = json!(["ok", 3]);
        let err = parse(&body, ON, 10).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["start_time", "duration_ms", "status", "tags[1]"]);
        let err = parse(&json!([sdk_span(), {"name": 1}]), ON, 10).unwrap_err();
        assert!(err.problems.iter().any(|p| p.path == "[1].name"));
        assert!(parse(&json!([]), ON, 10).is_err());
    }

    #[test]
    fn iso_times_with_and_without_offsets() {
        assert_eq!(parse_iso_ms("1970-01-01T00:00:01.5+00:00"), Some(1500));
        assert_eq!(parse_iso_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_iso_ms("1970-01-01T00:00:02"), Some(2000));
        assert_eq!(parse_iso_ms("2026-13-01T00:00:00Z"), None);
    }
}
