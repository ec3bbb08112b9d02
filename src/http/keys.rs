//! `/api/v1/keys`: the API keys of the caller's project. An admin can create keys (an `ingest`
//! key for each app) and revoke them without a shell on the server. A key revoked here stops
//! working on this server at once (its cache is cleared) and on other replicas within
//! `key_cache_ttl_secs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::apikey;
use crate::domain::KeyScope;
use crate::store::ApiKeyRow;
use crate::validate::{Fields, FromJson, Problems};
use crate::web::auth::Auth;
use crate::web::body::Valid;
use crate::web::error::{ApiError, ApiResult};
use crate::web::query::ApiPath;
use crate::web::AppState;

/// A key as listed: never the key itself, which is shown only when it is created.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    /// The key's first characters (`db_sk_` and 8 more): enough to tell keys apart.
    pub prefix: String,
    pub scope: KeyScope,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was revoked (ms), or null while it works.
    pub revoked_at: Option<i64>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(k: ApiKeyRow) -> Self {
        ApiKeyInfo { prefix: k.prefix, scope: k.scope, created_at: k.created_at, revoked_at: k.revoked_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyInfo>,
}

/// A new key of the caller's project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// `ingest` for apps, SDKs and exporters; `admin` for people and automation that change
    /// settings.
    pub scope: KeyScope,
}

impl FromJson for NewApiKey {
    const WHAT: &'static str = "API key";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["scope"], "an API key field", problems);
        let scope = f.required_str("scope", 20, problems).and_then(|s| {
            s.parse::<KeyScope>().map_err(|_| problems.push("scope", "must be `ingest` or `admin`")).ok()
        });
        Some(NewApiKey { scope: scope? })
    }
}

/// A created key: the only answer that holds the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key: `db_sk_` and 40 more characters. Store it now: it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub info: ApiKeyInfo,
}

/// The project's keys, oldest first, revoked ones included.
#[utoipa::path(
    get, path = "/api/v1/keys", tag = "project", operation_id = "list_api_keys",
    responses((status = 200, body = ApiKeyList))
)]
pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<ApiKeyList>> {
    let keys = state.store.project_api_keys(owner.project_id).await?;
    Ok(Json(ApiKeyList { keys: keys.into_iter().map(ApiKeyInfo::from).collect() }))
}

/// Creates a key in the caller's project; the answer is the only place the key is shown.
#[utoipa::path(
    post, path = "/api/v1/keys", tag = "project", operation_id = "create_api_key",
    request_body = NewApiKey,
    responses((status = 201, description = "Created; the key is shown only here", body = CreatedApiKey))
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(owner): Auth,
    Valid(new): Valid<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let key = apikey::generate();
    let row = state.store.insert_api_key(owner.project_id, &key.prefix, &key.hash, new.scope).await?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key: key.plain, info: row.into() })))
}

/// Revokes a key of the caller's project: it stops working on this server at once, and on
/// other replicas within their key cache time (`key_cache_ttl_secs`).
#[utoipa::path(
    post, path = "/api/v1/keys/{prefix}/revoke", tag = "project", operation_id = "revoke_api_key",
    params(("prefix" = String, Path, description = "The key's prefix, as listed")),
    responses((status = 200, description = "The key, revoked", body = ApiKeyInfo))
)]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(prefix): ApiPath<String>,
) -> ApiResult<Json<ApiKeyInfo>> {
    let Some(row) = state.store.revoke_project_key(owner.project_id, &prefix).await? else {
        return Err(ApiError::not_found(format!("no active key with prefix `{prefix}` in this project")));
    };
    // the key's cached entry could still let it in here; the project's entries are refilled
    // from the database on their next request
    state.guards.keys.forget_project(owner.project_id);
    Ok(Json(row.into()))
}
