//! `GET/PATCH /api/v1/project`: the settings of the project the API key belongs to.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Auth;
use super::body::JsonBody;
use super::error::ApiResult;
use super::AppState;
use crate::validate::{Fields, Problems};

async fn project_json(state: &AppState, project_id: i64) -> ApiResult<Value> {
    let (name, capture_content) = state.store.project_settings(project_id).await?;
    Ok(json!({ "name": name, "capture_content": capture_content }))
}

pub async fn get(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(project_json(&state, owner.project_id).await?))
}

/// `{"capture_content": false}` stops storing request/response content from traces (and so
/// stops drift samples from traces) for this project; spans keep their timing, model and usage.
pub async fn patch(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut problems = Problems::default();
    let capture = Fields::of(&body, "", &mut problems).and_then(|f| {
        for key in f.object().keys().filter(|k| k.as_str() != "capture_content") {
            problems.push(key.clone(), "is not a project setting (known: capture_content)");
        }
        f.optional_bool("capture_content", &mut problems)
    });
    let capture = problems.finish("project settings", capture)?;
    if let Some(capture) = capture {
        state.store.set_capture_content(owner.project_id, capture).await?;
    }
    Ok(Json(project_json(&state, owner.project_id).await?))
}
