//! `POST /api/v1/logs`: the DriftBalloon SDK's batch ingest. A batch is validated whole, then
//! stored in one transaction; the 202 answer is sent only after the commit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult, MAX_REPORTED_PROBLEMS};
use super::AppState;
use crate::store::NewLog;
use crate::validate::{type_name, MAX_PROMPT_NAME_CHARS};

const MAX_MODEL_CHARS: usize = 200;

pub async fn post_logs(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let logs = validate_batch(&body, state.settings.max_logs_per_request, state.settings.max_text_chars)?;
    let ids = state.store.insert_logs(owner.project_id, &logs).await?;
    state.samples_arrived.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted", "count": ids.len(), "log_ids": ids }))))
}

/// One thing wrong with one field of one log.
struct Problem {
    index: Option<usize>,
    field: &'static str,
    message: String,
}

impl Problem {
    fn path(&self) -> String {
        match self.index {
            Some(i) => format!("logs[{i}].{}", self.field),
            None => self.field.to_string(),
        }
    }
}

fn validation_error(problems: Vec<Problem>) -> ApiError {
    let first = format!("{}: {}", problems[0].path(), problems[0].message);
    let message = match problems.len() {
        1 => format!("invalid log batch: {first}"),
        n => format!("invalid log batch: {first} (and {} more problems)", n - 1),
    };
    let listed: Vec<Value> = problems
        .iter()
        .take(MAX_REPORTED_PROBLEMS)
        .map(|p| json!({ "index": p.index, "field": p.field, "path": p.path(), "message": p.message }))
        .collect();
    ApiError::unprocessable("validation_failed", message)
        .with_details(json!({ "problems": listed, "problem_count": problems.len() }))
}

/// Checks the whole batch and returns it ready to store, or every problem found.
pub fn validate_batch(body: &Value, max_logs: usize, max_text_chars: usize) -> ApiResult<Vec<NewLog>> {
    let top_level = |message: String| validation_error(vec![Problem { index: None, field: "logs", message }]);
    let Some(object) = body.as_object() else {
        return Err(top_level("request body must be a JSON object like {\"logs\": [...]}".into()));
    };
    let logs = match object.get("logs") {
        Some(Value::Array(logs)) => logs,
        Some(_) => return Err(top_level("must be an array of log objects".into())),
        None => return Err(top_level("is required: send {\"logs\": [...]}".into())),
    };
    if logs.is_empty() {
        return Err(top_level("must contain at least one log".into()));
    }
    if logs.len() > max_logs {
        return Err(top_level(format!("has {} logs; at most {max_logs} are accepted per request", logs.len())));
    }

    let mut problems = Vec::new();
    let mut valid = Vec::with_capacity(logs.len());
    for (index, log) in logs.iter().enumerate() {
        match log.as_object() {
            Some(fields) => {
                if let Some(log) = validate_log(index, fields, max_text_chars, &mut problems) {
                    valid.push(log);
                }
            }
            None => {
                problems.push(Problem { index: Some(index), field: "log", message: "must be a JSON object".into() })
            }
        }
    }
    if problems.is_empty() {
        Ok(valid)
    } else {
        Err(validation_error(problems))
    }
}

fn validate_log(
    index: usize,
    fields: &Map<String, Value>,
    max_text: usize,
    problems: &mut Vec<Problem>,
) -> Option<NewLog> {
    let before = problems.len();
    let mut problem =
        |field: &'static str, message: String| problems.push(Problem { index: Some(index), field, message });

    let prompt_name = match fields.get("prompt_name") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            problem("prompt_name", "must not be empty".into());
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_PROMPT_NAME_CHARS => {
            problem("prompt_name", format!("is longer than {MAX_PROMPT_NAME_CHARS} characters"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => {
            problem("prompt_name", "is required".into());
            None
        }
        Some(other) => {
            problem("prompt_name", format!("must be a string, got {}", type_name(other)));
            None
        }
    };
    let response_text = match fields.get("response_text") {
        Some(Value::String(s)) if s.chars().count() > max_text => {
            problem("response_text", format!("is longer than {max_text} characters"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => {
            problem("response_text", "is required".into());
            None
        }
        Some(other) => {
            problem("response_text", format!("must be a string, got {}", type_name(other)));
            None
        }
    };
    let mut optional_text = |field: &'static str, max: usize| match fields.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > max => {
            problem(field, format!("is longer than {max} characters"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problem(field, format!("must be a string or null, got {}", type_name(other)));
            None
        }
    };
    let input_text = optional_text("input_text", max_text);
    let model = optional_text("model", MAX_MODEL_CHARS);

    if problems.len() > before {
        return None;
    }
    Some(NewLog { prompt_name: prompt_name?, response_text: response_text?, input_text, model })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(body: Value) -> Value {
        validate_batch(&body, 5, 10).unwrap_err().details
    }

    #[test]
    fn accepts_sdk_shape_with_nulls_and_unknown_fields() {
        let body = json!({"logs": [{"prompt_name": "p", "response_text": "hi", "input_text": null, "model": null, "extra": 1}]});
        let logs = validate_batch(&body, 5, 10).unwrap();
        assert_eq!(logs[0].prompt_name, "p");
        assert_eq!(logs[0].model, None);
    }

    #[test]
    fn names_field_and_index() {
        let d = problems(
            json!({"logs": [{"prompt_name": "p", "response_text": "ok"}, {"prompt_name": 3, "response_text": "ok"}]}),
        );
        assert_eq!(d["problems"][0]["index"], 1);
        assert_eq!(d["problems"][0]["field"], "prompt_name");
        let d = problems(json!({"logs": [{"prompt_name": "p", "response_text": "this is too long"}]}));
        assert_eq!(d["problems"][0]["field"], "response_text");
        let d = problems(json!({"logs": [{"prompt_name": "x".repeat(201), "response_text": ""}]}));
        assert_eq!(d["problems"][0]["field"], "prompt_name");
        let d = problems(json!({"logs": [{"prompt_name": "p", "response_text": "a", "input_text": 5}]}));
        assert_eq!(d["problems"][0]["field"], "input_text");
    }

    #[test]
    fn rejects_bad_batches() {
        assert_eq!(problems(json!([]))["problems"][0]["field"], "logs");
        assert_eq!(problems(json!({"logs": []}))["problems"][0]["field"], "logs");
        let many: Vec<Value> = (0..6).map(|_| json!({"prompt_name": "p", "response_text": "a"})).collect();
        assert_eq!(problems(json!({ "logs": many }))["problems"][0]["field"], "logs");
    }
}
