//! The dashboard's HTML, written with maud: markup is checked Rust and every interpolated value
//! is escaped, so no user text (prompt names, responses) can become markup.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::store::{PromptConfigRow, UiSession};

/// Every page: the header with the project and sign-out (when signed in), then `body`.
pub fn layout(title: &str, session: Option<&UiSession>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · DriftBalloon" }
                link rel="icon" href="/favicon.ico" type="image/svg+xml";
                link rel="stylesheet" href=(super::assets::STYLESHEET_URL);
            }
            body {
                header {
                    a.brand href="/" { "DriftBalloon" }
                    @if let Some(s) = session {
                        nav aria-label="Main" { a href="/" { "Prompts" } }
                        span.muted { "Project " strong { (s.project_name) } }
                        form.inline method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf_token" value=(s.csrf_token);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
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
    layout("Sign in", None, body)
}

fn threshold_cell(score: Option<f64>, threshold: f64) -> Markup {
    html! {
        @match score {
            Some(s) => { (format!("{s:.3}")) span.muted { " / " (format!("{threshold:.2}")) } }
            None => span.muted { "–" },
        }
    }
}

/// The prompts of the project; `latest` holds each prompt's (semantic, length) score.
pub fn prompts(
    session: &UiSession,
    rows: &[PromptConfigRow],
    latest: &dyn Fn(i64) -> (Option<f64>, Option<f64>),
) -> Markup {
    let body = html! {
        h1 { "Prompts" }
        @if rows.is_empty() {
            div.panel {
                p { strong { "No prompts yet." } " Point the SDK at this server and log a response:" }
                pre { "export DRIFTBALLOON_BASE_URL=http://localhost:8080\nexport DRIFTBALLOON_API_KEY=db_sk_..." }
            }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Prompt" } th scope="col" { "Status" } th scope="col" { "Baseline" }
                        th scope="col" { "Active" } th scope="col" { "Semantic / threshold" } th scope="col" { "Length / threshold" }
                    } }
                    tbody {
                        @for r in rows {
                            @let (semantic, length) = latest(r.prompt.id);
                            tr {
                                td { (r.prompt.name) }
                                td class={ "status-" (r.prompt.status.as_str()) } { (r.prompt.status.as_str()) }
                                td { (r.baseline_status.as_str()) " " span.muted { (r.baseline_sample_count) "/" (r.prompt.min_baseline_samples) } }
                                td { (r.prompt.active_prompt.as_str()) }
                                td { (threshold_cell(semantic, r.prompt.drift_threshold)) }
                                td { (threshold_cell(length, r.prompt.length_drift_threshold)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Prompts", Some(session), body)
}

/// An error shown as a page (never raw JSON in the browser).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let body = html! {
        h1 { (status.canonical_reason().unwrap_or("Error")) }
        p.error role="alert" { (message) }
        p { a href="/" { "Back to the dashboard" } }
    };
    (status, layout("Error", None, body)).into_response()
}
