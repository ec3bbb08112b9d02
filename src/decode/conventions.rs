//! Which attribute conventions an OTLP span's LLM call is read from, and in what order. Real
//! instrumentations disagree on names; each field is taken from the first convention that has
//! it, in this order (docs/sdks-and-otlp.md, "Conventions read from spans", lists the attributes):
//!
//! 1. OpenTelemetry GenAI, current (`gen_ai.input.messages`, `gen_ai.output.messages`,
//!    `gen_ai.usage.input_tokens`, `gen_ai.response.model`) and older names
//!    (`gen_ai.prompt`/`gen_ai.completion`, indexed `gen_ai.prompt.{i}.content` as OpenLLMetry
//!    writes them, `gen_ai.usage.prompt_tokens`, `llm.usage.total_tokens`);
//! 2. OpenInference (`llm.input_messages.{i}.message.content`,
//!    `llm.output_messages.{i}.message.content`, `input.value`/`output.value`,
//!    `llm.model_name`, `llm.token_count.*`);
//! 3. OpenLLMetry's entity spans (`traceloop.entity.input`/`traceloop.entity.output`);
//! 4. the Vercel AI SDK (`ai.prompt`, `ai.response.text`, `ai.model.id`, `ai.usage.*`).

use serde_json::{Map, Value};

use super::content::{
    first_int, genai_model, genai_request_text, genai_response_text, genai_usage, messages_text, non_empty,
};
use crate::ingest::TokenUsage;
use crate::validate::limits::MAX_ID_CHARS;

/// What an LLM span says about its call, whichever convention it used.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LlmCall {
    /// Whether the span is an LLM call at all (it carries any convention's LLM attributes).
    pub is_llm: bool,
    pub model: Option<String>,
    pub usage: TokenUsage,
    pub request_text: Option<String>,
    pub response_text: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
}

fn text(attributes: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| match attributes.get(*k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .map(|s| s.chars().take(MAX_ID_CHARS).collect())
}

/// OpenInference's flattened messages: `{prefix}.{i}.message.content`, or the parts in
/// `{prefix}.{i}.message.contents.{j}.message_content.text`.
fn openinference_messages(attributes: &Map<String, Value>, prefix: &str) -> Option<String> {
    let mut texts = Vec::new();
    for i in 0.. {
        let base = format!("{prefix}.{i}.message");
        let content = attributes.get(&format!("{base}.content")).and_then(Value::as_str).map(str::to_string);
        let parts: Vec<String> = (0..)
            .map_while(|j| attributes.get(&format!("{base}.contents.{j}.message_content.text")))
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let role = attributes.get(&format!("{base}.role"));
        if content.is_none() && parts.is_empty() && role.is_none() {
            break;
        }
        texts.extend(content);
        texts.extend(parts);
    }
    non_empty(texts.join("\n"))
}

/// `output.value` / `input.value`: plain text, or JSON holding a chat completion (whose first
/// choice's message is the text) or messages.
fn openinference_value(value: &Value) -> Option<String> {
    let Value::String(raw) = value else { return None };
    match serde_json::from_str::<Value>(raw) {
        Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .and_then(|t| non_empty(t.to_string()))
            .or_else(|| parsed.get("messages").and_then(messages_text))
            .or_else(|| messages_text(&parsed))
            .or_else(|| non_empty(raw.clone())),
        _ => non_empty(raw.clone()),
    }
}

fn openinference(attributes: &Map<String, Value>) -> LlmCall {
    LlmCall {
        is_llm: attributes.get("openinference.span.kind").and_then(Value::as_str) == Some("LLM")
            || attributes.keys().any(|k| k.starts_with("llm.")),
        model: text(attributes, &["llm.model_name"]),
        usage: TokenUsage {
            input: first_int(attributes, &["llm.token_count.prompt"]),
            output: first_int(attributes, &["llm.token_count.completion"]),
            total: first_int(attributes, &["llm.token_count.total"]),
        },
        request_text: openinference_messages(attributes, "llm.input_messages")
            .or_else(|| attributes.get("input.value").and_then(openinference_value)),
        response_text: openinference_messages(attributes, "llm.output_messages")
            .or_else(|| attributes.get("output.value").and_then(openinference_value)),
        session_id: None,
        user_id: None,
    }
}

fn traceloop_entity(attributes: &Map<String, Value>) -> LlmCall {
    // entity values are JSON of the wrapped function's arguments and result
    let entity = |key: &str| attributes.get(key).and_then(openinference_value);
    LlmCall {
        request_text: entity("traceloop.entity.input"),
        response_text: entity("traceloop.entity.output"),
        session_id: text(attributes, &["traceloop.association.properties.session_id"]),
        user_id: text(attributes, &["traceloop.association.properties.user_id"]),
        ..Default::default()
    }
}

fn vercel_ai(attributes: &Map<String, Value>) -> LlmCall {
    LlmCall {
        is_llm: attributes.contains_key("ai.model.id"),
        model: text(attributes, &["ai.response.model", "ai.model.id"]),
        usage: TokenUsage {
            input: first_int(attributes, &["ai.usage.inputTokens", "ai.usage.promptTokens"]),
            output: first_int(attributes, &["ai.usage.outputTokens", "ai.usage.completionTokens"]),
            total: first_int(attributes, &["ai.usage.totalTokens"]),
        },
        request_text: text(attributes, &["ai.prompt.messages", "ai.prompt"]),
        response_text: attributes.get("ai.response.text").and_then(Value::as_str).and_then(|t| non_empty(t.into())),
        session_id: text(attributes, &["ai.telemetry.metadata.sessionId"]),
        user_id: text(attributes, &["ai.telemetry.metadata.userId"]),
    }
}

fn genai(attributes: &Map<String, Value>) -> LlmCall {
    LlmCall {
        is_llm: attributes.keys().any(|k| k.starts_with("gen_ai.")),
        model: genai_model(attributes),
        usage: genai_usage(attributes),
        request_text: genai_request_text(attributes),
        response_text: genai_response_text(attributes),
        session_id: text(attributes, &["session.id", "fallom.session_id", "gen_ai.conversation.id"]),
        user_id: text(attributes, &["user.id", "enduser.id", "fallom.customer_id"]),
    }
}

/// Each field from the first convention that has it, in the order of the module docs.
pub fn read(attributes: &Map<String, Value>) -> LlmCall {
    let found = [genai(attributes), openinference(attributes), traceloop_entity(attributes), vercel_ai(attributes)];
    let mut call = LlmCall { is_llm: found.iter().any(|c| c.is_llm), ..Default::default() };
    for c in found {
        call.model = call.model.or(c.model);
        call.request_text = call.request_text.or(c.request_text);
        call.response_text = call.response_text.or(c.response_text);
        call.session_id = call.session_id.or(c.session_id);
        call.user_id = call.user_id.or(c.user_id);
        // usage counts come from one convention together, so input and output always match
        if call.usage == TokenUsage::default() {
            call.usage = c.usage;
        }
    }
    if call.usage.total.is_none() {
        if let (Some(i), Some(o)) = (call.usage.input, call.usage.output) {
            call.usage.total = Some(i.saturating_add(o));
        }
    }
    call
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn openinference_spans() {
        let call = read(&attrs(json!({
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Capital of France?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": "Paris.",
            "llm.token_count.prompt": 12, "llm.token_count.completion": 2, "llm.token_count.total": 14,
            "session.id": "s-1", "user.id": "u-1",
        })));
        assert!(call.is_llm);
        assert_eq!(call.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(call.response_text.as_deref(), Some("Paris."));
        assert_eq!(call.request_text.as_deref(), Some("Be brief.\nCapital of France?"));
        assert_eq!(call.usage, TokenUsage { input: Some(12), output: Some(2), total: Some(14) });
        assert_eq!((call.session_id.as_deref(), call.user_id.as_deref()), (Some("s-1"), Some("u-1")));
        // no flattened messages: output.value, a chat completion as JSON
        let call = read(&attrs(json!({"openinference.span.kind": "LLM",
            "output.value": r#"{"choices": [{"message": {"role": "assistant", "content": "Lyon."}}]}"#,
            "output.mime_type": "application/json"})));
        assert_eq!(call.response_text.as_deref(), Some("Lyon."));
    }

    #[test]
    fn openllmetry_and_vercel_spans() {
        let call = read(&attrs(json!({
            "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hi",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Hello!",
            "gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 2, "llm.usage.total_tokens": 5,
        })));
        assert_eq!((call.response_text.as_deref(), call.usage.total), (Some("Hello!"), Some(5)));
        let call = read(&attrs(json!({
            "ai.model.id": "gpt-4o", "ai.prompt": "{\"prompt\": \"Hi\"}", "ai.response.text": "Hey.",
            "ai.usage.promptTokens": 4, "ai.usage.completionTokens": 1, "ai.telemetry.metadata.userId": "u-9",
        })));
        assert!(call.is_llm);
        assert_eq!((call.model.as_deref(), call.response_text.as_deref()), (Some("gpt-4o"), Some("Hey.")));
        assert_eq!(call.usage, TokenUsage { input: Some(4), output: Some(1), total: Some(5) });
        assert_eq!(call.user_id.as_deref(), Some("u-9"));
        let call = read(&attrs(json!({"traceloop.entity.output": "{\"answer\": \"42\"}"})));
        assert!(!call.is_llm);
        assert_eq!(call.response_text.as_deref(), Some("{\"answer\": \"42\"}"));
    }

    #[test]
    fn genai_wins_over_the_others() {
        let call = read(&attrs(json!({
            "gen_ai.output.messages": r#"[{"role": "assistant", "parts": [{"type": "text", "content": "A"}]}]"#,
            "llm.output_messages.0.message.content": "B", "ai.response.text": "C",
            "gen_ai.response.model": "m1", "llm.model_name": "m2",
        })));
        assert_eq!((call.response_text.as_deref(), call.model.as_deref()), (Some("A"), Some("m1")));
        assert_eq!(read(&attrs(json!({"http.method": "GET"}))), LlmCall::default());
    }
}
