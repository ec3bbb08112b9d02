//! `GET /metrics` (Prometheus text format) and the middleware that measures every request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::observe;
use crate::web::error::ErrorCode;
use crate::web::AppState;

/// Middleware: request duration by method, route template and status; requests in flight;
/// ingest requests refused whole, by their error code.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let active = observe::active_request();
    let response = next.run(request).await;
    drop(active);
    // unmatched paths share one label value: raw paths would make one series per URL
    let route = route.as_deref().unwrap_or("unmatched");
    let status = response.status();
    observe::http_request(method_label(&method), route, status.as_u16(), started.elapsed());
    if status.is_client_error() || status.is_server_error() {
        if let Some(signal) = observe::ingest_signal(route) {
            let reason = response.extensions().get::<ErrorCode>().map_or("http_error", |c| c.0);
            observe::ingest_rejected_request(signal, reason);
        }
    }
    response
}

/// A method as a label value: the standard ones by name, anything a client made up as
/// `_OTHER` (OpenTelemetry's convention), so a client cannot add label values (and grow every
/// scrape) by inventing methods.
fn method_label(method: &axum::http::Method) -> &'static str {
    const STANDARD: [&str; 9] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    STANDARD.into_iter().find(|m| *m == method.as_str()).unwrap_or("_OTHER")
}

/// The scrape: database gauges measured now, then everything rendered.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = state.prometheus.as_ref() else {
        return crate::web::ApiError::not_found("metrics are served on `metrics_listen_addr`").into_response();
    };
    match state.store.database_gauges().await {
        Ok(gauges) => observe::set_database_gauges(&gauges),
        // the rest is still worth scraping; the stale gauges say nothing new
        Err(e) => tracing::warn!(error = %e, "could not measure the database for /metrics"),
    }
    handle.run_upkeep();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
        .into_response()
}
