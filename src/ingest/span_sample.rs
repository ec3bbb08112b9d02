//! The one rule that turns a span into a drift sample, shared by span ingest and by content
//! that arrives later in log records: the project's privacy setting, bounds on what is stored,
//! and the prompt a response's sample belongs to.

use serde_json::Value;

use super::privacy;
use super::{truncate_chars, IngestOptions, NewSample, NewSpan};
use crate::domain::SpanSource;
use crate::validate::{replace_nul, replace_nul_in};

/// Prompt names for drift samples follow the logs API's limit.
const MAX_SAMPLE_PROMPT_CHARS: usize = crate::validate::limits::MAX_NAME_CHARS;

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

/// Where a drift sample from a span without a named prompt goes: the service and the kind of
/// call, never the model, so switching models keeps the prompt (and its baseline) and the
/// switch shows up as the drift it may cause.
fn default_prompt_name(span: &NewSpan) -> String {
    let service = span
        .resource
        .as_ref()
        .and_then(|r| r.get("service.name"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("unknown_service");
    let attribute = |key: &str| span.attributes.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
    let operation = attribute("gen_ai.operation.name")
        .or_else(|| attribute("llm.request.type"))
        .or_else(|| attribute("ai.operationId"))
        .map(str::to_string)
        .or_else(|| attribute("openinference.span.kind").map(str::to_lowercase))
        .unwrap_or_else(|| "llm".to_string());
    format!("{service}/{operation}")
}

/// The prompt a span's drift sample belongs to, first found of: `gen_ai.prompt.name`,
/// `driftballoon.prompt_name` (on the span, then its resource), the config key, then for an
/// OTLP span [`default_prompt_name`] and for a Fallom span its name.
fn sample_prompt_name(span: &NewSpan) -> String {
    let named = |v: Option<&Value>| v.and_then(Value::as_str).filter(|n| !n.trim().is_empty()).map(str::to_string);
    named(span.attributes.get("gen_ai.prompt.name"))
        .or_else(|| named(span.attributes.get(PROMPT_NAME_ATTRIBUTE)))
        .or_else(|| named(span.resource.as_ref().and_then(|r| r.get(PROMPT_NAME_ATTRIBUTE))))
        .or_else(|| span.config_key.clone().filter(|k| !k.trim().is_empty()))
        .unwrap_or_else(|| match span.source {
            SpanSource::Otlp => default_prompt_name(span),
            SpanSource::Fallom => span.name.clone(),
        })
}

/// The attribute (span or resource) that names the prompt a span's samples go to.
pub const PROMPT_NAME_ATTRIBUTE: &str = "driftballoon.prompt_name";

/// Applies the privacy setting, bounds what is stored, then turns the response into a drift
/// sample (see [`sample_prompt_name`] for where it goes).
pub fn finish_span(span: &mut NewSpan, options: IngestOptions) {
    replace_nul_in_span(span);
    if !options.capture_content {
        span.request_text = None;
        span.response_text = None;
        // a status or error message can quote content too
        span.error_message = None;
        span.attributes.retain(|key, _| privacy::keep_span_attribute(key));
    }
    super::bounds::bound_attributes(&mut span.attributes);
    span.sample = sample_of(span, options.max_text_chars);
}

/// The drift sample a span's response becomes, if it has one: at ingest, or later when its
/// content arrives in log records (see `store::log_records`).
pub fn sample_of(span: &NewSpan, max_text_chars: usize) -> Option<NewSample> {
    let response = span.response_text.as_deref().filter(|t| !t.trim().is_empty())?;
    Some(NewSample {
        prompt_name: truncate_chars(&sample_prompt_name(span), MAX_SAMPLE_PROMPT_CHARS),
        response_text: truncate_chars(response, max_text_chars),
        input_text: span.request_text.as_deref().map(|t| truncate_chars(t, max_text_chars)),
        model: span.model.clone(),
    })
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
        assert_eq!(s.sample.unwrap().prompt_name, "chat gpt-4o", "a Fallom span: its name");
    }

    #[test]
    fn otlp_samples_are_named_by_service_and_operation_never_the_model() {
        let on = IngestOptions { capture_content: true, max_text_chars: 100 };
        let resource = std::sync::Arc::new(json!({"service.name": "shop"}).as_object().unwrap().clone());
        let otlp = |attrs: Value| {
            let mut s = span_with(attrs);
            s.source = SpanSource::Otlp;
            s.resource = Some(resource.clone());
            finish_span(&mut s, on);
            s.sample.unwrap().prompt_name
        };
        assert_eq!(otlp(json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})), "shop/chat");
        assert_eq!(otlp(json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"})), "shop/chat");
        assert_eq!(otlp(json!({"openinference.span.kind": "LLM"})), "shop/llm");
        assert_eq!(otlp(json!({"driftballoon.prompt_name": "checkout-help"})), "checkout-help");
        let mut s = span_with(json!({}));
        s.source = SpanSource::Otlp;
        s.resource = Some(std::sync::Arc::new(
            json!({"driftballoon.prompt_name": "from-resource"}).as_object().unwrap().clone(),
        ));
        finish_span(&mut s, on);
        assert_eq!(s.sample.unwrap().prompt_name, "from-resource");
    }

    #[test]
    fn privacy_drops_content_and_sample() {
        let mut s = span_with(json!({"gen_ai.output.messages": "[]", "gen_ai.usage.input_tokens": 3,
            "output.value": "secret answer", "custom.note": "secret"}));
        s.request_text = Some("secret".into());
        s.error_message = Some("refused: the secret question".into());
        finish_span(&mut s, IngestOptions { capture_content: false, max_text_chars: 100 });
        assert!(s.sample.is_none() && s.request_text.is_none() && s.response_text.is_none());
        assert!(s.error_message.is_none());
        assert_eq!(s.attributes.keys().collect::<Vec<_>>(), ["gen_ai.usage.input_tokens"]);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }
}
