//! `GET/PATCH /api/v1/project`: the settings of the project the API key belongs to.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Auth;
use super::body::Valid;
use super::error::ApiResult;
use super::AppState;
use crate::validate::{Fields, FromJson, Problems};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectSettings {
    pub name: String,
    /// Whether request/response content of traces is stored (and so sampled for drift).
    pub capture_content: bool,
}

/// Settings to change; absent ones keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatch {
    /// `false` stops storing request/response content from traces (and so drift samples from
    /// traces); spans keep their timing, model and usage.
    #[schema(nullable = false)]
    pub capture_content: Option<bool>,
}

impl FromJson for ProjectPatch {
    const WHAT: &'static str = "project settings";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["capture_content"], "a project setting", problems);
        if f.object().get("capture_content").is_some_and(Value::is_null) {
            problems.push("capture_content", "must be true or false, got null");
        }
        Some(ProjectPatch { capture_content: f.optional_bool("capture_content", problems) })
    }
}

async fn settings(state: &AppState, project_id: i64) -> ApiResult<ProjectSettings> {
    let (name, capture_content) = state.store.project_settings(project_id).await?;
    Ok(ProjectSettings { name, capture_content })
}

/// The key's project and its settings.
#[utoipa::path(
    get, path = "/api/v1/project", tag = "project", operation_id = "get_project",
    responses((status = 200, body = ProjectSettings))
)]
pub async fn get(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<ProjectSettings>> {
    Ok(Json(settings(&state, owner.project_id).await?))
}

/// Changes the project's settings.
#[utoipa::path(
    patch, path = "/api/v1/project", tag = "project", operation_id = "patch_project",
    request_body = ProjectPatch,
    responses((status = 200, description = "The settings after the change", body = ProjectSettings))
)]
pub async fn patch(
    State(state): State<AppState>,
    Auth(owner): Auth,
    Valid(patch): Valid<ProjectPatch>,
) -> ApiResult<Json<ProjectSettings>> {
    if let Some(capture) = patch.capture_content {
        state.store.set_capture_content(owner.project_id, capture).await?;
    }
    Ok(Json(settings(&state, owner.project_id).await?))
}
