//! JSON request bodies with errors in the API's own shape: over the size limit is 413,
//! anything that is not JSON is 400 naming the parse problem.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
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

/// `RequestBodyLimitLayer` answers a too-large `Content-Length` itself with a plain-text 413;
/// this middleware gives that answer the API's JSON error shape.
pub async fn json_413(state: axum::extract::State<AppState>, response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::payload_too_large(state.settings.body_limit_bytes).into_response();
    }
    response
}
