//! The API's handlers for model prices: each reads its request and calls its operation in
//! `crate::ops::prices`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::ops::prices as ops;
use crate::ops::prices::*;
use crate::web::auth::Auth;
use crate::web::body::Valid;
use crate::web::query::ApiPath;
use crate::web::{ApiResult, AppState};

/// Every model with a price for this project: the shipped list with the project's own prices
/// over it.
#[utoipa::path(
    get, path = "/api/v1/prices", tag = "cost", operation_id = "list_prices",
    responses((status = 200, body = PriceList))
)]
pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<PriceList>> {
    ops::list(&state, &owner).await.map(Json)
}

/// Sets the project's own price of a model (replacing the shipped one of that id, or adding
/// one). Applies to past spans as well: costs are computed when read.
#[utoipa::path(
    put, path = "/api/v1/prices/{model}", tag = "cost", operation_id = "set_price",
    params(("model" = String, Path, description = "The model id (matched case-insensitively; see docs/cost.md)")),
    request_body = PriceChange,
    responses((status = 200, body = PriceSet))
)]
pub async fn set(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(model): ApiPath<String>,
    Valid(change): Valid<PriceChange>,
) -> ApiResult<Json<PriceSet>> {
    ops::set(&state, &owner, &model, change).await.map(Json)
}

/// Removes the project's own price of a model; a shipped price of that id applies again.
#[utoipa::path(
    delete, path = "/api/v1/prices/{model}", tag = "cost", operation_id = "delete_price",
    params(("model" = String, Path)),
    responses((status = 204, description = "Removed"))
)]
pub async fn delete(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<StatusCode> {
    ops::delete(&state, &owner, &model).await
}
