//! `POST /api/v1/logs`: the DriftBalloon SDK's batch ingest. A batch is validated whole, then
//! stored in one transaction; the 202 answer is sent only after the commit.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::ingest::NewSample;
use crate::validate::limits::{MAX_MODEL_CHARS, MAX_NAME_CHARS};
use crate::validate::{schemas, Fields, Problems, ValidationError};
use crate::web::auth::IngestAuth;
use crate::web::body::JsonBody;
use crate::web::error::{ApiError, ApiResult, ProblemBody};
use crate::web::AppState;

/// A batch of model responses to store and check for drift.
#[derive(Debug, ToSchema)]
pub struct LogBatch {
    /// 1 to `max_logs_per_request` logs (1000 by default).
    #[schema(min_items = 1)]
    pub logs: Vec<LogEntry>,
}

/// One model response. Unknown fields are ignored.
#[derive(Debug, ToSchema)]
pub struct LogEntry {
    /// The prompt this response answers; created on first use.
    #[schema(schema_with = schemas::name)]
    pub prompt_name: String,
    /// The model's response, at most `max_text_chars` characters (100000 by default).
    pub response_text: String,
    /// The request, at most `max_text_chars` characters.
    pub input_text: Option<String>,
    #[schema(schema_with = schemas::optional_model)]
    pub model: Option<String>,
}

/// The answer to an accepted batch, sent after it is durably stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsAccepted {
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub count: usize,
    /// The stored samples' ids, in request order.
    pub log_ids: Vec<i64>,
}

/// Stores a batch of logs as pending drift samples.
#[utoipa::path(
    post, path = "/api/v1/logs", tag = "drift", operation_id = "post_logs",
    request_body = LogBatch,
    responses(
        (status = 202, description = "Stored; embedding and scoring follow in the background", body = LogsAccepted),
    )
)]
pub async fn post_logs(
    State(state): State<AppState>,
    IngestAuth(owner): IngestAuth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<LogsAccepted>)> {
    let limits = BatchLimits { max_logs: state.settings.max_logs_per_request, max_text: state.settings.max_text_chars };
    let batch = LogBatch::read(&body, limits).map_err(with_log_fields)?;
    let logs: Vec<NewSample> = batch.logs.into_iter().map(LogEntry::into_new_log).collect();
    let ids = state.store.insert_samples(owner.project_id, logs).await?;
    state.samples_arrived.notify_one();
    crate::observe::ingest_accepted("logs", ids.len());
    Ok((StatusCode::ACCEPTED, Json(LogsAccepted { status: "accepted", count: ids.len(), log_ids: ids })))
}

/// The server's configured limits on a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_logs: usize,
    pub max_text: usize,
}

impl LogBatch {
    /// Checks the whole batch and returns it, or every problem found.
    pub fn read(body: &Value, limits: BatchLimits) -> Result<LogBatch, ValidationError> {
        const WHAT: &str = "log batch";
        let Some(object) = body.as_object() else {
            return Err(ValidationError::single(
                WHAT,
                "logs",
                "request body must be a JSON object like {\"logs\": [...]}",
            ));
        };
        let logs = match object.get("logs") {
            Some(Value::Array(logs)) => logs,
            Some(_) => return Err(ValidationError::single(WHAT, "logs", "must be an array of log objects")),
            None => return Err(ValidationError::single(WHAT, "logs", "is required: send {\"logs\": [...]}")),
        };
        if logs.is_empty() {
            return Err(ValidationError::single(WHAT, "logs", "must contain at least one log"));
        }
        if logs.len() > limits.max_logs {
            let message = format!("has {} logs; at most {} are accepted per request", logs.len(), limits.max_logs);
            return Err(ValidationError::single(WHAT, "logs", message));
        }
        let mut problems = Problems::default();
        let entries: Vec<Option<LogEntry>> = logs
            .iter()
            .enumerate()
            .map(|(i, log)| LogEntry::read(log, &format!("logs[{i}]"), limits.max_text, &mut problems))
            .collect();
        problems.finish(WHAT, entries.into_iter().collect::<Option<Vec<_>>>().map(|logs| LogBatch { logs }))
    }
}

impl LogEntry {
    fn read(value: &Value, path: &str, max_text: usize, problems: &mut Problems) -> Option<LogEntry> {
        let f = Fields::of(value, path, problems)?;
        let prompt_name = f.required_str("prompt_name", MAX_NAME_CHARS, problems);
        let response_text = match f.get("response_text") {
            None => {
                problems.push(f.path("response_text"), "is required");
                None
            }
            Some(_) => f.optional_str("response_text", max_text, problems),
        };
        let input_text = f.optional_str("input_text", max_text, problems);
        let model = f.optional_str("model", MAX_MODEL_CHARS, problems);
        Some(LogEntry { prompt_name: prompt_name?, response_text: response_text?, input_text, model })
    }

    fn into_new_log(self) -> NewSample {
        NewSample {
            prompt_name: self.prompt_name,
            response_text: self.response_text,
            input_text: self.input_text,
            model: self.model,
        }
    }
}

/// The logs endpoint's 422 also names each problem's log `index` and `field` (clients of the
/// first release read those): `logs[3].prompt_name` is index 3, field `prompt_name`.
fn with_log_fields(err: ValidationError) -> ApiError {
    let problems = err
        .problems
        .into_iter()
        .map(|p| {
            let (index, field) = match p.path.strip_prefix("logs[").and_then(|rest| rest.split_once("]")) {
                Some((i, rest)) => {
                    let field = rest.strip_prefix('.').filter(|f| !f.is_empty()).unwrap_or("log");
                    (i.parse().ok(), field.to_string())
                }
                None => (None, p.path.clone()),
            };
            ProblemBody { path: p.path, message: p.message, index: Some(index), field: Some(field) }
        })
        .collect();
    ApiError::validation(err.what, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: BatchLimits = BatchLimits { max_logs: 5, max_text: 10 };

    fn problems(body: Value) -> Value {
        with_log_fields(LogBatch::read(&body, LIMITS).unwrap_err()).details
    }

    #[test]
    fn accepts_sdk_shape_with_nulls_and_unknown_fields() {
        let body = json!({"logs": [{"prompt_name": "p", "response_text": "hi", "input_text": null, "model": null, "extra": 1}]});
        let batch = LogBatch::read(&body, LIMITS).unwrap();
        assert_eq!(batch.logs[0].prompt_name, "p");
        assert_eq!(batch.logs[0].model, None);
    }

    #[test]
    fn names_field_and_index() {
        let d = problems(
            json!({"logs": [{"prompt_name": "p", "response_text": "ok"}, {"prompt_name": 3, "response_text": "ok"}]}),
        );
        assert_eq!(d["problems"][0]["index"], 1);
        assert_eq!(d["problems"][0]["field"], "prompt_name");
        assert_eq!(d["problems"][0]["path"], "logs[1].prompt_name");
        let d = problems(json!({"logs": [{"prompt_name": "p", "response_text": "this is too long"}]}));
        assert_eq!(d["problems"][0]["field"], "response_text");
        let d = problems(json!({"logs": [{"prompt_name": "x".repeat(201), "response_text": ""}]}));
        assert_eq!(d["problems"][0]["field"], "prompt_name");
        let d = problems(json!({"logs": [{"prompt_name": "p", "response_text": "a", "input_text": 5}]}));
        assert_eq!(d["problems"][0]["field"], "input_text");
        let d = problems(json!({"logs": ["x"]}));
        assert_eq!((d["problems"][0]["index"].clone(), d["problems"][0]["field"].clone()), (json!(0), json!("log")));
    }

    #[test]
    fn rejects_bad_batches() {
        assert_eq!(problems(json!([]))["problems"][0]["field"], "logs");
        assert_eq!(problems(json!({"logs": []}))["problems"][0]["index"], Value::Null);
        let many: Vec<Value> = (0..6).map(|_| json!({"prompt_name": "p", "response_text": "a"})).collect();
        assert_eq!(problems(json!({ "logs": many }))["problems"][0]["field"], "logs");
    }
}
