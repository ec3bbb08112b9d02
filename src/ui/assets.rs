//! The dashboard's static files, compiled into the binary (nothing is fetched at run time).
//! Their URLs carry a hash of the content, so browsers may cache them for a year.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

pub const STYLESHEET: &str = include_str!("assets/app.css");
pub const SCRIPT: &str = include_str!("assets/app.js");
pub const FAVICON: &str = include_str!("assets/favicon.svg");

/// Versioned by hand with the files; bump a suffix when its file changes.
pub const STYLESHEET_URL: &str = "/ui/assets/app-3.css";
pub const SCRIPT_URL: &str = "/ui/assets/app-1.js";

fn cached(content_type: &'static str, body: &'static str, max_age: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, max_age)], body).into_response()
}

pub async fn stylesheet() -> Response {
    cached("text/css; charset=utf-8", STYLESHEET, "public, max-age=31536000, immutable")
}

pub async fn script() -> Response {
    cached("text/javascript; charset=utf-8", SCRIPT, "public, max-age=31536000, immutable")
}

/// `/favicon.ico` is asked for by every browser; an SVG serves it.
pub async fn favicon() -> Response {
    cached("image/svg+xml", FAVICON, "public, max-age=86400")
}
