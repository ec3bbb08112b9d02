//! The API's handlers for alerts: each reads its request and calls its operation in
//! `crate::ops::alerts`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::ops::alerts as ops;
use crate::ops::alerts::*;
use crate::ops::prompts::Page;
use crate::web::auth::Auth;
use crate::web::body::{Valid, ValidOrEmpty};
use crate::web::query::{ApiPath, ValidQuery};
use crate::web::{ApiResult, AppState};

/// The project's alert channels.
#[utoipa::path(
    get, path = "/api/v1/alert-channels", tag = "alerts", operation_id = "list_alert_channels",
    responses((status = 200, body = AlertChannelList))
)]
pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<AlertChannelList>> {
    ops::list(&state, &owner).await.map(Json)
}

/// Creates a channel. A webhook channel's signing secret is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/alert-channels", tag = "alerts", operation_id = "create_alert_channel",
    request_body = NewAlertChannel,
    responses((status = 201, description = "Created; the secret is shown only here", body = AlertChannelWithSecret))
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(owner): Auth,
    Valid(new): Valid<NewAlertChannel>,
) -> ApiResult<(StatusCode, Json<AlertChannelWithSecret>)> {
    ops::create(&state, &owner, new).await.map(|(status, body)| (status, Json(body)))
}

/// One channel.
#[utoipa::path(
    get, path = "/api/v1/alert-channels/{id}", tag = "alerts", operation_id = "get_alert_channel",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = AlertChannel))
)]
pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AlertChannel>> {
    ops::detail(&state, &owner, id).await.map(Json)
}

/// Changes a channel's URL, filters or enabled state. Enabling clears the disabled reason and
/// resumes its pending deliveries.
#[utoipa::path(
    patch, path = "/api/v1/alert-channels/{id}", tag = "alerts", operation_id = "update_alert_channel",
    params(("id" = i64, Path, minimum = 1)),
    request_body = AlertChannelPatch,
    responses((status = 200, description = "The channel after the change", body = AlertChannel))
)]
pub async fn update(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
    Valid(patch): Valid<AlertChannelPatch>,
) -> ApiResult<Json<AlertChannel>> {
    ops::update(&state, &owner, id, patch).await.map(Json)
}

/// Enables a channel: clears why it was disabled and resumes its pending deliveries.
#[utoipa::path(
    post, path = "/api/v1/alert-channels/{id}/enable", tag = "alerts", operation_id = "enable_alert_channel",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = AlertChannel))
)]
pub async fn enable(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AlertChannel>> {
    ops::enable(&state, &owner, id).await.map(Json)
}

/// Disables a channel: nothing is sent to it (and nothing queued for it) until it is enabled.
#[utoipa::path(
    post, path = "/api/v1/alert-channels/{id}/disable", tag = "alerts", operation_id = "disable_alert_channel",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 200, body = AlertChannel))
)]
pub async fn disable(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AlertChannel>> {
    ops::disable(&state, &owner, id).await.map(Json)
}

/// Deletes a channel and its delivery history.
#[utoipa::path(
    delete, path = "/api/v1/alert-channels/{id}", tag = "alerts", operation_id = "delete_alert_channel",
    params(("id" = i64, Path, minimum = 1)),
    responses((status = 204, description = "Deleted"))
)]
pub async fn delete(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    ops::delete(&state, &owner, id).await
}

/// Queues a `test` event for this channel (whatever its filters).
#[utoipa::path(
    post, path = "/api/v1/alert-channels/{id}/test", tag = "alerts", operation_id = "test_alert_channel",
    params(("id" = i64, Path, minimum = 1)),
    responses(
        (status = 202, description = "Queued; see the channel's deliveries", body = QueuedTest),
        (status = 409, description = "The channel is disabled", body = crate::web::error::ErrorBody),
    )
)]
pub async fn test(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<QueuedTest>)> {
    ops::test(&state, &owner, id).await.map(|(status, body)| (status, Json(body)))
}

/// Gives a webhook channel a new signing secret. The old one stays valid for the grace period
/// (default a day): every message carries both signatures until then.
#[utoipa::path(
    post, path = "/api/v1/alert-channels/{id}/rotate-secret", tag = "alerts", operation_id = "rotate_alert_channel_secret",
    params(("id" = i64, Path, minimum = 1)),
    request_body(content = Option<SecretRotation>, description = "Optional; no body means the default grace period"),
    responses(
        (status = 200, description = "The new secret, shown only here", body = AlertChannelWithSecret),
        (status = 409, description = "Slack channels have no secret", body = crate::web::error::ErrorBody),
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
    ValidOrEmpty(rotation): ValidOrEmpty<SecretRotation>,
) -> ApiResult<Json<AlertChannelWithSecret>> {
    ops::rotate_secret(&state, &owner, id, rotation).await.map(Json)
}

/// A channel's deliveries, newest first: event, attempts, last answer, next attempt.
#[utoipa::path(
    get, path = "/api/v1/alert-channels/{id}/deliveries", tag = "alerts", operation_id = "list_alert_deliveries",
    params(("id" = i64, Path, minimum = 1), Page),
    responses((status = 200, body = AlertDeliveryPage))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(id): ApiPath<i64>,
    ValidQuery(arg3): ValidQuery<Page>,
) -> ApiResult<Json<AlertDeliveryPage>> {
    ops::deliveries(&state, &owner, id, arg3).await.map(Json)
}
