//! Custom business metrics: `POST /spans` (the Fallom SDK's `trace.span()`) records
//! `{config_key, session_id, data}` with the latest value of each field winning per session;
//! `GET /api/v1/metrics?config_key=...[&session_id=...]` reads them back.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Auth;
use super::body::JsonBody;
use super::error::ApiResult;
use super::query::ApiQuery;
use super::AppState;
use crate::validate::{Fields, Problems, ValidationError, MAX_PROMPT_NAME_CHARS};

const MAX_ID_CHARS: usize = 200;
const MAX_FIELDS: usize = 200;
const MAX_FIELD_NAME_CHARS: usize = 200;

struct MetricsUpdate {
    config_key: String,
    session_id: String,
    data: Map<String, Value>,
}

fn parse_update(body: &Value) -> Result<MetricsUpdate, ValidationError> {
    let mut problems = Problems::default();
    let mut read = || {
        let f = Fields::of(body, "", &mut problems)?;
        let config_key = f.required_str("config_key", MAX_PROMPT_NAME_CHARS, &mut problems);
        let session_id = f.required_str("session_id", MAX_ID_CHARS, &mut problems);
        let data = match f.get("data") {
            None => {
                problems.push("data", "is required: an object of metric names to values");
                None
            }
            Some(_) => f.optional_object("data", &mut problems),
        };
        if let Some(data) = data {
            if data.is_empty() || data.len() > MAX_FIELDS {
                problems.push("data", format!("must hold between 1 and {MAX_FIELDS} fields, got {}", data.len()));
            }
            if let Some(name) = data.keys().find(|k| k.trim().is_empty() || k.chars().count() > MAX_FIELD_NAME_CHARS) {
                problems.push(
                    format!("data.{name}"),
                    format!("field names must be 1 to {MAX_FIELD_NAME_CHARS} characters"),
                );
            }
        }
        let update = MetricsUpdate { config_key: config_key?, session_id: session_id?, data: data?.clone() };
        Some(update)
    };
    let parsed = read();
    match parsed {
        Some(update) if problems.is_empty() => Ok(update),
        _ => Err(problems.fail("metrics")),
    }
}

pub async fn record(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let update = parse_update(&body)?;
    state.store.record_metrics(owner.project_id, &update.config_key, &update.session_id, &update.data).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "recorded", "fields": update.data.len() }))))
}

#[derive(Deserialize)]
pub struct MetricsQuery {
    config_key: String,
    session_id: Option<String>,
}

/// `{"config_key", "sessions": [{"session_id", "metrics": {field: value}, "updated_at"}]}`
pub async fn read(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> ApiResult<Json<Value>> {
    let rows = state.store.session_metrics(owner.project_id, &q.config_key, q.session_id.as_deref()).await?;
    let mut sessions: BTreeMap<&str, (Map<String, Value>, i64)> = BTreeMap::new();
    for r in &rows {
        let entry = sessions.entry(&r.session_id).or_default();
        entry.0.insert(r.field.clone(), r.value.clone());
        entry.1 = entry.1.max(r.updated_at);
    }
    let list: Vec<Value> = sessions
        .into_iter()
        .map(
            |(session, (metrics, updated))| json!({ "session_id": session, "metrics": metrics, "updated_at": updated }),
        )
        .collect();
    Ok(Json(json!({ "config_key": q.config_key, "sessions": list })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_and_bad_fields() {
        let paths = |body: Value| -> Vec<String> {
            parse_update(&body).err().map(|e| e.problems.into_iter().map(|p| p.path).collect()).unwrap_or_default()
        };
        assert!(paths(json!({"config_key": "k", "session_id": "s", "data": {"score": 1}})).is_empty());
        assert_eq!(paths(json!({"config_key": "k", "session_id": "s"})), ["data"]);
        assert_eq!(paths(json!({"config_key": 1, "session_id": "s", "data": {}})), ["config_key", "data"]);
        assert_eq!(paths(json!({"config_key": "k", "session_id": "s", "data": [1]})), ["data"]);
        assert_eq!(paths(json!("x")), ["body"]);
    }
}
