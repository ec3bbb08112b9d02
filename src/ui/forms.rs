//! Turning posted HTML forms into the JSON bodies the REST API validates, so a form and an API
//! call meet the same rules and the same field paths (`variants[1].weight`) name problems.

use serde_json::Value;

use crate::validate::Problem;
use crate::web::ApiError;

/// Rows of a repeating group of fields: `{name}{i}` for each of `names`, e.g. `variant_model_0`,
/// `variant_weight_0`, .... Each row holds the values in the order of `names`. Trailing rows
/// with every field empty are dropped, so row `i` stays item `i` in the problems' paths.
pub fn indexed_rows(fields: &[(String, String)], names: &[&str], max_rows: usize) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (field, value) in fields {
        let Some((column, index)) =
            names.iter().enumerate().find_map(|(c, n)| Some((c, field.strip_prefix(n)?.parse::<usize>().ok()?)))
        else {
            continue;
        };
        if index >= max_rows {
            continue;
        }
        if rows.len() <= index {
            rows.resize(index + 1, vec![String::new(); names.len()]);
        }
        rows[index][column] = value.trim().to_string();
    }
    while rows.last().is_some_and(|r| r.iter().all(String::is_empty)) {
        rows.pop();
    }
    rows
}

/// The value of the last field named `name`, or "".
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().rev().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
}

/// Typed text as a JSON number when it is one, else as text, so the API's validator names the
/// field ("must be a number") instead of the form guessing.
pub fn number_or_text(text: &str) -> Value {
    let text = text.trim();
    serde_json::from_str::<serde_json::Number>(text).map(Value::Number).unwrap_or_else(|_| Value::String(text.into()))
}

/// The field problems of a 422 from a REST handler (empty for any other error).
pub fn problems_of(e: &ApiError) -> Vec<Problem> {
    e.details["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(Problem { path: p["path"].as_str()?.to_string(), message: p["message"].as_str()?.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn rows_keep_their_index_and_lose_trailing_blanks() {
        let f = pairs(&[
            ("m_0", "gpt"),
            ("w_0", "70"),
            ("m_1", ""),
            ("w_1", "30"),
            ("m_2", ""),
            ("w_2", " "),
            ("m_999", "x"),
            ("csrf_token", "t"),
        ]);
        assert_eq!(indexed_rows(&f, &["m_", "w_"], 100), vec![vec!["gpt", "70"], vec!["", "30"]]);
        assert_eq!(field(&f, "csrf_token"), "t");
        assert_eq!(field(&f, "absent"), "");
    }

    #[test]
    fn numbers_stay_numbers_and_text_stays_text() {
        assert_eq!(number_or_text(" 70 "), serde_json::json!(70));
        assert_eq!(number_or_text("0.5"), serde_json::json!(0.5));
        assert_eq!(number_or_text("seventy"), serde_json::json!("seventy"));
    }
}
