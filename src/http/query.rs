//! Query-string and path extractors whose rejections use the API's JSON error shape (axum's
//! own answer a bad `?limit=abc` or a malformed `%` escape with plain text). Both refuse an
//! encoded NUL (`%00`): no stored name contains one, and Postgres cannot compare text with it.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// Page sizes of every paged list.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// The `limit` query parameter of a paged list: absent means the default.
pub fn page_limit(raw: Option<&str>) -> ApiResult<i64> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(s) => s.parse::<i64>().ok().filter(|v| (1..=MAX_PAGE).contains(v)).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("limit must be a whole number from 1 to {MAX_PAGE}"))
        }),
    }
}

fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.query().unwrap_or("")) {
            return Err(ApiError::bad_request("invalid_query", "the query string must not contain %00 (NUL)"));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(ApiError::bad_request("invalid_path", "the path must not contain %00 (NUL)"));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}
