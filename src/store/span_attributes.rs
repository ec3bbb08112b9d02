//! A span's attributes as stored: content stored once.
//!
//! Instrumentations repeat the call's content across attributes: an OpenInference LLM span
//! carries its answer in `output.value` and in `llm.output_messages.0.message.content`, and the
//! server keeps it again as the span's `response_text`. Stored three times, it made a span row
//! too big for two to share a 4 KiB SQLite page. An attribute whose string is exactly the
//! span's `request_text` or `response_text` is left out of the stored JSON and named in
//! `content_refs` instead; reading the span puts it back, so what a client reads is what it sent.
//! Only exact copies are left out: a text that was cut to `max_text_chars` stays as it came.

use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::ingest::NewSpan;

/// Which of the span's texts an attribute was a copy of, as named in `content_refs`.
const REQUEST: &str = "request";
const RESPONSE: &str = "response";

/// The attributes JSON to store and the `content_refs` JSON (None when nothing was a copy).
pub(super) fn to_stored(span: &NewSpan) -> (String, Option<String>) {
    let copy_of = |value: &Value| -> Option<&'static str> {
        let Value::String(text) = value else { return None };
        if span.response_text.as_deref() == Some(text.as_str()) {
            Some(RESPONSE)
        } else if span.request_text.as_deref() == Some(text.as_str()) {
            Some(REQUEST)
        } else {
            None
        }
    };
    let mut refs = Map::new();
    let mut out = Vec::with_capacity(256);
    let mut json = serde_json::Serializer::new(&mut out);
    let mut map = json.serialize_map(None).expect("serializing to memory");
    for (key, value) in &span.attributes {
        match copy_of(value) {
            Some(which) => {
                refs.insert(key.clone(), Value::from(which));
            }
            None => map.serialize_entry(key, value).expect("serializing to memory"),
        }
    }
    map.end().expect("serializing to memory");
    let attributes = String::from_utf8(out).expect("serde_json writes UTF-8");
    (attributes, (!refs.is_empty()).then(|| Value::Object(refs).to_string()))
}

/// The attributes as sent: the stored ones with the copies named in `refs` put back.
pub(super) fn from_stored(
    mut attributes: Map<String, Value>,
    refs: Option<&str>,
    request_text: Option<&str>,
    response_text: Option<&str>,
) -> Map<String, Value> {
    let Some(Ok(Value::Object(refs))) = refs.map(serde_json::from_str::<Value>) else { return attributes };
    for (key, which) in refs {
        let text = match which.as_str() {
            Some(REQUEST) => request_text,
            Some(RESPONSE) => response_text,
            _ => None,
        };
        if let Some(text) = text {
            attributes.insert(key, Value::String(text.to_string()));
        }
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(attributes: Value, request: Option<&str>, response: Option<&str>) -> NewSpan {
        NewSpan {
            attributes: attributes.as_object().unwrap().clone(),
            request_text: request.map(str::to_string),
            response_text: response.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn copies_of_the_content_are_stored_once_and_read_back_whole() {
        let sent = json!({
            "output.value": "Paris.",
            "llm.output_messages.0.message.content": "Paris.",
            "input.value": "Capital of France?",
            "llm.input_messages.0.message.content": "Capital of France?",
            "llm.token_count.total": 12,
            "llm.model_name": "gpt-4o",
            "note": "Paris. And more",
        });
        let s = span(sent.clone(), Some("Capital of France?"), Some("Paris."));
        let (stored, refs) = to_stored(&s);
        let stored_map: Map<String, Value> = serde_json::from_str(&stored).unwrap();
        assert!(!stored.contains("\"Paris.\""), "the answer is not stored again: {stored}");
        assert!(!stored_map.contains_key("input.value"));
        assert_eq!(stored_map["note"], "Paris. And more", "only exact copies are left out");
        let read = from_stored(stored_map, refs.as_deref(), s.request_text.as_deref(), s.response_text.as_deref());
        assert_eq!(Value::Object(read), sent);
    }

    #[test]
    fn without_content_nothing_changes() {
        let sent = json!({"llm.model_name": "gpt-4o", "n": 1, "empty": ""});
        let s = span(sent.clone(), None, None);
        let (stored, refs) = to_stored(&s);
        assert_eq!(refs, None);
        assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), sent);
        let read = from_stored(sent.as_object().unwrap().clone(), None, None, None);
        assert_eq!(Value::Object(read), sent);
    }
}
