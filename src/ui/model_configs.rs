//! Model configs (`/ui/model-configs`): the list, one config's versions and variants, the
//! per-variant summary side by side with a chart, and a publish form that shows each
//! validation problem next to its field. Reads and the publish go through the REST handlers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::charts::{bar_chart, Bar};
use super::cost::{cost_text, usd};
use super::forms::{field, indexed_rows, number_or_text};
use super::layout::{self, api_error_page, csrf_field, field_problems, layout, page, time};
use super::session::{redirect, PostedForm, SignedIn};
use super::{encode, owner};
use crate::ops::model_configs::{self as op, ModelConfigDetail, ModelConfigPublish, ModelConfigSummary, SummaryParams};
use crate::validate::{FromJson, Problem};
use crate::web::AppState;

/// Variant rows the publish form offers beyond the ones it is filled with.
const SPARE_VARIANT_ROWS: usize = 2;
/// Rows read from a post (the API allows 100 variants).
const MAX_VARIANT_ROWS: usize = 100;

fn config_href(key: &str) -> String {
    format!("/ui/model-configs/{}", encode(key))
}

/// What the publish form holds: a config's latest version, or what was typed.
#[derive(Debug, Default, Clone)]
pub struct PublishForm {
    key: String,
    /// (model, weight) as typed.
    variants: Vec<(String, String)>,
    targeting: String,
}

impl PublishForm {
    fn of(detail: &ModelConfigDetail) -> PublishForm {
        let latest = detail.versions.last();
        PublishForm {
            key: detail.key.clone(),
            variants: latest
                .map(|v| v.config.variants.iter().map(|v| (v.model.clone(), v.weight.to_string())).collect())
                .unwrap_or_default(),
            targeting: latest
                .and_then(|v| v.config.targeting.as_ref())
                .and_then(|t| serde_json::to_string_pretty(t).ok())
                .unwrap_or_default(),
        }
    }

    /// Reads the posted fields (`key`, `variant_model_N`, `variant_weight_N`, `targeting`).
    fn from_fields(fields: &[(String, String)]) -> PublishForm {
        let rows = indexed_rows(fields, &["variant_model_", "variant_weight_"], MAX_VARIANT_ROWS);
        PublishForm {
            key: field(fields, "key").trim().to_string(),
            variants: rows.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect(),
            targeting: field(fields, "targeting").to_string(),
        }
    }

    /// The JSON body `POST /api/v1/model-configs` would get, and the problems found before
    /// it (targeting that is not JSON).
    fn to_json(&self) -> (Value, Vec<Problem>) {
        let variants: Vec<Value> = self
            .variants
            .iter()
            .map(|(model, weight)| json!({"model": model, "weight": number_or_text(weight)}))
            .collect();
        let mut body = Map::new();
        body.insert("key".into(), Value::String(self.key.clone()));
        body.insert("variants".into(), Value::Array(variants));
        let mut problems = Vec::new();
        if !self.targeting.trim().is_empty() {
            match serde_json::from_str::<Value>(&self.targeting) {
                Ok(t) => {
                    body.insert("targeting".into(), t);
                }
                Err(e) => {
                    problems.push(Problem { path: "targeting".into(), message: format!("is not valid JSON: {e}") })
                }
            }
        }
        (Value::Object(body), problems)
    }
}

pub async fn list(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    render_list(&state, &signed_in, &PublishForm::default(), &[], StatusCode::OK).await
}

async fn render_list(
    state: &AppState,
    signed_in: &SignedIn,
    form: &PublishForm,
    problems: &[Problem],
    status: StatusCode,
) -> Response {
    let configs = match op::list(state, &owner(signed_in)).await {
        Ok(list) => list.model_configs,
        Err(e) => return api_error_page(e),
    };
    let body = html! {
        h1 { "Model configs" }
        p.muted { "A config splits an app's sessions between models by weight (and targeting rules); the Fallom SDK reads it with " code { "models.get(key, session_id)" } "." }
        @if configs.is_empty() {
            div.panel #empty-configs { p { strong { "No model configs yet." } " Publish the first version below; the SDK picks it up within 30 seconds." } }
        } @else {
            div.table-wrap { table #config-list {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Latest version" } th scope="col" { "State" } th scope="col" { "Created" } } }
                tbody {
                    @for c in &configs {
                        tr {
                            th scope="row" { a href=(config_href(&c.key)) { (c.key) } }
                            td { "v" (c.latest_version) }
                            td { @if c.archived { "archived" } @else { "active" } }
                            td { (time(c.created_at)) }
                        }
                    }
                }
            } }
        }
        section aria-labelledby="publish-h" {
            h2 #publish-h { "Publish a config" }
            (publish_form(signed_in, form, problems, true))
        }
    };
    page(status, layout("Model configs", Some(&signed_in.session), "/ui/model-configs", body))
}

pub async fn detail(State(state): State<AppState>, signed_in: SignedIn, Path(key): Path<String>) -> Response {
    render_detail(&state, &signed_in, &key, None, &[], StatusCode::OK).await
}

async fn render_detail(
    state: &AppState,
    signed_in: &SignedIn,
    key: &str,
    form: Option<&PublishForm>,
    problems: &[Problem],
    status: StatusCode,
) -> Response {
    let caller = owner(signed_in);
    let read = tokio::try_join!(
        op::detail(state, &caller, key.to_string()),
        op::summary(state, &caller, key.to_string(), SummaryParams { version: None }),
    );
    let (detail, summary) = match read {
        Ok((d, s)) => (d, s),
        Err(e) => return api_error_page(e),
    };
    let filled = PublishForm::of(&detail);
    let form = form.unwrap_or(&filled);
    let body = html! {
        p.crumbs { a href="/ui/model-configs" { "Model configs" } " / " }
        h1 { (detail.key) " " span.badge { "v" (detail.latest_version) } @if detail.archived { " " span.badge { "archived" } } }
        section aria-labelledby="summary-h" {
            h2 #summary-h { "Variants side by side" }
            (summary_view(&summary))
        }
        section aria-labelledby="versions-h" {
            h2 #versions-h { "Versions" }
            @for v in detail.versions.iter().rev() {
                details.version open[v.config.version == detail.latest_version] {
                    summary { "Version " (v.config.version) " · " (time(v.created_at)) }
                    ul {
                        @for variant in &v.config.variants { li { code { (variant.model) } " · " (variant.weight.to_string()) "%" } }
                    }
                    @if let Some(t) = &v.config.targeting {
                        p { "Targeting:" }
                        pre { (serde_json::to_string_pretty(t).unwrap_or_default()) }
                    }
                }
            }
        }
        section aria-labelledby="publish-h" {
            h2 #publish-h { "Publish version " (detail.latest_version + 1) }
            (publish_form(signed_in, form, problems, false))
        }
    };
    page(status, layout(key, Some(&signed_in.session), "/ui/model-configs", body))
}

fn summary_view(summary: &ModelConfigSummary) -> Markup {
    let v = &summary.variants;
    let metric_names: std::collections::BTreeSet<&String> = v.iter().flat_map(|s| s.metrics.keys()).collect();
    let latency: Vec<Bar> =
        v.iter().map(|s| Bar { label: s.model.clone(), value: s.mean_latency_ms.unwrap_or(0.0) }).collect();
    let errors: Vec<Bar> =
        v.iter().map(|s| Bar { label: s.model.clone(), value: s.error_rate.unwrap_or(0.0) * 100.0 }).collect();
    let opt = |x: Option<f64>, unit: &str| x.map_or("–".to_string(), |x| format!("{x:.1}{unit}"));
    html! {
        @if v.iter().all(|s| s.sessions == 0 && s.traces == 0) {
            p.muted { "No sessions yet: the summary fills in as the SDK assigns sessions and sends traces." }
        }
        div.table-wrap { table #variant-summary {
            thead { tr { th scope="col" { "" } @for s in v { th scope="col" { code { (s.model) } } } } }
            tbody {
                tr { th scope="row" { "Weight" } @for s in v { td { (s.weight.as_ref().map_or("–".into(), |w| format!("{w}%"))) } } }
                tr { th scope="row" { "Sessions" } @for s in v { td { (s.sessions) } } }
                tr { th scope="row" { "Traces" } @for s in v { td { (s.traces) } } }
                tr { th scope="row" { "Mean latency" } @for s in v { td { (opt(s.mean_latency_ms, " ms")) } } }
                tr { th scope="row" { "Tokens in / out" } @for s in v { td { (s.input_tokens) " / " (s.output_tokens) } } }
                tr { th scope="row" { "Cost" } @for s in v { td { (cost_text(&s.cost)) } } }
                tr { th scope="row" { "Cost per call" } @for s in v { td { (s.cost_per_call_usd.map_or("–".into(), usd)) } } }
                tr { th scope="row" { "Error rate" } @for s in v { td { (opt(s.error_rate.map(|r| r * 100.0), "%")) } } }
                @for m in &metric_names {
                    tr { th scope="row" { (m) } @for s in v { td { (opt(s.metrics.get(*m).copied(), "")) } } }
                }
            }
        } }
        div.charts {
            figure { figcaption { "Mean latency (ms)" } (bar_chart("Mean latency by variant, in milliseconds", &latency, "ms")) }
            figure { figcaption { "Error rate (%)" } (bar_chart("Error rate by variant, in percent", &errors, "%")) }
        }
    }
}

fn publish_form(signed_in: &SignedIn, form: &PublishForm, problems: &[Problem], new_key: bool) -> Markup {
    let rows = form.variants.len() + SPARE_VARIANT_ROWS;
    let targeting_problems: Vec<Problem> =
        problems.iter().filter(|p| p.path.starts_with("targeting")).cloned().collect();
    html! {
        @if !problems.is_empty() {
            p.error role="alert" { "Not published: fix the fields marked below." }
        }
        form.publish method="post" action="/ui/model-configs" novalidate {
            (csrf_field(&signed_in.session))
            @if new_key {
                div.field {
                    label for="key" { "Key" }
                    input #key type="text" name="key" value=(form.key) required aria-invalid=[layout::invalid(problems, "key").then_some("true")];
                    (field_problems(problems, "key", "key"))
                }
            } @else {
                input type="hidden" name="key" value=(form.key);
            }
            fieldset {
                legend { "Variants (weights sum to 100)" }
                (field_problems(problems, "variants", "variants"))
                @for i in 0..rows {
                    @let (model, weight) = form.variants.get(i).cloned().unwrap_or_default();
                    @let model_path = format!("variants[{i}].model");
                    @let weight_path = format!("variants[{i}].weight");
                    div.variant-row {
                        div.field {
                            label for={ "variant_model_" (i) } { "Model " (i + 1) }
                            input id={ "variant_model_" (i) } name={ "variant_model_" (i) } type="text" value=(model)
                                aria-invalid=[layout::invalid(problems, &model_path).then_some("true")];
                            (field_problems(problems, &model_path, &format!("variant_model_{i}")))
                            (field_problems(problems, &format!("variants[{i}]"), &format!("variant_{i}")))
                        }
                        div.field {
                            label for={ "variant_weight_" (i) } { "Weight " (i + 1) " (%)" }
                            input id={ "variant_weight_" (i) } name={ "variant_weight_" (i) } type="text" inputmode="decimal" value=(weight)
                                aria-invalid=[layout::invalid(problems, &weight_path).then_some("true")];
                            (field_problems(problems, &weight_path, &format!("variant_weight_{i}")))
                        }
                    }
                }
            }
            div.field {
                label for="targeting" { "Targeting rules (JSON, optional)" }
                textarea #targeting name="targeting" rows="6" spellcheck="false"
                    placeholder=r#"{"enabled": true, "rules": [{"conditions": [{"field": "plan", "operator": "eq", "value": "pro"}], "variantIndex": 1}]}"# { (form.targeting) }
                @if !targeting_problems.is_empty() {
                    span.field-error id="err-targeting" role="alert" {
                        @for p in &targeting_problems { code { (p.path) } " " (p.message) br; }
                    }
                }
            }
            p { button type="submit" { "Publish" } }
        }
    }
}

pub async fn publish(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    let form = PublishForm::from_fields(&fields);
    let (body, mut problems) = form.to_json();
    let parsed = ModelConfigPublish::from_json(&body);
    if let Err(e) = &parsed {
        problems.extend(e.problems.iter().cloned());
    }
    let config = match parsed {
        Ok(config) if problems.is_empty() => config,
        _ => {
            // shown again on the config's own page when it exists, else on the list
            let exists = state.store.model_config_versions(signed_in.session.project_id, &form.key).await;
            return match exists {
                Ok(v) if !v.is_empty() => {
                    render_detail(
                        &state,
                        &signed_in,
                        &form.key,
                        Some(&form),
                        &problems,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
                _ => render_list(&state, &signed_in, &form, &problems, StatusCode::UNPROCESSABLE_ENTITY).await,
            };
        }
    };
    let key = config.key.clone();
    match op::publish(&state, &owner(&signed_in), config).await {
        Ok(_) => redirect(&config_href(&key)),
        Err(e) => api_error_page(e),
    }
}
