//! Liveness (`/health`, `/healthz`: the process answers) and readiness (`/readyz`: the
//! database answers too). Neither needs a key.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::web::error::{ApiError, ApiResult};
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    #[schema(example = "ok")]
    pub database: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/health", tag = "health", operation_id = "health",
    responses((status = 200, body = Health))
)]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// Liveness, under the name Kubernetes probes often use.
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "healthz",
    responses((status = 200, body = Health))
)]
pub async fn live_z() -> Json<Health> {
    live().await
}

/// Readiness: the database answers (503 `unavailable` when it does not).
#[utoipa::path(
    get, path = "/readyz", tag = "health", operation_id = "readyz",
    responses((status = 200, body = Readiness))
)]
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Readiness>> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(Readiness { status: "ready", database: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::unavailable("the database does not answer")
                .with_details(json!({ "database": "unreachable" })))
        }
    }
}
