//! The HTTP API: one module per resource, assembled into one router here.

mod auth;
mod body;
mod config;
mod error;
mod health;
mod logs;
mod metrics;
mod model_configs;
mod project;
mod prompts;
mod query;
mod templates;
mod traces;

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
        .route("/api/v1/project", get(project::get).patch(project::patch))
        .route("/api/v1/model-configs", get(model_configs::list).post(model_configs::publish))
        .route("/api/v1/model-configs/{key}", get(model_configs::detail))
        .route("/api/v1/model-configs/{key}/versions/{version}", get(model_configs::version))
        .route("/api/v1/model-configs/{key}/archive", post(model_configs::archive))
        .route("/api/v1/model-configs/{key}/summary", get(model_configs::summary))
        .route("/api/v1/prompt-templates", get(templates::list_templates).post(templates::publish_template))
        .route("/api/v1/prompt-templates/{key}", get(templates::template_detail))
        .route("/api/v1/prompt-ab-tests", get(templates::list_ab_tests).post(templates::publish_ab_test))
        .route("/api/v1/prompt-ab-tests/{key}", get(templates::ab_test_detail))
        .route("/api/v1/traces", get(traces::list))
        .route("/api/v1/traces/{trace_id}", get(traces::detail))
        .route("/api/v1/metrics", get(metrics::read))
        // The Fallom SDK's own paths (configs, traces and prompts base URLs all point here).
        .route("/configs", get(model_configs::sdk_configs))
        .route("/configs/{key}/version/{version}", get(model_configs::sdk_config_version))
        .route("/sessions", post(model_configs::record_session))
        .route("/v1/traces", post(traces::ingest))
        .route("/spans", post(metrics::record))
        .route("/prompts", get(templates::sdk_prompts))
        .route("/prompt-ab-tests", get(templates::sdk_ab_tests))
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
