//! The frame every dashboard page shares, written with maud: markup is checked Rust and every
//! interpolated value is escaped, so no user text (prompt names, responses) can become markup.
//! Also the small pieces pages repeat: times, scores, pagers, form problems, errors.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::store::{StoreError, UiSession};
use crate::validate::Problem;
use crate::web::ApiError;

/// The screens in the header's navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/", "Prompts"),
    ("/ui/model-configs", "Model configs"),
    ("/ui/templates", "Templates"),
    ("/ui/traces", "Traces"),
    ("/ui/alerts", "Alerts"),
    ("/ui/project", "Project"),
];

/// Every page: the header with navigation and sign-out (when signed in), then `body`.
/// `current` is the path of the navigation entry to mark as the current page.
pub fn layout(title: &str, session: Option<&UiSession>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · DriftBalloon" }
                link rel="icon" href="/favicon.ico" type="image/svg+xml";
                link rel="stylesheet" href=(super::assets::STYLESHEET_URL);
                script src=(super::assets::SCRIPT_URL) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/" { "DriftBalloon" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            @for (path, label) in NAV {
                                @if *path == current {
                                    a href=(path) aria-current="page" { (label) }
                                } @else {
                                    a href=(path) { (label) }
                                }
                            }
                        }
                        span.muted { "Project " strong { (s.project_name) } }
                        form.inline method="post" action="/ui/sign-out" {
                            (csrf_field(s))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(session: &UiSession) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(session.csrf_token); }
}

pub fn sign_in(error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        p.muted { "Use an API key of your project (" code { "driftballoon keys create --project NAME" } ")." }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/ui/sign-in" {
            label for="api_key" { "API key" }
            input #api_key type="password" name="api_key" autocomplete="off" required placeholder="db_sk_...";
            p { button type="submit" { "Sign in" } }
        }
    };
    layout("Sign in", None, "", body)
}

/// A time (epoch milliseconds) in UTC, machine-readable too.
pub fn time(ms: i64) -> Markup {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => html! {
            time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
                (t.format("%Y-%m-%d %H:%M:%S UTC"))
            }
        },
        None => html! { "–" },
    }
}

/// A score with three decimals, or a dash when there is none yet.
pub fn score(value: Option<f64>) -> Markup {
    match value {
        Some(v) if v.is_finite() => html! { (format!("{v:.3}")) },
        _ => html! { span.muted { "–" } },
    }
}

/// Previous/next links of a paged list; `None` hides a direction.
pub fn pager(label: &str, previous: Option<String>, next: Option<String>) -> Markup {
    html! {
        @if previous.is_some() || next.is_some() {
            nav.pager aria-label=(label) {
                @if let Some(href) = previous { a href=(href) rel="prev" { "← Previous" } }
                @if let Some(href) = next { a href=(href) rel="next" { "Next →" } }
            }
        }
    }
}

/// The problems reported for one form field (`path` as the validators name it), shown next to
/// the field and tied to it by `aria-describedby` (`id` = "err-" + the field's id).
pub fn field_problems(problems: &[Problem], path: &str, field_id: &str) -> Markup {
    let found: Vec<&Problem> = problems.iter().filter(|p| p.path == path).collect();
    html! {
        @if !found.is_empty() {
            span.field-error id={ "err-" (field_id) } role="alert" {
                @for p in found { (p.message) " " }
            }
        }
    }
}

/// `aria-describedby` / `aria-invalid` values for a field with problems.
pub fn invalid(problems: &[Problem], path: &str) -> bool {
    problems.iter().any(|p| p.path == path)
}

/// A short notice after a form's change went through (`?notice=` on the redirect).
pub fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(t) = text { p.notice role="status" { (t) } } }
}

/// What a dashboard page may load: only this server's own files (the pages have no inline
/// script or style), never framed by another site (clickjacking), forms posted only here.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// A page that answers the browser; project data is never cached by it or a proxy.
pub fn page(status: StatusCode, markup: Markup) -> Response {
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    (status, headers, markup).into_response()
}

/// An error shown as a page (never raw JSON in the browser).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        h1 { (status.canonical_reason().unwrap_or("Error")) }
        p.error role="alert" { (message) }
        p { a href="/" { "Back to the dashboard" } }
    };
    page(status, layout("Error", None, "", body))
}

/// The page for an API error met while building a page (a missing prompt, a store failure).
pub fn api_error_page(e: ApiError) -> Response {
    error_page(e.status, &e.message)
}

/// The page for a failed read; the cause is logged, not shown.
pub fn store_error_page(e: StoreError) -> Response {
    api_error_page(ApiError::from(e))
}
