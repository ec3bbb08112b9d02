//! JSON request bodies with errors in the API's own shape: over the size limit is 413,
//! anything that is not JSON is 400 naming the parse problem, a body of the wrong shape is a
//! 422 listing every problem ([`Valid`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::validate::FromJson;

/// A body parsed as JSON, not yet checked against a type (for bodies whose checks need the
/// server's state, such as the configured batch limits).
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A JSON body read into its typed request struct, or a 422 listing every problem.
pub struct Valid<T>(pub T);

impl<T: FromJson> FromRequest<AppState> for Valid<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let JsonBody(value) = JsonBody::from_request(req, state).await?;
        Ok(Valid(T::from_json(&value)?))
    }
}

/// Like [`Valid`], for bodies whose every field is optional: no body (or `null`) is the
/// default.
pub struct ValidOrEmpty<T>(pub T);

impl<T: FromJson + Default> FromRequest<AppState> for ValidOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ValidOrEmpty(T::default()));
        }
        match parse_json(&bytes)? {
            serde_json::Value::Null => Ok(ValidOrEmpty(T::default())),
            value => Ok(ValidOrEmpty(T::from_json(&value)?)),
        }
    }
}

/// Parses a buffered body as JSON (400 naming the parse problem), with NUL characters
/// replaced so that every backend can store its text.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}"))
            .with_details(json!({ "line": e.line(), "column": e.column() }))
    })?;
    crate::validate::replace_nul(&mut value);
    Ok(value)
}

/// Buffers the body; the size limit itself is enforced by tower-http's `RequestBodyLimitLayer`.
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.settings.body_limit_bytes)
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })
}
