//! The server's HTTP application: every route (the API's with its OpenAPI operation, Swagger
//! UI, the dashboard's) assembled into one router behind the layers every request passes, and
//! the listener that serves it ([`serve`]). Only `server` imports this module.

mod body_pace;
pub mod serve;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
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

use crate::http::{
    alerts, config, health, keys, logs, metrics, model_configs, monitoring, openapi, otlp_logs, otlp_traces, prices,
    project, prompts, templates, traces,
};
use crate::web::{error, limits, ApiError, AppState};

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
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(model_configs::list, model_configs::publish))
        .routes(routes!(model_configs::detail))
        .routes(routes!(model_configs::version))
        .routes(routes!(model_configs::archive))
        .routes(routes!(model_configs::summary))
        .routes(routes!(templates::list_templates, templates::publish_template))
        .routes(routes!(templates::template_detail))
        .routes(routes!(templates::list_ab_tests, templates::publish_ab_test))
        .routes(routes!(templates::ab_test_detail))
        .routes(routes!(prices::list))
        .routes(routes!(prices::set, prices::delete))
        .routes(routes!(traces::list))
        .routes(routes!(traces::detail))
        .routes(routes!(traces::logs))
        .routes(routes!(metrics::read))
        .routes(routes!(alerts::list, alerts::create))
        .routes(routes!(alerts::detail, alerts::update, alerts::delete))
        .routes(routes!(alerts::enable))
        .routes(routes!(alerts::disable))
        .routes(routes!(alerts::test))
        .routes(routes!(alerts::rotate_secret))
        .routes(routes!(alerts::deliveries))
        // The Fallom SDK's own paths (configs, traces and prompts base URLs all point here).
        .routes(routes!(model_configs::sdk_configs))
        .routes(routes!(model_configs::sdk_config_version))
        .routes(routes!(model_configs::record_session))
        .routes(routes!(otlp_traces::ingest))
        .routes(routes!(otlp_logs::ingest))
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
    let (api, doc) = api_routes().split_for_parts();
    let doc = openapi::finish(doc);
    // Swagger UI's files are compiled in; its default validator badge would call an outside
    // service, so it is turned off.
    let docs = SwaggerUi::new("/docs")
        .url("/openapi.json", doc)
        .config(SwaggerConfig::new(["/openapi.json"]).validator_url("none"));
    let docs = Router::<AppState>::from(docs).layer(axum::middleware::map_response(docs_headers));
    let mut app = api.merge(docs).merge(crate::ui::routes());
    if state.settings.metrics_listen_addr.is_empty() {
        app = app.route("/metrics", axum::routing::get(monitoring::metrics));
    }
    with_layers(app.fallback(not_found), state)
}

/// What Swagger UI at `/docs` may load: its own compiled-in files only (it sets inline styles
/// and shows data: images), never framed by another site. It shares the dashboard's origin, so
/// a page that framed it could click through it with the dashboard's session.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn docs_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// `/metrics` alone, for its own listen address (`metrics_listen_addr`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", axum::routing::get(monitoring::metrics)).with_state(state)
}

/// The layers every route sits behind: body limits, gzip, timeout, panic catching, and the
/// JSON shape for every error answer.
fn with_layers(app: Router<AppState>, state: AppState) -> Router {
    let settings = state.settings.clone();
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
        // The raw body, before decompression and limits, must keep arriving (408 otherwise).
        .layer(axum::middleware::from_fn_with_state(state.clone(), body_pace::pace_bodies))
        // Before any work: fair-share admission of the requests in flight (503 when full, 429
        // over a contended share).
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::admit))
        // Outside everything that can answer on its own: 405, 413, 415, timeouts, panics.
        .layer(axum::middleware::map_response_with_state(state.clone(), error::json_errors))
        // Measures what clients get, after every rewrite.
        .layer(axum::middleware::from_fn(monitoring::track_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panic_is_a_json_500() {
        let pool = crate::store::PoolSettings { max_connections: 1, acquire_timeout: Duration::from_secs(1) };
        let store = crate::store::Store::open("sqlite::memory:", &pool).await.unwrap();
        let settings = crate::config::Settings::load_from(|_| None).unwrap();
        let state = AppState::new(store, settings, Arc::new(tokio::sync::Notify::new()));
        async fn buggy_handler() -> &'static str {
            panic!("handler bug")
        }
        let app = Router::new().route("/boom", get(buggy_handler));
        let response =
            with_layers(app, state).oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }

    #[test]
    fn the_document_covers_every_route_with_auth_and_errors() {
        let doc = serde_json::to_value(api_document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("500") && responses.contains_key("503"), "{method} {path}");
                let public = openapi::PUBLIC_PATHS.contains(&path.as_str());
                assert_eq!(responses.contains_key("401"), !public, "{method} {path}");
                assert_eq!(responses.contains_key("429"), !public, "{method} {path}");
                assert_eq!(op["security"].as_array().unwrap().is_empty(), public, "{method} {path}");
                if op.get("requestBody").is_some() {
                    for status in ["400", "408", "413", "415", "422"] {
                        assert!(responses.contains_key(status), "{method} {path} {status}");
                    }
                }
            }
        }
        assert_eq!(operations, 53);
        // Every schema reference resolves.
        let text = doc.to_string();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "dangling reference to {name}");
        }
        for name in ["MethodNotAllowed", "Unavailable", "ValidationFailed", "TooManyRequests", "Forbidden"] {
            assert!(doc["components"]["responses"].get(name).is_some(), "{name}");
        }
    }
}
