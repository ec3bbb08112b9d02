//! Project settings (`/ui/project`): whether trace content is captured, and how long data is
//! kept. The change goes through `PATCH /api/v1/project`'s handler.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{self, api_error_page, csrf_field, layout, page};
use super::owner;
use super::session::{redirect, PostedForm, SignedIn};
use crate::ops::project::{self as op, ProjectPatch};
use crate::store::RetentionPatch;
use crate::web::AppState;

const NAV: &str = "/ui/project";

#[derive(Debug, Default, Deserialize)]
pub struct ProjectParams {
    #[serde(default)]
    notice: Option<String>,
}

pub async fn show(State(state): State<AppState>, signed_in: SignedIn, Query(params): Query<ProjectParams>) -> Response {
    let settings = match op::get(&state, &owner(&signed_in)).await {
        Ok(s) => s,
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
            fieldset {
                legend { "Retention" }
                p.muted #retention-hint {
                    "Days each kind of data is kept; 0 keeps it forever, and an empty field uses the server's default. "
                    "Drift events, baselines and the samples they refer to are always kept."
                }
                @for (name, label, days, default) in retention_rows(&settings) {
                    div {
                        label for=(name) { (label) }
                        " "
                        input #(name) type="number" name=(name) min="0" max="36500" value=(days)
                            aria-describedby="retention-hint";
                        span.muted { " days (server default " (default) ")" }
                    }
                }
            }
            p { button type="submit" { "Save" } }
        }
    };
    page(StatusCode::OK, layout("Project", Some(&signed_in.session), NAV, body))
}

fn retention_rows(s: &op::ProjectSettings) -> [(&'static str, &'static str, i64, i64); 4] {
    let (r, d) = (&s.retention, &s.retention_defaults);
    [
        ("samples_days", "Logged responses (samples)", r.samples_days, d.samples_days),
        ("traces_days", "Traces, spans and log records", r.traces_days, d.traces_days),
        ("sessions_days", "Session assignments", r.sessions_days, d.sessions_days),
        ("metrics_days", "Custom metrics", r.metrics_days, d.metrics_days),
    ]
}

/// The posted retention fields, as the API's body reads them (so its checks and messages apply).
fn retention_patch(fields: &[(String, String)]) -> Result<Option<RetentionPatch>, crate::web::ApiError> {
    let mut body = serde_json::Map::new();
    for (name, value) in fields.iter().filter(|(n, _)| n.ends_with("_days")) {
        let value = value.trim();
        let days = if value.is_empty() {
            serde_json::Value::Null
        } else {
            match value.parse::<i64>() {
                Ok(n) => serde_json::Value::from(n),
                Err(_) => serde_json::Value::from(value),
            }
        };
        body.insert(name.clone(), days);
    }
    let body = serde_json::json!({ "retention": body });
    let patch: ProjectPatch = crate::validate::FromJson::from_json(&body)?;
    Ok(patch.retention)
}

pub async fn save(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    let retention = match retention_patch(&fields) {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    // a checkbox is posted only when ticked
    let patch = ProjectPatch { capture_content: Some(fields.iter().any(|(n, _)| n == "capture_content")), retention };
    match op::patch(&state, &owner(&signed_in), patch).await {
        Ok(_) => redirect(&format!("{NAV}?notice=saved")),
        Err(e) => api_error_page(e),
    }
}
