//! The API's handlers for project: each reads its request and calls its operation in
//! `crate::ops::project`.

use axum::extract::State;
use axum::Json;

use crate::ops::project as ops;
use crate::ops::project::*;
use crate::web::auth::Auth;
use crate::web::body::Valid;
use crate::web::{ApiResult, AppState};

/// The key's project and its settings.
#[utoipa::path(
    get, path = "/api/v1/project", tag = "project", operation_id = "get_project",
    responses((status = 200, body = ProjectSettings))
)]
pub async fn get(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<ProjectSettings>> {
    ops::get(&state, &owner).await.map(Json)
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
    ops::patch(&state, &owner, patch).await.map(Json)
}
