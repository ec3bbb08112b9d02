//! Bounds on what one span stores, whatever a client sends: at most
//! [`MAX_SPAN_ATTRIBUTES`] attributes, strings cut at [`MAX_ATTRIBUTE_VALUE_CHARS`] characters,
//! arrays and nested maps at [`MAX_ATTRIBUTE_ITEMS`] items, [`MAX_ATTRIBUTE_DEPTH`] levels deep.
//! Everything cut is marked, so a reader knows the stored value is not the whole one. Applied
//! after the content was read from the full attributes, so a long completion still becomes a
//! whole drift sample.

use serde_json::{Map, Value};

use crate::validate::limits::{
    MAX_ATTRIBUTE_DEPTH, MAX_ATTRIBUTE_ITEMS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_SPAN_ATTRIBUTES,
};

/// Counts attributes dropped over the limit (OpenTelemetry's name for it).
pub const DROPPED_COUNT_KEY: &str = "otel.dropped_attributes_count";

fn cut_string(text: &mut String) {
    if let Some((at, _)) = text.char_indices().nth(MAX_ATTRIBUTE_VALUE_CHARS) {
        let rest = text[at..].chars().count();
        text.truncate(at);
        text.push_str(&format!("…[cut: {rest} more characters]"));
    }
}

fn bound_value(value: &mut Value, depth: usize) {
    match value {
        Value::String(s) => cut_string(s),
        Value::Array(items) => {
            if depth >= MAX_ATTRIBUTE_DEPTH {
                *value = Value::String(format!("[cut: an array nested over {MAX_ATTRIBUTE_DEPTH} levels]"));
                return;
            }
            if items.len() > MAX_ATTRIBUTE_ITEMS {
                let rest = items.len() - MAX_ATTRIBUTE_ITEMS;
                items.truncate(MAX_ATTRIBUTE_ITEMS);
                items.push(Value::String(format!("…[cut: {rest} more items]")));
            }
            for item in items.iter_mut() {
                bound_value(item, depth + 1);
            }
        }
        Value::Object(map) => {
            if depth >= MAX_ATTRIBUTE_DEPTH {
                *value = Value::String(format!("[cut: a map nested over {MAX_ATTRIBUTE_DEPTH} levels]"));
                return;
            }
            bound_map(map, MAX_ATTRIBUTE_ITEMS, depth + 1);
        }
        _ => {}
    }
}

/// Keeps the first `max` entries by name (maps are kept sorted), counting the rest in
/// [`DROPPED_COUNT_KEY`], and bounds every value.
fn bound_map(map: &mut Map<String, Value>, max: usize, depth: usize) {
    if map.len() > max {
        let dropped = map.len() - max;
        let kept: Map<String, Value> = std::mem::take(map).into_iter().take(max).collect();
        *map = kept;
        let earlier = map.get(DROPPED_COUNT_KEY).and_then(Value::as_u64).unwrap_or(0);
        map.insert(DROPPED_COUNT_KEY.into(), Value::from(earlier + dropped as u64));
    }
    for value in map.values_mut() {
        bound_value(value, depth);
    }
}

/// A span's attributes as they are stored.
pub fn bound_attributes(attributes: &mut Map<String, Value>) {
    bound_map(attributes, MAX_SPAN_ATTRIBUTES, 0);
}

/// A log record's body as it is stored: any value, bounded like an attribute value.
pub fn bound_body(body: &mut Value) {
    bound_value(body, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_strings_are_cut_and_marked() {
        let mut a = Map::new();
        a.insert("k".into(), Value::String("é".repeat(MAX_ATTRIBUTE_VALUE_CHARS + 10)));
        bound_attributes(&mut a);
        let s = a["k"].as_str().unwrap();
        assert!(s.ends_with("…[cut: 10 more characters]"), "{}", &s[s.len() - 40..]);
        assert_eq!(s.chars().filter(|c| *c == 'é').count(), MAX_ATTRIBUTE_VALUE_CHARS);
    }

    #[test]
    fn extra_attributes_are_dropped_and_counted() {
        let mut a: Map<String, Value> = (0..200).map(|i| (format!("a{i:03}"), json!(i))).collect();
        bound_attributes(&mut a);
        assert_eq!(a.len(), MAX_SPAN_ATTRIBUTES + 1);
        assert_eq!(a[DROPPED_COUNT_KEY], json!(200 - MAX_SPAN_ATTRIBUTES));
    }

    #[test]
    fn arrays_and_nesting_are_bounded() {
        let mut a = Map::new();
        a.insert("list".into(), json!((0..1000).collect::<Vec<_>>()));
        a.insert("deep".into(), json!({"a": {"b": {"c": {"d": {"e": 1}}}}}));
        a.insert("small".into(), json!({"x": [1, 2], "y": "z"}));
        bound_attributes(&mut a);
        let list = a["list"].as_array().unwrap();
        assert_eq!(list.len(), MAX_ATTRIBUTE_ITEMS + 1);
        assert_eq!(list.last().unwrap(), &json!(format!("…[cut: {} more items]", 1000 - MAX_ATTRIBUTE_ITEMS)));
        assert!(a["deep"]["a"]["b"]["c"]["d"].as_str().unwrap().starts_with("[cut: a map nested"), "{}", a["deep"]);
        assert_eq!(a["small"], json!({"x": [1, 2], "y": "z"}));
    }
}
