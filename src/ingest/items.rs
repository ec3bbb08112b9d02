//! What ingest hands to the store: a drift sample, a span, a log record, each validated and
//! bounded, in the store's own terms. The three are kept apart on purpose:
//! - a **log** is what the driftballoon SDK sends (`POST /api/v1/logs`); each becomes one
//!   [`NewSample`];
//! - a **sample** is the stored response the drift worker scores (from a log, a span or a log
//!   record);
//! - a **log record** is an OpenTelemetry log ([`NewLogRecord`]); GenAI content events among them
//!   can complete a span's sample.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::domain::{SpanSource, SpanStatus};

/// A drift sample ready to store: one response of one prompt, from a log the SDK sent
/// (`POST /api/v1/logs`), a span or a log record.
#[derive(Debug, Clone)]
pub struct NewSample {
    pub prompt_name: String,
    pub response_text: String,
    pub input_text: Option<String>,
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenUsage {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub total: Option<i64>,
}

/// A validated span, ready to store. `sample` is the drift sample its response becomes.
#[derive(Debug, Clone, Default)]
pub struct NewSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// Which wire format it came in.
    pub source: SpanSource,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub config_key: Option<String>,
    pub name: String,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_ms: i64,
    pub status: SpanStatus,
    pub error_message: Option<String>,
    pub time_to_first_token_ms: Option<i64>,
    pub is_streaming: Option<bool>,
    pub usage: TokenUsage,
    pub request_text: Option<String>,
    pub response_text: Option<String>,
    pub metadata: Option<Value>,
    pub tags: Option<Value>,
    pub prompt_key: Option<String>,
    pub prompt_version: Option<i64>,
    pub prompt_ab_test_key: Option<String>,
    pub prompt_variant_index: Option<i64>,
    pub attributes: Map<String, Value>,
    /// The OTLP resource the span came with, shared by the spans of one export's resource
    /// block; stored once and read back once per answer.
    pub resource: Option<Arc<Map<String, Value>>>,
    pub sample: Option<NewSample>,
}

/// A validated log record, ready to store.
#[derive(Debug, Clone, Default)]
pub struct NewLogRecord {
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub time_ms: i64,
    pub severity_number: Option<i64>,
    pub severity_text: Option<String>,
    pub event_name: Option<String>,
    pub body: Option<Value>,
    pub attributes: Map<String, Value>,
    pub scope_name: Option<String>,
    /// Shared by the records of one resource block and stored once, as for spans.
    pub resource: Option<Arc<Map<String, Value>>>,
    /// The messages a GenAI content event carries, whole (bodies are stored bounded).
    pub request_text: Option<String>,
    pub response_text: Option<String>,
    /// Identity for duplicates: an exporter's retry of a stored record is skipped.
    pub content_hash: String,
}

impl NewLogRecord {
    /// The LLM call (trace id, span id) whose content this record carries, if it carries any.
    pub fn call(&self) -> Option<(&str, &str)> {
        if self.request_text.is_none() && self.response_text.is_none() {
            return None;
        }
        Some((self.trace_id.as_deref()?, self.span_id.as_deref()?))
    }
}
