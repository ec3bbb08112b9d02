//! The API's handlers for model configs: each reads its request and calls its operation in
//! `crate::ops::model_configs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::ops::model_configs as ops;
use crate::ops::model_configs::*;
use crate::web::auth::{Auth, IngestAuth};
use crate::web::body::Valid;
use crate::web::query::{ApiPath, ValidQuery};
use crate::web::{ApiResult, AppState};

/// Publishes the next immutable version of a config (creating it, or un-archiving it).
#[utoipa::path(
    post, path = "/api/v1/model-configs", tag = "model-configs", operation_id = "publish_model_config",
    request_body = ModelConfigPublish,
    responses((status = 201, description = "The version published", body = ModelConfigVersionView))
)]
pub async fn publish(
    State(state): State<AppState>,
    Auth(owner): Auth,
    Valid(config): Valid<ModelConfigPublish>,
) -> ApiResult<(StatusCode, Json<ModelConfigVersionView>)> {
    ops::publish(&state, &owner, config).await.map(|(status, body)| (status, Json(body)))
}

/// Every config of the project, archived ones included.
#[utoipa::path(
    get, path = "/api/v1/model-configs", tag = "model-configs", operation_id = "list_model_configs",
    responses((status = 200, body = ModelConfigList))
)]
pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<ModelConfigList>> {
    ops::list(&state, &owner).await.map(Json)
}

/// One config with all its versions.
#[utoipa::path(
    get, path = "/api/v1/model-configs/{key}", tag = "model-configs", operation_id = "get_model_config",
    params(("key" = String, Path, description = KEY_PARAM, example = "summarizer")),
    responses((status = 200, body = ModelConfigDetail))
)]
pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<ModelConfigDetail>> {
    ops::detail(&state, &owner, key).await.map(Json)
}

/// One version of a config.
#[utoipa::path(
    get, path = "/api/v1/model-configs/{key}/versions/{version}", tag = "model-configs",
    operation_id = "get_model_config_version",
    params(("key" = String, Path, description = KEY_PARAM, example = "summarizer"), ("version" = i64, Path, minimum = 1, example = 1)),
    responses((status = 200, body = ModelConfigVersionView))
)]
pub async fn version(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(arg2): ApiPath<(String, i64)>,
) -> ApiResult<Json<ModelConfigVersionView>> {
    ops::version(&state, &owner, arg2).await.map(Json)
}

/// Hides a config from `GET /configs`; pinned versions keep answering.
#[utoipa::path(
    post, path = "/api/v1/model-configs/{key}/archive", tag = "model-configs", operation_id = "archive_model_config",
    params(("key" = String, Path, description = KEY_PARAM, example = "summarizer")),
    responses((status = 200, body = ModelConfigArchived))
)]
pub async fn archive(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<ModelConfigArchived>> {
    ops::archive(&state, &owner, key).await.map(Json)
}

/// The Fallom SDK's config sync: the latest version of every active config.
#[utoipa::path(
    get, path = "/configs", tag = "sdk", operation_id = "sdk_list_configs",
    responses((status = 200, body = SdkConfigs))
)]
pub async fn sdk_configs(State(state): State<AppState>, IngestAuth(owner): IngestAuth) -> ApiResult<Json<SdkConfigs>> {
    ops::sdk_configs(&state, &owner).await.map(Json)
}

/// The Fallom SDK's version pinning: one config version.
#[utoipa::path(
    get, path = "/configs/{key}/version/{version}", tag = "sdk", operation_id = "sdk_get_config_version",
    params(("key" = String, Path, description = KEY_PARAM, example = "summarizer"), ("version" = i64, Path, minimum = 1, example = 1)),
    responses((status = 200, body = SdkModelConfig))
)]
pub async fn sdk_config_version(
    State(state): State<AppState>,
    IngestAuth(owner): IngestAuth,
    ApiPath(arg2): ApiPath<(String, i64)>,
) -> ApiResult<Json<SdkModelConfig>> {
    ops::sdk_config_version(&state, &owner, arg2).await.map(Json)
}

/// The Fallom SDK's record of one assignment (repeats are counted, not stored twice). A config
/// or version that was never published is a 422; the SDK sends this fire-and-forget and
/// ignores the answer, so that never disturbs an app.
#[utoipa::path(
    post, path = "/sessions", tag = "sdk", operation_id = "sdk_record_session",
    request_body = SessionRecord,
    responses((status = 202, body = Recorded))
)]
pub async fn record_session(
    State(state): State<AppState>,
    IngestAuth(owner): IngestAuth,
    Valid(record): Valid<SessionRecord>,
) -> ApiResult<(StatusCode, Json<Recorded>)> {
    ops::record_session(&state, &owner, record).await.map(|(status, body)| (status, Json(body)))
}

/// Per variant: sessions, traces, latency, tokens, error rate and the sessions' latest custom
/// metrics averaged.
#[utoipa::path(
    get, path = "/api/v1/model-configs/{key}/summary", tag = "model-configs", operation_id = "model_config_summary",
    params(("key" = String, Path, description = KEY_PARAM, example = "summarizer"), SummaryParams),
    responses((status = 200, body = ModelConfigSummary))
)]
pub async fn summary(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
    ValidQuery(arg3): ValidQuery<SummaryParams>,
) -> ApiResult<Json<ModelConfigSummary>> {
    ops::summary(&state, &owner, key, arg3).await.map(Json)
}
