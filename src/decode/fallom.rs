//! The Fallom SDK's span: one JSON object per `POST /v1/traces` (an array of them is accepted
//! too). Identifiers, times and status are required; everything else is optional. The body is
//! read into the typed [`FallomSpan`] (whose schema the OpenAPI document publishes), then turned
//! into a [`NewSpan`]: token usage and the response text are read from the raw attributes, as
//! the SDK leaves that to the server.

use chrono::{DateTime, NaiveDateTime};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::content::{fallom_response_text, fallom_usage, genai_model, genai_usage};
use crate::domain::{SpanSource, SpanStatus};
use crate::ingest::NewSpan;
use crate::ingest::{finish_span, IngestOptions};
use crate::validate::limits::{
    MAX_DURATION_MS, MAX_ERROR_CHARS, MAX_FALLOM_SPANS, MAX_ID_CHARS, MAX_KIND_CHARS, MAX_MODEL_CHARS, MAX_NAME_CHARS,
    MAX_SPAN_NAME_CHARS, MAX_TAGS, MAX_TIME_CHARS, MAX_VARIANT_INDEX, MAX_VERSION,
};
use crate::validate::schemas;
use crate::validate::{Fields, FromJson, Problems, ValidationError};

/// One span as the Fallom SDK sends it. Times are ISO 8601 (an offset is optional; none means
/// UTC). `attributes` may carry `fallom.raw.request`, `fallom.raw.response` and
/// `fallom.raw.usage` (JSON text), from which the request, the response (a drift sample) and
/// the token usage are read.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FallomSpan {
    #[schema(schema_with = schemas::name)]
    pub config_key: String,
    #[schema(schema_with = schemas::id)]
    pub session_id: String,
    #[schema(schema_with = schemas::id)]
    pub trace_id: String,
    #[schema(schema_with = schemas::id)]
    pub span_id: String,
    #[schema(schema_with = schemas::span_name)]
    pub name: String,
    /// ISO 8601, e.g. `2026-11-22T10:00:00.000+00:00`.
    #[schema(schema_with = schemas::time)]
    pub start_time: String,
    /// ISO 8601, not before `start_time`.
    #[schema(schema_with = schemas::time)]
    pub end_time: String,
    #[schema(schema_with = schemas::duration_ms)]
    pub duration_ms: i64,
    /// `OK`, `ERROR` or `UNSET` (any letter case; stored in upper case).
    #[schema(schema_with = schemas::span_status)]
    pub status: SpanStatus,
    #[schema(schema_with = schemas::optional_id)]
    pub customer_id: Option<String>,
    #[schema(schema_with = schemas::optional_id)]
    pub parent_span_id: Option<String>,
    /// `llm` for a model call.
    #[schema(schema_with = schemas::optional_kind)]
    pub kind: Option<String>,
    #[schema(schema_with = schemas::optional_model)]
    pub model: Option<String>,
    #[schema(schema_with = schemas::optional_error)]
    pub error_message: Option<String>,
    #[schema(schema_with = schemas::optional_duration_ms)]
    pub time_to_first_token_ms: Option<i64>,
    pub is_streaming: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[schema(schema_with = schemas::optional_tags)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    #[schema(schema_with = schemas::optional_name)]
    pub prompt_key: Option<String>,
    #[schema(schema_with = schemas::optional_version)]
    pub prompt_version: Option<i64>,
    #[schema(schema_with = schemas::optional_name)]
    pub prompt_ab_test_key: Option<String>,
    #[schema(schema_with = schemas::optional_variant_index)]
    pub prompt_variant_index: Option<i64>,
    /// Epoch milliseconds of `start_time` and `end_time` (read, not sent).
    #[serde(skip)]
    #[schema(ignore)]
    start_ms: i64,
    #[serde(skip)]
    #[schema(ignore)]
    end_ms: i64,
}

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

fn time_field(fields: &Fields, name: &str, problems: &mut Problems) -> Option<(String, i64)> {
    let text = fields.required_str(name, MAX_TIME_CHARS, problems)?;
    match parse_iso_ms(&text) {
        Some(ms) => Some((text, ms)),
        None => {
            problems.push(fields.path(name), "must be an ISO 8601 time like 2026-11-22T10:00:00.000+00:00");
            None
        }
    }
}

fn status_field(f: &Fields, problems: &mut Problems) -> Option<SpanStatus> {
    let status = f.required_str("status", 20, problems)?;
    let parsed = status.to_ascii_uppercase().parse().ok();
    if parsed.is_none() {
        problems.push(f.path("status"), format!("must be one of OK, ERROR, UNSET; got {status:?}"));
    }
    parsed
}

fn tags_field(f: &Fields, problems: &mut Problems) -> Option<Vec<String>> {
    let tags = f.optional_array("tags", MAX_TAGS, problems)?;
    let mut out = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        match tag.as_str() {
            Some(t) if t.chars().count() <= MAX_ID_CHARS => out.push(t.to_string()),
            Some(_) => {
                problems.push(format!("{}[{i}]", f.path("tags")), format!("is longer than {MAX_ID_CHARS} characters"))
            }
            None => problems.push(format!("{}[{i}]", f.path("tags")), "must be a string"),
        }
    }
    Some(out)
}

impl FallomSpan {
    /// Reads one span (at `path`, "" for a single-span body), recording what is wrong with it.
    fn read_at(value: &Value, path: &str, problems: &mut Problems) -> Option<FallomSpan> {
        let before = problems.len();
        let f = Fields::of(value, path, problems)?;
        let config_key = f.required_str("config_key", MAX_NAME_CHARS, problems);
        let session_id = f.required_str("session_id", MAX_ID_CHARS, problems);
        let trace_id = f.required_str("trace_id", MAX_ID_CHARS, problems);
        let span_id = f.required_str("span_id", MAX_ID_CHARS, problems);
        let name = f.required_str("name", MAX_SPAN_NAME_CHARS, problems);
        let start = time_field(&f, "start_time", problems);
        let end = time_field(&f, "end_time", problems);
        let duration_ms = f.required_int("duration_ms", 0, MAX_DURATION_MS, problems);
        let status = status_field(&f, problems);
        if let (Some((_, start)), Some((_, end))) = (&start, &end) {
            if end < start {
                problems.push(f.path("end_time"), "is before start_time");
            }
        }
        let span = FallomSpan {
            customer_id: f.optional_str("customer_id", MAX_ID_CHARS, problems),
            parent_span_id: f.optional_str("parent_span_id", MAX_ID_CHARS, problems),
            kind: f.optional_str("kind", MAX_KIND_CHARS, problems),
            model: f.optional_str("model", MAX_MODEL_CHARS, problems),
            error_message: f.optional_str("error_message", MAX_ERROR_CHARS, problems),
            time_to_first_token_ms: f.optional_int("time_to_first_token_ms", 0, MAX_DURATION_MS, problems),
            is_streaming: f.optional_bool("is_streaming", problems),
            metadata: f.optional_object("metadata", problems).cloned(),
            tags: tags_field(&f, problems),
            attributes: f.optional_object("attributes", problems).cloned(),
            prompt_key: f.optional_str("prompt_key", MAX_NAME_CHARS, problems),
            prompt_version: f.optional_int("prompt_version", 1, MAX_VERSION, problems),
            prompt_ab_test_key: f.optional_str("prompt_ab_test_key", MAX_NAME_CHARS, problems),
            prompt_variant_index: f.optional_int("prompt_variant_index", 0, MAX_VARIANT_INDEX, problems),
            config_key: config_key?,
            session_id: session_id?,
            trace_id: trace_id?,
            span_id: span_id?,
            name: name?,
            start_ms: start.as_ref()?.1,
            end_ms: end.as_ref()?.1,
            start_time: start?.0,
            end_time: end?.0,
            duration_ms: duration_ms?,
            status: status?,
        };
        (problems.len() == before).then_some(span)
    }

    /// The span as stored: request, response and usage read out of the raw attributes.
    fn into_new_span(self) -> NewSpan {
        let mut attributes = self.attributes.unwrap_or_default();
        // The SDK sends the raw request once; keep it in its own column rather than twice.
        let request_text = attributes.remove("fallom.raw.request").map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        });
        let response_text = attributes.get("fallom.raw.response").and_then(fallom_response_text);
        let usage = match attributes.get("fallom.raw.usage") {
            Some(raw) => fallom_usage(raw),
            None => genai_usage(&attributes),
        };
        let model = self.model.or_else(|| genai_model(&attributes));
        NewSpan {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            source: SpanSource::Fallom,
            session_id: Some(self.session_id),
            customer_id: self.customer_id,
            config_key: Some(self.config_key),
            name: self.name,
            kind: self.kind,
            model,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            duration_ms: self.duration_ms,
            status: self.status,
            error_message: self.error_message,
            time_to_first_token_ms: self.time_to_first_token_ms,
            is_streaming: self.is_streaming,
            usage,
            request_text,
            response_text,
            metadata: self.metadata.map(Value::Object),
            tags: self.tags.map(|t| Value::Array(t.into_iter().map(Value::String).collect())),
            prompt_key: self.prompt_key,
            prompt_version: self.prompt_version,
            prompt_ab_test_key: self.prompt_ab_test_key,
            prompt_variant_index: self.prompt_variant_index,
            attributes,
            resource: None,
            sample: None,
        }
    }
}

impl FromJson for FallomSpan {
    const WHAT: &'static str = "span";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        FallomSpan::read_at(value, "", problems)
    }
}

/// Parses a body holding one span or an array of up to [`MAX_FALLOM_SPANS`], all or nothing.
pub fn parse(body: &Value, options: IngestOptions) -> Result<Vec<NewSpan>, ValidationError> {
    let mut problems = Problems::default();
    let mut spans = Vec::new();
    match body {
        Value::Array(items) if items.is_empty() || items.len() > MAX_FALLOM_SPANS => {
            problems.push("body", format!("must hold between 1 and {MAX_FALLOM_SPANS} spans, got {}", items.len()));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                spans.extend(FallomSpan::read_at(item, &format!("[{i}]"), &mut problems));
            }
        }
        single => spans.extend(FallomSpan::read_at(single, "", &mut problems)),
    }
    let mut spans: Vec<NewSpan> = spans.into_iter().map(FallomSpan::into_new_span).collect();
    for span in &mut spans {
        finish_span(span, options);
    }
    let read = problems.is_empty().then_some(spans);
    problems.finish(FallomSpan::WHAT, read)
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
        let spans = parse(&sdk_span(), ON).unwrap();
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
        let err = parse(&body, ON).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["start_time", "duration_ms", "status", "tags[1]"]);
        let err = parse(&json!([sdk_span(), {"name": 1}]), ON).unwrap_err();
        assert!(err.problems.iter().any(|p| p.path == "[1].name"));
        assert!(parse(&json!([]), ON).is_err());
    }

    #[test]
    fn iso_times_with_and_without_offsets() {
        assert_eq!(parse_iso_ms("1970-01-01T00:00:01.5+00:00"), Some(1500));
        assert_eq!(parse_iso_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_iso_ms("1970-01-01T00:00:02"), Some(2000));
        assert_eq!(parse_iso_ms("2026-13-01T00:00:00Z"), None);
    }
}
