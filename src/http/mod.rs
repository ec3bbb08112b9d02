//! The HTTP API: one module per resource, assembled into one router here.

mod auth;
mod body;
mod config;
mod error;
mod health;
mod logs;
mod prompts;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::config::Settings;
use crate::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Woken after every committed ingest so the embedding worker starts at once.
    pub samples_arrived: Arc<Notify>,
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let api = Router::new()
        .route("/api/v1/logs", post(logs::post_logs))
        .route("/api/v1/config", get(config::get_config))
        .route("/api/v1/prompts", get(prompts::list))
        .route("/api/v1/prompts/{name}", get(prompts::detail).patch(prompts::patch))
        .route("/api/v1/prompts/{name}/baseline/reset", post(prompts::reset_baseline))
        .route("/api/v1/prompts/{name}/drift-events", get(prompts::drift_events))
        .route("/api/v1/prompts/{name}/samples", get(prompts::samples))
        .route("/health", get(health::live))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(not_found);

    // The last layer added sees the request first. The body limit sits inside decompression,
    // so it bounds the decompressed size.
    api.layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(axum::middleware::map_response_with_state(state.clone(), body::json_413))
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new())
        // A request that runs too long is a server-side problem the client should retry.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(settings.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}
