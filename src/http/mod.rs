//! The HTTP API: one module per resource, assembled into one router here.

mod auth;
mod body;
mod config;
mod error;
mod health;
mod logs;
mod metrics;
mod model_configs;
pub mod openapi;
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
use axum::Router;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

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

/// Every API route with its OpenAPI operation: registering them together keeps the document
/// and the router in step.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(logs::post_logs))
        .routes(routes!(config::get_config))
        .routes(routes!(prompts::list))
        .routes(routes!(prompts::detail, prompts::patch))
        .routes(routes!(prompts::reset_baseline))
        .routes(routes!(prompts::drift_events))
        .routes(routes!(prompts::samples))
        .routes(routes!(project::get, project::patch))
        .routes(routes!(model_configs::list, model_configs::publish))
        .routes(routes!(model_configs::detail))
        .routes(routes!(model_configs::version))
        .routes(routes!(model_configs::archive))
        .routes(routes!(model_configs::summary))
        .routes(routes!(templates::list_templates, templates::publish_template))
        .routes(routes!(templates::template_detail))
        .routes(routes!(templates::list_ab_tests, templates::publish_ab_test))
        .routes(routes!(templates::ab_test_detail))
        .routes(routes!(traces::list))
        .routes(routes!(traces::detail))
        .routes(routes!(metrics::read))
        // The Fallom SDK's own paths (configs, traces and prompts base URLs all point here).
        .routes(routes!(model_configs::sdk_configs))
        .routes(routes!(model_configs::sdk_config_version))
        .routes(routes!(model_configs::record_session))
        .routes(routes!(traces::ingest))
        .routes(routes!(metrics::record))
        .routes(routes!(templates::sdk_prompts))
        .routes(routes!(templates::sdk_ab_tests))
        .routes(routes!(health::live))
        .routes(routes!(health::live_z))
        .routes(routes!(health::ready))
}

/// The OpenAPI document the server serves at `/openapi.json`.
pub fn api_document() -> utoipa::openapi::OpenApi {
    openapi::finish(api_routes().into_openapi())
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let (api, doc) = api_routes().split_for_parts();
    let doc = openapi::finish(doc);
    // Swagger UI's files are compiled in; its default validator badge would call an outside
    // service, so it is turned off.
    let docs = SwaggerUi::new("/docs")
        .url("/openapi.json", doc)
        .config(SwaggerConfig::new(["/openapi.json"]).validator_url("none"));
    let app = api.merge(Router::<AppState>::from(docs)).fallback(not_found);

    // The last layer added sees the request first. The body limit sits inside decompression,
    // so it bounds the decompressed size.
    app.layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(RequestDecompressionLayer::new())
        .layer(CompressionLayer::new())
        // A request that runs too long is a server-side problem the client should retry.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(settings.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal().into_response()))
        // Outside everything that can answer on its own: 405, 413, 415, timeouts, panics.
        .layer(axum::middleware::map_response_with_state(state.clone(), error::json_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}
