//! Reading LLM content and token usage out of span attributes, whatever shape the client
//! wrote them in: Fallom's raw JSON strings (`fallom.raw.response`, `fallom.raw.usage`, with
//! OpenAI, Anthropic, Google and LangChain layouts), the OpenTelemetry GenAI semantic
//! conventions (`gen_ai.output.messages`, `gen_ai.usage.*`) and their older names
//! (`gen_ai.completion`, `gen_ai.completion.0.content`, `prompt_tokens`).

use serde_json::{Map, Value};

use crate::ingest::TokenUsage;
use crate::validate::limits::MAX_TOKENS;
use crate::validate::whole_number;

/// A value that may be JSON written into a string attribute: parsed when it is, else itself.
fn decoded(value: &Value) -> Value {
    match value {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| value.clone()),
        other => other.clone(),
    }
}

pub(super) fn non_empty(text: String) -> Option<String> {
    (!text.trim().is_empty()).then_some(text)
}

/// Joins the text found in content blocks / message parts (`[{"type": "text", "text": ...}]`,
/// `[{"type": "text", "content": ...}]`) or returns a plain string.
fn text_of_content(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => non_empty(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str).is_none_or(|t| t == "text" || t == "output_text"))
                .filter_map(|p| p.get("text").or_else(|| p.get("content")).and_then(Value::as_str))
                .collect();
            non_empty(texts.join("\n"))
        }
        _ => None,
    }
}

/// The response text in Fallom's `fallom.raw.response`.
pub fn fallom_response_text(raw: &Value) -> Option<String> {
    let value = decoded(raw);
    match &value {
        Value::String(s) => non_empty(s.clone()),
        Value::Object(o) => {
            // OpenAI chat / Anthropic / Google: "text"; OpenAI Responses: "output" items;
            // Anthropic blocks: "content"; LangChain: whatever the chain returned.
            if let Some(text) = o.get("text").and_then(Value::as_str).and_then(|t| non_empty(t.to_string())) {
                return Some(text);
            }
            if let Some(Value::Array(items)) = o.get("output") {
                let texts: Vec<String> =
                    items.iter().filter_map(|i| i.get("content").and_then(text_of_content)).collect();
                if let Some(text) = non_empty(texts.join("\n")) {
                    return Some(text);
                }
            }
            for key in ["content", "output", "result", "answer"] {
                if let Some(text) = o.get(key).and_then(text_of_content) {
                    return Some(text);
                }
            }
            // LangChain LLMResult: {"generations": [[{"text": ...}]]}
            o.get("generations")
                .and_then(|g| g.get(0))
                .and_then(|g| g.get(0))
                .and_then(|g| g.get("text"))
                .and_then(Value::as_str)
                .and_then(|t| non_empty(t.to_string()))
        }
        _ => None,
    }
}

/// Text of a list of chat messages, in the GenAI conventions' shape
/// (`[{"role", "parts": [{"type": "text", "content"}]}]`) or the older `[{"role", "content"}]`.
pub(super) fn messages_text(value: &Value) -> Option<String> {
    match decoded(value) {
        Value::String(s) => non_empty(s),
        Value::Array(messages) => {
            let texts: Vec<String> = messages
                .iter()
                .filter_map(|m| m.get("parts").or_else(|| m.get("content")).and_then(text_of_content))
                .collect();
            non_empty(texts.join("\n"))
        }
        Value::Object(m) => m.get("parts").or_else(|| m.get("content")).and_then(text_of_content),
        _ => None,
    }
}

/// Joins the indexed legacy attributes `{prefix}.0.content`, `{prefix}.1.content`, ...
fn indexed_contents(attributes: &Map<String, Value>, prefix: &str) -> Option<String> {
    let texts: Vec<&str> =
        (0..).map_while(|i| attributes.get(&format!("{prefix}.{i}.content"))).filter_map(Value::as_str).collect();
    non_empty(texts.join("\n"))
}

/// The completion text in GenAI attributes, newest convention first.
pub fn genai_response_text(attributes: &Map<String, Value>) -> Option<String> {
    attributes
        .get("gen_ai.output.messages")
        .and_then(messages_text)
        .or_else(|| attributes.get("gen_ai.completion").and_then(messages_text))
        .or_else(|| indexed_contents(attributes, "gen_ai.completion"))
}

/// The request content in GenAI attributes, kept as the client wrote it.
pub fn genai_request_text(attributes: &Map<String, Value>) -> Option<String> {
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    attributes
        .get("gen_ai.input.messages")
        .or_else(|| attributes.get("gen_ai.prompt"))
        .map(as_text)
        .or_else(|| indexed_contents(attributes, "gen_ai.prompt"))
}

/// Content that instrumentations put in span events rather than attributes: the 2024 GenAI
/// conventions' `gen_ai.content.prompt` / `gen_ai.content.completion` events (with a
/// `gen_ai.prompt` / `gen_ai.completion` attribute), the per-message `gen_ai.user.message` and
/// `gen_ai.choice` events (a `content` attribute, or a `message` with one), and the latest
/// conventions' `gen_ai.client.inference.operation.details` event (with
/// `gen_ai.input.messages` / `gen_ai.output.messages`). Returns (request, response).
pub fn genai_event_content<'a>(
    events: impl IntoIterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> (Option<String>, Option<String>) {
    let mut request = None;
    let mut responses = Vec::new();
    for (name, attributes) in events {
        match name {
            "gen_ai.content.prompt" if request.is_none() => request = genai_request_text(attributes),
            "gen_ai.content.completion" => responses.extend(genai_response_text(attributes)),
            // the latest conventions' one event per call, with the messages as attributes
            "gen_ai.client.inference.operation.details" => {
                if request.is_none() {
                    request = genai_request_text(attributes);
                }
                responses.extend(genai_response_text(attributes));
            }
            "gen_ai.user.message" if request.is_none() => {
                request = attributes.get("content").and_then(text_of_content);
            }
            "gen_ai.choice" => responses.extend(
                attributes
                    .get("message")
                    .map(decoded)
                    .and_then(|m| m.get("content").and_then(text_of_content))
                    .or_else(|| attributes.get("content").and_then(text_of_content)),
            ),
            _ => {}
        }
    }
    (request, non_empty(responses.join("\n")))
}

/// The first of `keys` holding a token count: a whole number from 0 to [`MAX_TOKENS`]
/// (as a number or as text). Anything else (negative, huge, fractional) is no count at all:
/// the raw attribute is kept, but no sum or total is built from it.
pub(super) fn first_int(object: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter()
        .find_map(|k| match object.get(*k)? {
            number @ Value::Number(_) => whole_number(number),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|n| (0..=MAX_TOKENS).contains(n))
}

fn completed(mut usage: TokenUsage) -> TokenUsage {
    if usage.total.is_none() {
        if let (Some(i), Some(o)) = (usage.input, usage.output) {
            usage.total = Some(i.saturating_add(o));
        }
    }
    usage
}

/// Token usage from `fallom.raw.usage` (OpenAI, Anthropic, Google or LangChain names).
pub fn fallom_usage(raw: &Value) -> TokenUsage {
    let Value::Object(o) = decoded(raw) else { return TokenUsage::default() };
    completed(TokenUsage {
        input: first_int(&o, &["prompt_tokens", "input_tokens", "prompt_token_count", "promptTokens", "inputTokens"]),
        output: first_int(
            &o,
            &["completion_tokens", "output_tokens", "candidates_token_count", "completionTokens", "outputTokens"],
        ),
        total: first_int(&o, &["total_tokens", "total_token_count", "totalTokens"]),
    })
}

/// Token usage from GenAI attributes, current names first, then the older ones.
pub fn genai_usage(attributes: &Map<String, Value>) -> TokenUsage {
    completed(TokenUsage {
        input: first_int(attributes, &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]),
        output: first_int(attributes, &["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"]),
        total: first_int(attributes, &["gen_ai.usage.total_tokens", "llm.usage.total_tokens"]),
    })
}

/// The model a GenAI span used: the one that answered, else the one asked for.
pub fn genai_model(attributes: &Map<String, Value>) -> Option<String> {
    ["gen_ai.response.model", "gen_ai.request.model"]
        .iter()
        .find_map(|k| attributes.get(*k).and_then(Value::as_str).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fallom_response_shapes() {
        let openai = json!(r#"{"text": "Paris.", "finishReason": "stop", "model": "gpt-4o"}"#);
        assert_eq!(fallom_response_text(&openai).as_deref(), Some("Paris."));
        let responses = json!(r#"{"output": [{"type": "message", "content": [{"type": "text", "text": "Hi"}]}]}"#);
        assert_eq!(fallom_response_text(&responses).as_deref(), Some("Hi"));
        let anthropic_tools_only = json!(r#"{"text": "", "content": [{"type": "tool_use", "text": null}]}"#);
        assert_eq!(fallom_response_text(&anthropic_tools_only), None);
        let langchain = json!(r#"{"generations": [[{"text": "chain says"}]]}"#);
        assert_eq!(fallom_response_text(&langchain).as_deref(), Some("chain says"));
        assert_eq!(fallom_response_text(&json!("not json at all")).as_deref(), Some("not json at all"));
    }

    #[test]
    fn genai_response_conventions() {
        let current = attrs(json!({"gen_ai.output.messages":
            r#"[{"role": "assistant", "parts": [{"type": "text", "content": "Blue."}], "finish_reason": "stop"}]"#}));
        assert_eq!(genai_response_text(&current).as_deref(), Some("Blue."));
        let legacy = attrs(json!({"gen_ai.completion": r#"[{"role": "assistant", "content": "Red."}]"#}));
        assert_eq!(genai_response_text(&legacy).as_deref(), Some("Red."));
        let indexed = attrs(json!({"gen_ai.completion.0.content": "A", "gen_ai.completion.0.role": "assistant"}));
        assert_eq!(genai_response_text(&indexed).as_deref(), Some("A"));
        assert_eq!(genai_response_text(&attrs(json!({"gen_ai.request.model": "m"}))), None);
    }

    #[test]
    fn genai_content_in_events() {
        let prompt = attrs(json!({"gen_ai.prompt": "[{\"role\": \"user\", \"content\": \"Hi\"}]"}));
        let completion = attrs(json!({"gen_ai.completion": "[{\"role\": \"assistant\", \"content\": \"Hello.\"}]"}));
        let choice = attrs(json!({"message": "{\"content\": \"Second.\"}", "index": 1}));
        let unrelated = attrs(json!({"exception.message": "x"}));
        let events = [
            ("gen_ai.content.prompt", &prompt),
            ("gen_ai.content.completion", &completion),
            ("gen_ai.choice", &choice),
            ("exception", &unrelated),
        ];
        let (request, response) = genai_event_content(events);
        assert!(request.unwrap().contains("Hi"));
        assert_eq!(response.as_deref(), Some("Hello.\nSecond."));
        assert_eq!(genai_event_content([("exception", &unrelated)]), (None, None));
        let details = attrs(json!({
            "gen_ai.input.messages": r#"[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]"#,
            "gen_ai.output.messages": r#"[{"role": "assistant", "parts": [{"type": "text", "content": "Hey."}]}]"#,
        }));
        let (request, response) = genai_event_content([("gen_ai.client.inference.operation.details", &details)]);
        assert!(request.unwrap().contains("Hi"));
        assert_eq!(response.as_deref(), Some("Hey."));
        let user = attrs(json!({"content": "Where is it?"}));
        assert_eq!(genai_event_content([("gen_ai.user.message", &user)]).0.as_deref(), Some("Where is it?"));
    }

    #[test]
    fn usage_names() {
        let u = fallom_usage(&json!(r#"{"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}"#));
        assert_eq!(u, TokenUsage { input: Some(3), output: Some(4), total: Some(7) });
        let u = fallom_usage(&json!(r#"{"input_tokens": 5, "output_tokens": 6}"#));
        assert_eq!(u, TokenUsage { input: Some(5), output: Some(6), total: Some(11) });
        let u = genai_usage(&attrs(json!({"gen_ai.usage.prompt_tokens": 2, "gen_ai.usage.completion_tokens": "9"})));
        assert_eq!(u, TokenUsage { input: Some(2), output: Some(9), total: Some(11) });
    }

    #[test]
    fn token_counts_out_of_range_are_no_counts() {
        let u = fallom_usage(&json!(r#"{"prompt_tokens": -5, "completion_tokens": 9223372036854775807}"#));
        assert_eq!(u, TokenUsage { input: None, output: None, total: None });
        let u = genai_usage(&attrs(json!({"gen_ai.usage.input_tokens": 1e300, "gen_ai.usage.output_tokens": 2})));
        assert_eq!(u, TokenUsage { input: None, output: Some(2), total: None });
        let u = genai_usage(&attrs(
            json!({"gen_ai.usage.input_tokens": 1_000_000_000_000_i64, "gen_ai.usage.output_tokens": 1}),
        ));
        assert_eq!(u.total, Some(1_000_000_000_001));
    }
}
