//! `GET/PATCH /api/v1/project`: the settings of the project the API key belongs to: privacy
//! and retention.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::retention::RetentionDays;
use crate::store::KeyOwner;
use crate::store::{RetentionOverrides, RetentionPatch};
use crate::validate::{Fields, FromJson, Problems};
use crate::web::error::ApiResult;
use crate::web::AppState;

/// The longest age limit that can be set: a hundred years.
const MAX_RETENTION_DAYS: i64 = 36_500;
const RETENTION_FIELDS: [&str; 4] = ["samples_days", "traces_days", "sessions_days", "metrics_days"];

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectSettings {
    pub name: String,
    /// Whether request/response content of traces is stored (and so sampled for drift).
    pub capture_content: bool,
    /// The age limits in force for this project: its own where set, else the server's.
    pub retention: Retention,
    /// The server's defaults (`retention_*_days` in its config).
    pub retention_defaults: Retention,
}

/// Age limits in days (0 = keep forever). Drift events, baselines and the samples they refer
/// to are always kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retention {
    /// Logged responses (drift samples).
    pub samples_days: i64,
    /// Traces with their spans, and OTLP log records.
    pub traces_days: i64,
    /// Fallom session assignments, by last use.
    pub sessions_days: i64,
    /// Fallom custom metrics, by last update.
    pub metrics_days: i64,
}

impl From<RetentionDays> for Retention {
    fn from(d: RetentionDays) -> Self {
        Retention { samples_days: d.samples, traces_days: d.traces, sessions_days: d.sessions, metrics_days: d.metrics }
    }
}

/// Age limits to change: a number of days (0 = keep forever), or null for the server default.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body read by `ProjectPatch::read`
pub struct RetentionChange {
    #[schema(minimum = 0, maximum = 36500)]
    pub samples_days: Option<i64>,
    #[schema(minimum = 0, maximum = 36500)]
    pub traces_days: Option<i64>,
    #[schema(minimum = 0, maximum = 36500)]
    pub sessions_days: Option<i64>,
    #[schema(minimum = 0, maximum = 36500)]
    pub metrics_days: Option<i64>,
}

/// Settings to change; absent ones keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// `false` stops storing request/response content from traces (and so drift samples from
    /// traces); spans keep their timing, model and usage.
    #[schema(nullable = false)]
    pub capture_content: Option<bool>,
    #[serde(skip)]
    #[schema(value_type = Option<RetentionChange>, nullable = false)]
    pub retention: Option<RetentionPatch>,
}

impl FromJson for ProjectPatch {
    const WHAT: &'static str = "project settings";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["capture_content", "retention"], "a project setting", problems);
        for name in ["capture_content", "retention"] {
            if f.object().get(name).is_some_and(Value::is_null) {
                problems.push(name, "must not be null");
            }
        }
        let retention = f.get("retention").and_then(|v| read_retention(v, problems));
        Some(ProjectPatch { capture_content: f.optional_bool("capture_content", problems), retention })
    }
}

fn read_retention(value: &Value, problems: &mut Problems) -> Option<RetentionPatch> {
    let f = Fields::of(value, "retention", problems)?;
    f.refuse_unknown(&RETENTION_FIELDS, "a retention setting", problems);
    // absent: unchanged; null: back to the server default; a number: the project's own
    let days = |name: &str, problems: &mut Problems| match f.object().get(name) {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => f.optional_int(name, 0, MAX_RETENTION_DAYS, problems).map(Some),
    };
    Some(RetentionPatch {
        samples_days: days("samples_days", problems),
        traces_days: days("traces_days", problems),
        sessions_days: days("sessions_days", problems),
        metrics_days: days("metrics_days", problems),
    })
}

async fn settings(state: &AppState, project_id: i64) -> ApiResult<ProjectSettings> {
    let (name, capture_content) = state.store.project_settings(project_id).await?;
    let overrides: RetentionOverrides = state.store.retention_overrides(project_id).await?;
    let defaults = RetentionDays::defaults(&state.settings);
    Ok(ProjectSettings {
        name,
        capture_content,
        retention: defaults.with(&overrides).into(),
        retention_defaults: defaults.into(),
    })
}

/// The key's project and its settings.
pub async fn get(state: &AppState, owner: &KeyOwner) -> ApiResult<ProjectSettings> {
    settings(state, owner.project_id).await
}

/// Changes the project's settings.
pub async fn patch(state: &AppState, owner: &KeyOwner, patch: ProjectPatch) -> ApiResult<ProjectSettings> {
    if let Some(capture) = patch.capture_content {
        state.store.set_capture_content(owner.project_id, capture).await?;
        // cached keys carry the old setting; other replicas see it within `key_cache_ttl_secs`
        state.guards.keys.forget_project(owner.project_id);
    }
    if let Some(retention) = patch.retention.filter(|r| !r.is_empty()) {
        state.store.set_retention(owner.project_id, &retention).await?;
    }
    settings(state, owner.project_id).await
}
