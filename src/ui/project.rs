//! Project settings (`/ui/project`): whether trace content is captured. The change goes
//! through `PATCH /api/v1/project`'s handler.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::auth;
use super::layout::{self, api_error_page, csrf_field, layout, page};
use super::session::{redirect, PostedForm, SignedIn};
use crate::http::body::Valid;
use crate::http::project::{self as api, ProjectPatch};
use crate::http::AppState;

const NAV: &str = "/ui/project";

#[derive(Debug, Default, Deserialize)]
pub struct ProjectParams {
    #[serde(default)]
    notice: Option<String>,
}

pub async fn show(State(state): State<AppState>, signed_in: SignedIn, Query(params): Query<ProjectParams>) -> Response {
    let settings = match api::get(State(state), auth(&signed_in)).await {
        Ok(s) => s.0,
        Err(e) => return api_error_page(e),
    };
    let body = html! {
        h1 { "Project " (settings.name) }
        (layout::notice((params.notice.as_deref() == Some("saved")).then_some("Project settings saved.")))
        form method="post" action=(NAV) {
            (csrf_field(&signed_in.session))
            fieldset {
                legend { "Privacy" }
                div.check {
                    input #capture_content type="checkbox" name="capture_content" checked[settings.capture_content]
                        aria-describedby="capture-hint";
                    label for="capture_content" { "Capture prompt and response content from traces" }
                }
                p.muted #capture-hint {
                    "When off, spans keep their timing, model and usage, but request and response text is dropped on arrival "
                    "(even if a client sends it), so traces give no drift samples and drift explanations quote responses by id only. "
                    "Logs sent with the DriftBalloon SDK are always stored: they are the drift samples."
                }
            }
            p { button type="submit" { "Save" } }
        }
    };
    page(StatusCode::OK, layout("Project", Some(&signed_in.session), NAV, body))
}

pub async fn save(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    // a checkbox is posted only when ticked
    let patch = ProjectPatch { capture_content: Some(fields.iter().any(|(n, _)| n == "capture_content")) };
    match api::patch(State(state), auth(&signed_in), Valid(patch)).await {
        Ok(_) => redirect(&format!("{NAV}?notice=saved")),
        Err(e) => api_error_page(e),
    }
}
