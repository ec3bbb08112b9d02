//! Field-by-field validation of JSON request bodies that reports every problem at once, each
//! with the path of the field it is about (`variants[1].weight`), so a client can fix a whole
//! request in one go. The HTTP layer turns a [`ValidationError`] into a 422.

use serde_json::{Map, Value};

/// Longest prompt name (drift prompts, config keys, template keys) the API accepts.
pub const MAX_PROMPT_NAME_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// A request that failed validation: what it was, and everything wrong with it.
#[derive(Debug)]
pub struct ValidationError {
    pub what: &'static str,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The error for a request that could not be read; callers reach this only after a
    /// problem was recorded, but an empty list still yields a meaningful error.
    pub fn fail(mut self, what: &'static str) -> ValidationError {
        if self.0.is_empty() {
            self.push("body", "is not valid");
        }
        ValidationError { what, problems: self.0 }
    }

    /// `value` if nothing was found wrong, else the error describing `what` was invalid.
    pub fn finish<T>(self, what: &'static str, value: T) -> Result<T, ValidationError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ValidationError { what, problems: self.0 })
        }
    }
}

/// What a NUL character in client text becomes. Postgres cannot store NUL in TEXT, so it is
/// replaced on every backend alike (the text is otherwise kept whole).
pub const NUL_REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// Replaces NUL characters in a string, in place; cheap when there are none.
pub fn replace_nul_in(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', &NUL_REPLACEMENT.to_string());
    }
}

/// Replaces NUL characters in every string and key of a JSON document.
pub fn replace_nul(value: &mut Value) {
    match value {
        Value::String(s) => replace_nul_in(s),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut key, v) in entries {
                    replace_nul_in(&mut key);
                    map.insert(key, v);
                }
            }
            map.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads typed fields from one JSON object, recording a problem for each bad one.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// `None` (with a problem recorded) when `value` is not an object. `prefix` is the
    /// object's own path ("" for the request body).
    pub fn of(value: &'a Value, prefix: &str, problems: &mut Problems) -> Option<Fields<'a>> {
        match value.as_object() {
            Some(object) => Some(Fields { object, prefix: prefix.to_string() }),
            None => {
                let path = if prefix.is_empty() { "body" } else { prefix };
                problems.push(path, format!("must be a JSON object, got {}", type_name(value)));
                None
            }
        }
    }

    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The field's value; JSON null counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    pub fn object(&self) -> &'a Map<String, Value> {
        self.object
    }

    fn wrong_type(&self, name: &str, expected: &str, got: &Value, problems: &mut Problems) {
        problems.push(self.path(name), format!("must be {expected}, got {}", type_name(got)));
    }

    pub fn optional_str(&self, name: &str, max_chars: usize, problems: &mut Problems) -> Option<String> {
        match self.get(name)? {
            Value::String(s) if s.chars().count() > max_chars => {
                problems.push(self.path(name), format!("is longer than {max_chars} characters"));
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(name, "a string", other, problems);
                None
            }
        }
    }

    /// A string that must be present and not blank.
    pub fn required_str(&self, name: &str, max_chars: usize, problems: &mut Problems) -> Option<String> {
        if self.get(name).is_none() {
            problems.push(self.path(name), "is required");
            return None;
        }
        let value = self.optional_str(name, max_chars, problems)?;
        if value.trim().is_empty() {
            problems.push(self.path(name), "must not be empty");
            return None;
        }
        Some(value)
    }

    /// An integer (a float with no fraction, as some clients send, is accepted).
    pub fn optional_i64(&self, name: &str, min: i64, problems: &mut Problems) -> Option<i64> {
        let value = self.get(name)?;
        let number = match value {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            _ => None,
        };
        match number {
            Some(n) if n < min => {
                problems.push(self.path(name), format!("must be at least {min}"));
                None
            }
            Some(n) => Some(n),
            None => {
                self.wrong_type(name, "an integer", value, problems);
                None
            }
        }
    }

    pub fn required_i64(&self, name: &str, min: i64, problems: &mut Problems) -> Option<i64> {
        if self.get(name).is_none() {
            problems.push(self.path(name), "is required");
            return None;
        }
        self.optional_i64(name, min, problems)
    }

    pub fn optional_f64(&self, name: &str, problems: &mut Problems) -> Option<f64> {
        match self.get(name)? {
            Value::Number(n) => n.as_f64(),
            other => {
                self.wrong_type(name, "a number", other, problems);
                None
            }
        }
    }

    pub fn optional_bool(&self, name: &str, problems: &mut Problems) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(name, "true or false", other, problems);
                None
            }
        }
    }

    pub fn optional_object(&self, name: &str, problems: &mut Problems) -> Option<&'a Map<String, Value>> {
        match self.get(name)? {
            Value::Object(m) => Some(m),
            other => {
                self.wrong_type(name, "an object", other, problems);
                None
            }
        }
    }

    pub fn optional_array(&self, name: &str, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        match self.get(name)? {
            Value::Array(a) => Some(a),
            other => {
                self.wrong_type(name, "an array", other, problems);
                None
            }
        }
    }

    pub fn required_array(&self, name: &str, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        if self.get(name).is_none() {
            problems.push(self.path(name), "is required");
            return None;
        }
        self.optional_array(name, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_replaced_everywhere() {
        let mut v = json!({"a\u{0}": ["x\u{0}y", {"k": "\u{0}"}], "n": 1});
        replace_nul(&mut v);
        assert_eq!(v, json!({"a\u{FFFD}": ["x\u{FFFD}y", {"k": "\u{FFFD}"}], "n": 1}));
    }
}
