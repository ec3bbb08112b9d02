//! Field-by-field validation of JSON request bodies that reports every problem at once, each
//! with the path of the field it is about (`variants[1].weight`), so a client can fix a whole
//! request in one go. Every typed request body implements [`FromJson`] with these readers; the
//! HTTP layer turns a [`ValidationError`] into the one 422 shape of the API. Limits live in
//! [`limits`]; checks shared by several resources live in [`shared`].

pub mod limits;
pub mod schemas;
pub mod shared;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
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

impl ValidationError {
    /// A request with one problem.
    pub fn single(what: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { what, problems: vec![Problem { path: path.into(), message: message.into() }] }
    }
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

    /// `value` if it was read and nothing was found wrong, else the error describing `what`
    /// was invalid (with a generic problem if a reader failed without recording one).
    pub fn finish<T>(mut self, what: &'static str, value: Option<T>) -> Result<T, ValidationError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => {
                if self.0.is_empty() {
                    self.push("body", "is not valid");
                }
                Err(ValidationError { what, problems: self.0 })
            }
        }
    }
}

/// A typed request body read from JSON by hand, so that *every* problem is reported (serde
/// stops at the first). Its OpenAPI schema is derived from the same struct.
pub trait FromJson: Sized {
    /// What the body is, for the 422 message ("log batch", "model config").
    const WHAT: &'static str;

    /// Reads the body, recording each problem; `None` if it cannot be built.
    fn read(value: &Value, problems: &mut Problems) -> Option<Self>;

    fn from_json(value: &Value) -> Result<Self, ValidationError> {
        let mut problems = Problems::default();
        let parsed = Self::read(value, &mut problems);
        problems.finish(Self::WHAT, parsed)
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

/// The exact integer a JSON number holds, if it holds one: an integer literal, or a float with
/// no fraction whose magnitude is below 2^53 (so the conversion is exact).
pub fn whole_number(value: &Value) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let n = value.as_number()?;
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < EXACT).map(|f| f as i64))
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

    /// An integer from `min` to `max`. A float with no fraction (as some clients send) counts
    /// when it is exact (below 2^53); `1e300` is out of range, never clamped.
    pub fn optional_int(&self, name: &str, min: i64, max: i64, problems: &mut Problems) -> Option<i64> {
        let value = self.get(name)?;
        let integral = value.as_f64().is_some_and(|f| f.fract() == 0.0);
        match whole_number(value) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ if integral => {
                problems.push(self.path(name), format!("must be an integer from {min} to {max}"));
                None
            }
            _ => {
                self.wrong_type(name, &format!("an integer from {min} to {max}"), value, problems);
                None
            }
        }
    }

    pub fn required_int(&self, name: &str, min: i64, max: i64, problems: &mut Problems) -> Option<i64> {
        if self.get(name).is_none() {
            problems.push(self.path(name), "is required");
            return None;
        }
        self.optional_int(name, min, max, problems)
    }

    /// A finite number from `min` to `max` (inclusive).
    pub fn optional_number(&self, name: &str, min: f64, max: f64, problems: &mut Problems) -> Option<f64> {
        match self.get(name)? {
            Value::Number(n) => match n.as_f64() {
                Some(f) if (min..=max).contains(&f) => Some(f),
                _ => {
                    problems.push(self.path(name), format!("must be a number from {min} to {max}"));
                    None
                }
            },
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

    /// An array of at most `max_items` items.
    pub fn optional_array(&self, name: &str, max_items: usize, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        match self.get(name)? {
            Value::Array(a) if a.len() > max_items => {
                problems.push(self.path(name), format!("has {} items; at most {max_items} are accepted", a.len()));
                None
            }
            Value::Array(a) => Some(a),
            other => {
                self.wrong_type(name, "an array", other, problems);
                None
            }
        }
    }

    pub fn required_array(&self, name: &str, max_items: usize, problems: &mut Problems) -> Option<&'a Vec<Value>> {
        if self.get(name).is_none() {
            problems.push(self.path(name), "is required");
            return None;
        }
        self.optional_array(name, max_items, problems)
    }

    /// Records a problem for every key of the object not in `known`.
    pub fn refuse_unknown(&self, known: &[&str], what: &str, problems: &mut Problems) {
        for key in self.object.keys().filter(|k| !known.contains(&k.as_str())) {
            problems.push(self.path(key), format!("is not {what} (known: {})", known.join(", ")));
        }
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
