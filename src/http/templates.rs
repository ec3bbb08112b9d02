//! The API's handlers for templates: each reads its request and calls its operation in
//! `crate::ops::templates`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::ops::templates as ops;
use crate::ops::templates::*;
use crate::web::auth::{Auth, IngestAuth};
use crate::web::body::{JsonBody, Valid};
use crate::web::query::ApiPath;
use crate::web::{ApiResult, AppState};

/// The Fallom SDK's template sync: every version of every template, oldest first per key, so
/// the SDK ends up with the latest as current and still finds versions an A/B test pins.
#[utoipa::path(
    get, path = "/prompts", tag = "sdk", operation_id = "sdk_list_prompts",
    responses((status = 200, body = SdkPrompts))
)]
pub async fn sdk_prompts(State(state): State<AppState>, IngestAuth(owner): IngestAuth) -> ApiResult<Json<SdkPrompts>> {
    ops::sdk_prompts(&state, &owner).await.map(Json)
}

/// The Fallom SDK's A/B test sync: the latest version of every prompt A/B test.
#[utoipa::path(
    get, path = "/prompt-ab-tests", tag = "sdk", operation_id = "sdk_list_prompt_ab_tests",
    responses((status = 200, body = AbTestList))
)]
pub async fn sdk_ab_tests(State(state): State<AppState>, IngestAuth(owner): IngestAuth) -> ApiResult<Json<AbTestList>> {
    ops::sdk_ab_tests(&state, &owner).await.map(Json)
}

/// Publishes the next version of a prompt template.
#[utoipa::path(
    post, path = "/api/v1/prompt-templates", tag = "prompts", operation_id = "publish_prompt_template",
    request_body = TemplatePublish,
    responses((status = 201, body = TemplateView))
)]
pub async fn publish_template(
    State(state): State<AppState>,
    Auth(owner): Auth,
    Valid(t): Valid<TemplatePublish>,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    ops::publish_template(&state, &owner, t).await.map(|(status, body)| (status, Json(body)))
}

/// The latest version of each template.
#[utoipa::path(
    get, path = "/api/v1/prompt-templates", tag = "prompts", operation_id = "list_prompt_templates",
    responses((status = 200, body = TemplateList))
)]
pub async fn list_templates(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<TemplateList>> {
    ops::list_templates(&state, &owner).await.map(Json)
}

/// One template with all its versions.
#[utoipa::path(
    get, path = "/api/v1/prompt-templates/{key}", tag = "prompts", operation_id = "get_prompt_template",
    params(("key" = String, Path, description = "The template key", example = "onboarding")),
    responses((status = 200, body = TemplateDetail))
)]
pub async fn template_detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<TemplateDetail>> {
    ops::template_detail(&state, &owner, key).await.map(Json)
}

/// Publishes the next version of a prompt A/B test.
#[utoipa::path(
    post, path = "/api/v1/prompt-ab-tests", tag = "prompts", operation_id = "publish_prompt_ab_test",
    request_body = AbTestPublish,
    responses((status = 201, body = AbTestView))
)]
pub async fn publish_ab_test(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<AbTestView>)> {
    ops::publish_ab_test(&state, &owner, body).await.map(|(status, body)| (status, Json(body)))
}

/// The latest version of each prompt A/B test.
#[utoipa::path(
    get, path = "/api/v1/prompt-ab-tests", tag = "prompts", operation_id = "list_prompt_ab_tests",
    responses((status = 200, body = AbTestList))
)]
pub async fn list_ab_tests(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<AbTestList>> {
    ops::list_ab_tests(&state, &owner).await.map(Json)
}

/// One prompt A/B test with all its versions.
#[utoipa::path(
    get, path = "/api/v1/prompt-ab-tests/{key}", tag = "prompts", operation_id = "get_prompt_ab_test",
    params(("key" = String, Path, description = "The A/B test key", example = "onboarding-test")),
    responses((status = 200, body = AbTestDetail))
)]
pub async fn ab_test_detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<AbTestDetail>> {
    ops::ab_test_detail(&state, &owner, key).await.map(Json)
}
