//! The API-key extractors: `X-API-Key: db_sk_...` (DriftBalloon SDK) or
//! `Authorization: Bearer db_sk_...` (Fallom SDK, curl, OTLP exporters). A handler runs only
//! for a known, unrevoked key, and sees that key's project.
//!
//! Two extractors, so the scope an operation needs is in its signature: [`Auth`] needs an
//! `admin` key and is what every handler takes unless it is one of the SDK and exporter
//! operations, which take [`IngestAuth`] (any key). A new handler is admin-only unless someone
//! decides otherwise, and `openapi::INGEST_OPERATIONS` lists the others for the document.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::json;

use super::error::ApiError;
use super::{limits, AppState};
use crate::domain::KeyScope;
use crate::store::KeyOwner;
use crate::{apikey, observe};

/// An `admin` key's owner.
pub struct Auth(pub KeyOwner);

/// Any valid key's owner (`ingest` or `admin`): SDK and exporter operations.
pub struct IngestAuth(pub KeyOwner);

/// The key a request presents, trimmed (it may be empty).
pub(super) fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The key's owner, checked against the guards: a known key costs no query while cached; an
/// unknown one spends its client address's failed-auth budget; every key has a request rate.
async fn key_owner(parts: &Parts, state: &AppState) -> Result<KeyOwner, ApiError> {
    let key = presented_key(&parts.headers).filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::unauthorized("missing API key: send `X-API-Key: db_sk_...` or `Authorization: Bearer db_sk_...`")
    })?;
    let key_hash = apikey::hash(key);
    let guards = &state.guards;
    let owner = match guards.keys.get(&key_hash) {
        Some(owner) => owner,
        None => {
            let ip = limits::client_ip(parts);
            let check = guards.admit_key_check(ip, &key_hash).map_err(too_many_failures)?;
            match state.store.find_active_key(&key_hash).await? {
                Some(owner) => {
                    guards.keys.insert(&key_hash, &owner);
                    guards.key_check_passed(check);
                    owner
                }
                None => {
                    guards.key_check_failed();
                    return Err(ApiError::unauthorized("invalid or revoked API key"));
                }
            }
        }
    };
    guards.per_key.take(&key_hash).map_err(|wait| {
        observe::rate_limited();
        ApiError::too_many_requests(
            "rate_limited",
            format!(
                "this key is over its limit of {} requests a second (burst {}); retry after the \
                 Retry-After seconds",
                state.settings.rate_limit_per_key, state.settings.rate_limit_burst
            ),
            limits::retry_after_secs(wait),
        )
    })?;
    Ok(owner)
}

fn too_many_failures(wait: std::time::Duration) -> ApiError {
    ApiError::too_many_requests(
        "too_many_failed_auth",
        "too many requests with an invalid key from this address; retry after the Retry-After seconds",
        limits::retry_after_secs(wait),
    )
}

impl FromRequestParts<AppState> for IngestAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(IngestAuth(key_owner(parts, state).await?))
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let owner = key_owner(parts, state).await?;
        if owner.scope != KeyScope::Admin {
            return Err(ApiError::forbidden(format!(
                "this operation needs an admin key; this key's scope is `{}` (create one with \
                 `driftballoon keys create --project NAME --scope admin`)",
                owner.scope
            ))
            .with_details(json!({"required_scope": "admin", "key_scope": owner.scope.as_str()})));
        }
        Ok(Auth(owner))
    }
}
