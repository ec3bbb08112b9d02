//! Custom business metrics: `POST /spans` (the Fallom SDK's `trace.span()`) records
//! `{config_key, session_id, data}` with the latest value of each field winning per session;
//! `GET /api/v1/metrics?config_key=...[&session_id=...]` reads them back.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::validate::limits::{MAX_ID_CHARS, MAX_METRIC_FIELDS, MAX_NAME_CHARS};
use crate::validate::{schemas, Fields, FromJson, Problems};
use crate::web::auth::{Auth, IngestAuth};
use crate::web::body::Valid;
use crate::web::error::ApiResult;
use crate::web::query::{FromQuery, QueryFields, ValidQuery};
use crate::web::AppState;

/// Custom metrics of one session; each field's latest value wins.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MetricsUpdate {
    #[schema(schema_with = schemas::name)]
    pub config_key: String,
    #[schema(schema_with = schemas::id)]
    pub session_id: String,
    /// 1 to 200 fields (names of 1 to 200 characters) with any JSON values; numbers are
    /// averaged per variant in the model-config summary.
    #[schema(schema_with = schemas::metric_data)]
    pub data: Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsRecorded {
    #[schema(example = "recorded")]
    pub status: &'static str,
    /// How many fields were stored.
    pub fields: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMetrics {
    pub session_id: String,
    /// Field name to latest value.
    #[schema(value_type = Object)]
    pub metrics: Map<String, Value>,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsView {
    pub config_key: String,
    pub sessions: Vec<SessionMetrics>,
}

impl FromJson for MetricsUpdate {
    const WHAT: &'static str = "metrics";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        let config_key = f.required_str("config_key", MAX_NAME_CHARS, problems);
        let session_id = f.required_str("session_id", MAX_ID_CHARS, problems);
        let data = match f.get("data") {
            None => {
                problems.push("data", "is required: an object of metric names to values");
                None
            }
            Some(_) => f.optional_object("data", problems),
        };
        if let Some(data) = data {
            if data.is_empty() || data.len() > MAX_METRIC_FIELDS {
                problems
                    .push("data", format!("must hold between 1 and {MAX_METRIC_FIELDS} fields, got {}", data.len()));
            }
            for name in data.keys().filter(|k| k.trim().is_empty() || k.chars().count() > MAX_ID_CHARS) {
                problems.push(format!("data.{name}"), format!("field names must be 1 to {MAX_ID_CHARS} characters"));
            }
        }
        Some(MetricsUpdate { config_key: config_key?, session_id: session_id?, data: data?.clone() })
    }
}

/// The Fallom SDK's custom metrics for a session.
#[utoipa::path(
    post, path = "/spans", tag = "sdk", operation_id = "sdk_record_metrics",
    request_body = MetricsUpdate,
    responses((status = 202, body = MetricsRecorded))
)]
pub async fn record(
    State(state): State<AppState>,
    IngestAuth(owner): IngestAuth,
    Valid(update): Valid<MetricsUpdate>,
) -> ApiResult<(StatusCode, Json<MetricsRecorded>)> {
    state.store.record_metrics(owner.project_id, &update.config_key, &update.session_id, &update.data).await?;
    Ok((StatusCode::ACCEPTED, Json(MetricsRecorded { status: "recorded", fields: update.data.len() })))
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// The config whose sessions to read.
    #[param(min_length = 1)]
    pub config_key: String,
    /// Only this session.
    pub session_id: Option<String>,
}

impl FromQuery for MetricsParams {
    fn read(q: &mut QueryFields) -> Self {
        MetricsParams {
            config_key: q.required_text("config_key").unwrap_or_default(),
            session_id: q.text("session_id"),
        }
    }
}

/// The current custom metrics of a config's sessions.
#[utoipa::path(
    get, path = "/api/v1/metrics", tag = "model-configs", operation_id = "read_metrics",
    params(MetricsParams),
    responses((status = 200, body = MetricsView))
)]
pub async fn read(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ValidQuery(MetricsParams { config_key, session_id }): ValidQuery<MetricsParams>,
) -> ApiResult<Json<MetricsView>> {
    let rows = state.store.session_metrics(owner.project_id, &config_key, session_id.as_deref()).await?;
    let mut sessions: BTreeMap<&str, (Map<String, Value>, i64)> = BTreeMap::new();
    for r in &rows {
        let entry = sessions.entry(&r.session_id).or_default();
        entry.0.insert(r.field.clone(), r.value.clone());
        entry.1 = entry.1.max(r.updated_at);
    }
    let sessions = sessions
        .into_iter()
        .map(|(session, (metrics, updated_at))| SessionMetrics { session_id: session.to_string(), metrics, updated_at })
        .collect();
    Ok(Json(MetricsView { config_key, sessions }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_missing_and_bad_fields() {
        let paths = |body: Value| -> Vec<String> {
            MetricsUpdate::from_json(&body)
                .err()
                .map(|e| e.problems.into_iter().map(|p| p.path).collect())
                .unwrap_or_default()
        };
        assert!(paths(json!({"config_key": "k", "session_id": "s", "data": {"score": 1}})).is_empty());
        assert_eq!(paths(json!({"config_key": "k", "session_id": "s"})), ["data"]);
        assert_eq!(paths(json!({"config_key": 1, "session_id": "s", "data": {}})), ["config_key", "data"]);
        assert_eq!(paths(json!({"config_key": "k", "session_id": "s", "data": [1]})), ["data"]);
        assert_eq!(paths(json!("x")), ["body"]);
    }
}
