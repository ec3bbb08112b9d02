//! Query-string and path extractors whose rejections use the API's JSON error shape (axum's
//! own answer a bad `?limit=abc` or a malformed `%` escape with plain text). A typed query
//! ([`FromQuery`], taken with [`ValidQuery`]) is read parameter by parameter from
//! [`QueryFields`], so every bad value is listed in one 422 naming the parameter, like a bad
//! body field. Both refuse an encoded NUL (`%00`): no stored name
//! contains one, and Postgres cannot compare text with it.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::validate::limits::{DEFAULT_PAGE, MAX_PAGE};
use crate::validate::Problems;

fn has_encoded_nul(raw: &str) -> bool {
    raw.as_bytes().windows(3).any(|w| w == b"%00")
}

/// A typed query string, read parameter by parameter (its OpenAPI parameters are derived
/// from the same struct with `IntoParams`).
pub trait FromQuery: Sized {
    /// Reads the parameters, recording a problem for each bad one.
    fn read(q: &mut QueryFields) -> Self;
}

/// A query string read into its typed struct, or a 422 listing every bad parameter.
pub struct ValidQuery<T>(pub T);

impl<T: FromQuery, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut q = QueryFields::from_request_parts(parts, state).await?;
        let value = T::read(&mut q);
        q.problems.finish("query", Some(())).map_err(ApiError::from)?;
        Ok(ValidQuery(value))
    }
}

/// The query string's parameters, checked one by one; every problem is reported at once.
pub struct QueryFields {
    params: HashMap<String, String>,
    problems: Problems,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryFields {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.query().unwrap_or("")) {
            return Err(ApiError::bad_request("invalid_query", "the query string must not contain %00 (NUL)"));
        }
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
        Ok(QueryFields { params, problems: Problems::default() })
    }
}

impl QueryFields {
    pub fn text(&self, name: &str) -> Option<String> {
        self.params.get(name).cloned()
    }

    /// A parameter that must be present and not empty.
    pub fn required_text(&mut self, name: &str) -> Option<String> {
        let value = self.params.get(name).filter(|v| !v.is_empty()).cloned();
        if value.is_none() {
            self.problems.push(name, "is required");
        }
        value
    }

    /// A whole number from `min` to `max`, if the parameter is there.
    pub fn int(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let raw = self.params.get(name)?;
        match raw.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.problems.push(name, format!("must be a whole number from {min} to {max}, got {raw:?}"));
                None
            }
        }
    }

    /// Records a problem with a parameter that the caller checked itself.
    pub fn reject(&mut self, name: &str, message: &str) {
        self.problems.push(name, message);
    }

    /// The `limit` of a paged list: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
    pub fn page_limit(&mut self) -> i64 {
        self.int("limit", 1, MAX_PAGE).unwrap_or(DEFAULT_PAGE)
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
