//! The API's handlers for prompts: each reads its request and calls its operation in
//! `crate::ops::prompts`.

use axum::extract::State;
use axum::Json;

use crate::ops::prompts as ops;
use crate::ops::prompts::*;
use crate::web::auth::Auth;
use crate::web::body::Valid;
use crate::web::query::{ApiPath, ValidQuery};
use crate::web::{ApiResult, AppState};

/// Every prompt of the key's project, by name.
#[utoipa::path(
    get, path = "/api/v1/prompts", tag = "drift", operation_id = "list_prompts",
    responses((status = 200, body = PromptList))
)]
pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<PromptList>> {
    ops::list(&state, &owner).await.map(Json)
}

/// One prompt, with its sample counts.
#[utoipa::path(
    get, path = "/api/v1/prompts/{name}", tag = "drift", operation_id = "get_prompt",
    params(("name" = String, Path, description = "The prompt name, percent-encoded", example = "support-agent")),
    responses((status = 200, body = PromptDetail))
)]
pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PromptDetail>> {
    ops::detail(&state, &owner, name).await.map(Json)
}

/// Changes a prompt's settings; every problem is listed in one 422.
#[utoipa::path(
    patch, path = "/api/v1/prompts/{name}", tag = "drift", operation_id = "patch_prompt",
    params(("name" = String, Path, description = "The prompt name, percent-encoded", example = "support-agent")),
    request_body = PromptSettingsPatch,
    responses((status = 200, description = "The prompt after the change", body = PromptDetail))
)]
pub async fn patch(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
    Valid(patch): Valid<PromptSettingsPatch>,
) -> ApiResult<Json<PromptDetail>> {
    ops::patch(&state, &owner, name, patch).await.map(Json)
}

/// Makes the active version learn its baseline again from its next samples, and sets the
/// prompt's status back to `active`.
#[utoipa::path(
    post, path = "/api/v1/prompts/{name}/baseline/reset", tag = "drift", operation_id = "reset_baseline",
    params(("name" = String, Path, description = "The prompt name, percent-encoded", example = "support-agent")),
    responses((status = 200, description = "The prompt after the reset", body = PromptDetail))
)]
pub async fn reset_baseline(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<PromptDetail>> {
    ops::reset_baseline(&state, &owner, name).await.map(Json)
}

/// A prompt's drift events with their scores, oldest first within the page.
#[utoipa::path(
    get, path = "/api/v1/prompts/{name}/drift-events", tag = "drift", operation_id = "list_drift_events",
    params(("name" = String, Path, description = "The prompt name, percent-encoded", example = "support-agent"), Page),
    responses((status = 200, body = DriftEventPage))
)]
pub async fn drift_events(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
    ValidQuery(arg3): ValidQuery<Page>,
) -> ApiResult<Json<DriftEventPage>> {
    ops::drift_events(&state, &owner, name, arg3).await.map(Json)
}

/// A prompt's samples with their state and scores, newest first.
#[utoipa::path(
    get, path = "/api/v1/prompts/{name}/samples", tag = "drift", operation_id = "list_samples",
    params(("name" = String, Path, description = "The prompt name, percent-encoded", example = "support-agent"), Page),
    responses((status = 200, body = SamplePage))
)]
pub async fn samples(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
    ValidQuery(arg3): ValidQuery<Page>,
) -> ApiResult<Json<SamplePage>> {
    ops::samples(&state, &owner, name, arg3).await.map(Json)
}
