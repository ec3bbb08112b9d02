//! The API-key extractor: `X-API-Key: db_sk_...` (DriftBalloon SDK) or
//! `Authorization: Bearer db_sk_...` (Fallom SDK, curl). A handler that takes [`Auth`] only
//! runs for a known, unrevoked key, and sees that key's project.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::apikey;
use crate::store::KeyOwner;

pub struct Auth(pub KeyOwner);

fn presented_key(parts: &Parts) -> Option<&str> {
    if let Some(v) = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = presented_key(parts).filter(|k| !k.is_empty()).ok_or_else(|| {
            ApiError::unauthorized("missing API key: send `X-API-Key: db_sk_...` or `Authorization: Bearer db_sk_...`")
        })?;
        match state.store.find_active_key(&apikey::hash(key)).await? {
            Some(owner) => Ok(Auth(owner)),
            None => Err(ApiError::unauthorized("invalid or revoked API key")),
        }
    }
}
