//! Trace ingest independent of HTTP: the two wire formats that arrive at `/v1/traces` (the
//! Fallom SDK's JSON span, OTLP protobuf/JSON) become [`NewSpan`]s, and every span then gets
//! the same treatment here: the project's privacy setting, and the drift sample taken from an
//! LLM response.

pub mod bounds;
pub mod content;
pub mod fallom;
pub mod otlp;

use serde_json::Value;

use crate::store::{NewLog, NewSpan};
use crate::validate::{replace_nul, replace_nul_in};

/// Prompt names for drift samples follow the logs API's limit.
const MAX_SAMPLE_PROMPT_CHARS: usize = crate::validate::limits::MAX_NAME_CHARS;

#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// The project's `capture_content` setting.
    pub capture_content: bool,
    /// The server's `max_text_chars`: sample text beyond it is cut, not refused.
    pub max_text_chars: usize,
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

/// Every text a span is stored with, NUL-free (OTLP protobuf strings can hold NUL too).
fn replace_nul_in_span(span: &mut NewSpan) {
    for text in [&mut span.trace_id, &mut span.span_id, &mut span.name] {
        replace_nul_in(text);
    }
    for text in [
        &mut span.parent_span_id,
        &mut span.session_id,
        &mut span.customer_id,
        &mut span.config_key,
        &mut span.kind,
        &mut span.model,
        &mut span.error_message,
        &mut span.request_text,
        &mut span.response_text,
        &mut span.prompt_key,
        &mut span.prompt_ab_test_key,
    ]
    .into_iter()
    .flatten()
    {
        replace_nul_in(text);
    }
    let mut attributes = Value::Object(std::mem::take(&mut span.attributes));
    replace_nul(&mut attributes);
    if let Value::Object(map) = attributes {
        span.attributes = map;
    }
    for doc in [&mut span.metadata, &mut span.tags].into_iter().flatten() {
        replace_nul(doc);
    }
}

/// Applies the privacy setting, then turns the response into a drift sample. The sample's
/// prompt name is `gen_ai.prompt.name` if the span has one, else its config key, else its name,
/// so an app that only exports OpenTelemetry spans still gets drift detection per operation.
pub fn finish_span(span: &mut NewSpan, options: IngestOptions) {
    replace_nul_in_span(span);
    if !options.capture_content {
        span.request_text = None;
        span.response_text = None;
        span.attributes.retain(|key, _| !content::is_content_attribute(key));
    }
    bounds::bound_attributes(&mut span.attributes);
    let Some(response) = span.response_text.as_deref().filter(|t| !t.trim().is_empty()) else {
        return;
    };
    let prompt_name = span
        .attributes
        .get("gen_ai.prompt.name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .or(span.config_key.as_deref().filter(|k| !k.trim().is_empty()))
        .unwrap_or(&span.name);
    span.sample = Some(NewLog {
        prompt_name: truncate_chars(prompt_name, MAX_SAMPLE_PROMPT_CHARS),
        response_text: truncate_chars(response, options.max_text_chars),
        input_text: span.request_text.as_deref().map(|t| truncate_chars(t, options.max_text_chars)),
        model: span.model.clone(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span_with(attrs: Value) -> NewSpan {
        NewSpan {
            name: "chat gpt-4o".into(),
            response_text: Some("An answer.".into()),
            attributes: attrs.as_object().unwrap().clone(),
            ..Default::default()
        }
    }

    #[test]
    fn sample_names_prefer_prompt_name_then_config_key_then_span_name() {
        let on = IngestOptions { capture_content: true, max_text_chars: 100 };
        let mut s = span_with(json!({"gen_ai.prompt.name": "support"}));
        s.config_key = Some("cfg".into());
        finish_span(&mut s, on);
        assert_eq!(s.sample.unwrap().prompt_name, "support");
        let mut s = span_with(json!({}));
        s.config_key = Some("cfg".into());
        finish_span(&mut s, on);
        assert_eq!(s.sample.unwrap().prompt_name, "cfg");
        let mut s = span_with(json!({}));
        finish_span(&mut s, on);
        assert_eq!(s.sample.unwrap().prompt_name, "chat gpt-4o");
    }

    #[test]
    fn privacy_drops_content_and_sample() {
        let mut s = span_with(json!({"gen_ai.output.messages": "[]", "gen_ai.usage.input_tokens": 3}));
        s.request_text = Some("secret".into());
        finish_span(&mut s, IngestOptions { capture_content: false, max_text_chars: 100 });
        assert!(s.sample.is_none() && s.request_text.is_none() && s.response_text.is_none());
        assert!(!s.attributes.contains_key("gen_ai.output.messages"));
        assert!(s.attributes.contains_key("gen_ai.usage.input_tokens"));
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }
}
