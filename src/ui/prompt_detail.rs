//! One prompt (`/ui/prompts/{name}`): its scores charted against the thresholds with drift
//! events and version switches marked, its baselines, its settings form, a baseline reset
//! behind a confirmation, its drift events with their explanations, and its samples, paged.
//! Changes go through the REST handlers themselves, so the page and the API validate and act
//! the same way.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::charts::{self, Drifting, Marker, MarkerKind, Series};
use super::forms::{field, number_or_text};
use super::layout::{self, api_error_page, csrf_field, field_problems, layout, page, score, store_error_page, time};
use super::prompt_href;
use super::prompts::{length_over, semantic_over};
use super::session::{redirect, PostedForm, SignedIn};
use crate::domain::{BaselineStatus, DriftKind, PromptStatus, PromptVersion};
use crate::drift::budget::Budget;
use crate::drift::{distribution, WINDOW};
use crate::ops;
use crate::ops::prompts::PromptSettingsPatch;
use crate::store::{BaselineRow, DriftEventRow, PromptRow, SampleCounts, SampleRow, ScorePoint};
use crate::validate::{FromJson, Problem};
use crate::web::AppState;

/// Scored samples in the charts.
const CHART_POINTS: i64 = 300;
/// Drift events and samples per page.
const EVENTS_PAGE: i64 = 10;
const SAMPLES_PAGE: i64 = 25;
/// Characters of a response shown in the samples table.
const RESPONSE_CHARS: usize = 160;

#[derive(Debug, Default, Deserialize)]
pub struct DetailParams {
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    events_before: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

fn cursor(value: &Option<String>) -> i64 {
    value.as_deref().and_then(|v| v.parse().ok()).filter(|n: &i64| *n > 0).unwrap_or(0)
}

/// What the settings form holds: the stored values, or what was typed when it had problems.
#[derive(Debug, Default)]
pub struct SettingsForm {
    drift_threshold: String,
    length_drift_threshold: String,
    min_baseline_samples: String,
    false_alarm_budget: String,
    /// A checkbox: present when ticked.
    auto_switch_enabled: Option<String>,
    active_prompt: String,
    /// Only the "mark as handled" form sends this.
    status: String,
}

impl SettingsForm {
    fn of(p: &PromptRow) -> SettingsForm {
        SettingsForm {
            drift_threshold: p.drift_threshold.to_string(),
            length_drift_threshold: p.length_drift_threshold.to_string(),
            min_baseline_samples: p.min_baseline_samples.to_string(),
            false_alarm_budget: p.false_alarm_budget.to_string(),
            auto_switch_enabled: p.auto_switch_enabled.then(|| "on".into()),
            active_prompt: p.active_prompt.as_str().into(),
            ..SettingsForm::default()
        }
    }

    fn from_fields(fields: &[(String, String)]) -> SettingsForm {
        SettingsForm {
            drift_threshold: field(fields, "drift_threshold").into(),
            length_drift_threshold: field(fields, "length_drift_threshold").into(),
            min_baseline_samples: field(fields, "min_baseline_samples").into(),
            false_alarm_budget: field(fields, "false_alarm_budget").into(),
            auto_switch_enabled: fields.iter().any(|(n, _)| n == "auto_switch_enabled").then(|| "on".into()),
            active_prompt: field(fields, "active_prompt").into(),
            status: field(fields, "status").into(),
        }
    }

    /// The JSON body `PATCH /api/v1/prompts/{name}` would get.
    fn to_json(&self) -> Value {
        let mut body = Map::new();
        if !self.status.is_empty() {
            body.insert("status".into(), Value::String(self.status.clone()));
            return Value::Object(body);
        }
        for (name, text) in [
            ("drift_threshold", &self.drift_threshold),
            ("length_drift_threshold", &self.length_drift_threshold),
            ("min_baseline_samples", &self.min_baseline_samples),
            ("false_alarm_budget", &self.false_alarm_budget),
        ] {
            body.insert(name.into(), number_or_text(text));
        }
        body.insert("auto_switch_enabled".into(), Value::Bool(self.auto_switch_enabled.is_some()));
        body.insert("active_prompt".into(), Value::String(self.active_prompt.clone()));
        Value::Object(body)
    }
}

/// Everything the page shows, read once.
struct PromptData {
    prompt: PromptRow,
    baselines: Vec<BaselineRow>,
    counts: SampleCounts,
    history: Vec<ScorePoint>,
    /// Samples of the active version scored past its baseline, up to a window's worth.
    window_fill: i64,
    events: Vec<DriftEventRow>,
    samples: Vec<SampleRow>,
}

async fn load(state: &AppState, project_id: i64, name: &str, params: &DetailParams) -> Result<PromptData, Response> {
    let store = &state.store;
    let prompt = match store.prompt_by_name(project_id, name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(layout::error_page(StatusCode::NOT_FOUND, &format!("There is no prompt named {name:?}.")))
        }
        Err(e) => return Err(store_error_page(e)),
    };
    let id = prompt.id;
    let read = tokio::try_join!(
        store.baselines(project_id, Some(id)),
        store.sample_counts(id),
        store.score_history(id, CHART_POINTS),
        store.drift_events(id, EVENTS_PAGE, cursor(&params.events_before)),
        store.samples(id, SAMPLES_PAGE, cursor(&params.before)),
        store.scored_past_baseline(id, prompt.active_prompt, WINDOW as i64),
    );
    let (baselines, counts, history, events, samples, window_fill) = read.map_err(store_error_page)?;
    Ok(PromptData { prompt, baselines, counts, history, window_fill, events, samples })
}

pub async fn detail(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(name): Path<String>,
    Query(params): Query<DetailParams>,
) -> Response {
    match load(&state, signed_in.session.project_id, &name, &params).await {
        Ok(data) => {
            let form = SettingsForm::of(&data.prompt);
            render(&signed_in, &data, &params, &form, &[], StatusCode::OK)
        }
        Err(page) => page,
    }
}

pub async fn save_settings(State(state): State<AppState>, Path(name): Path<String>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    let form = SettingsForm::from_fields(&fields);
    let patch = match PromptSettingsPatch::from_json(&form.to_json()) {
        Ok(patch) => patch,
        Err(invalid) => {
            let params = DetailParams::default();
            return match load(&state, signed_in.session.project_id, &name, &params).await {
                Ok(data) => {
                    render(&signed_in, &data, &params, &form, &invalid.problems, StatusCode::UNPROCESSABLE_ENTITY)
                }
                Err(page) => page,
            };
        }
    };
    let notice = if patch.status.is_some() { "handled" } else { "saved" };
    let changed = ops::prompts::patch(&state, &super::owner(&signed_in), name.clone(), patch).await;
    match changed {
        Ok(_) => redirect(&format!("{}?notice={notice}", prompt_href(&name))),
        Err(e) => api_error_page(e),
    }
}

/// The confirmation step before a reset (works without JavaScript).
pub async fn confirm_reset(State(state): State<AppState>, signed_in: SignedIn, Path(name): Path<String>) -> Response {
    let prompt = match state.store.prompt_by_name(signed_in.session.project_id, &name).await {
        Ok(Some(p)) => p,
        Ok(None) => return layout::error_page(StatusCode::NOT_FOUND, &format!("There is no prompt named {name:?}.")),
        Err(e) => return store_error_page(e),
    };
    let body = html! {
        h1 { "Reset the baseline of " (prompt.name) "?" }
        div.panel.warning {
            p { "Version " strong { (prompt.active_prompt.as_str()) } " forgets its baseline and learns a new one from its next "
                (prompt.min_baseline_samples) " samples. Until then no drift is detected for it. The prompt's status goes back to active." }
            p { "Drift events and samples already stored are kept." }
        }
        form method="post" action={ (prompt_href(&name)) "/reset" } {
            (csrf_field(&signed_in.session))
            p.actions {
                button.danger type="submit" { "Reset baseline" }
                " " a href=(prompt_href(&name)) { "Cancel" }
            }
        }
    };
    page(StatusCode::OK, layout("Reset baseline", Some(&signed_in.session), "/", body))
}

pub async fn reset(State(state): State<AppState>, Path(name): Path<String>, posted: PostedForm) -> Response {
    let signed_in = posted.signed_in;
    match ops::prompts::reset_baseline(&state, &super::owner(&signed_in), name.clone()).await {
        Ok(_) => redirect(&format!("{}?notice=reset", prompt_href(&name))),
        Err(e) => api_error_page(e),
    }
}

fn notice_text(notice: Option<&str>) -> Option<&'static str> {
    match notice? {
        "saved" => Some("Settings saved."),
        "handled" => Some("Marked as handled: the prompt is active again."),
        "reset" => Some("Baseline reset: the next samples learn a new one."),
        _ => None,
    }
}

fn render(
    signed_in: &SignedIn,
    data: &PromptData,
    params: &DetailParams,
    form: &SettingsForm,
    problems: &[Problem],
    status: StatusCode,
) -> Response {
    let p = &data.prompt;
    let href = prompt_href(&p.name);
    let body = html! {
        p.crumbs { a href="/" { "Prompts" } " / " }
        h1 { (p.name) " " (prompt_status(p)) }
        (layout::notice(notice_text(params.notice.as_deref())))
        (summary(data))
        section aria-labelledby="charts-h" {
            h2 #charts-h { "Scores" }
            (score_charts(data))
        }
        section aria-labelledby="settings-h" {
            h2 #settings-h { "Settings" }
            (settings_form(signed_in, p, form, problems))
            @if p.status == PromptStatus::Drifted {
                form.inline method="post" action={ (href) "/settings" } {
                    (csrf_field(&signed_in.session))
                    input type="hidden" name="status" value="active";
                    button.secondary type="submit" { "Mark drift as handled" }
                }
                " "
            }
            a.button.danger-outline href={ (href) "/reset" } { "Reset baseline…" }
        }
        section #events aria-labelledby="events-h" {
            h2 #events-h { "Drift events" }
            (events(data, &href, params))
        }
        section #samples aria-labelledby="samples-h" {
            h2 #samples-h { "Samples" }
            (samples(data, &href, params))
        }
    };
    page(status, layout(&p.name, Some(&signed_in.session), "/", body))
}

fn prompt_status(p: &PromptRow) -> Markup {
    html! { span class={ "badge status-" (p.status.as_str()) } { (p.status.as_str()) } }
}

fn summary(data: &PromptData) -> Markup {
    let p = &data.prompt;
    let c = &data.counts;
    html! {
        dl.summary {
            div { dt { "Active version" } dd { (p.active_prompt.as_str()) } }
            @for version in PromptVersion::ALL {
                @let b = data.baselines.iter().find(|b| b.version == *version);
                div {
                    dt { "Baseline " (version.as_str()) }
                    dd {
                        @match b {
                            Some(b) => { (b.status.as_str()) " · " (b.sample_count) "/" (p.min_baseline_samples) " samples" }
                            None => span.muted { "no samples yet" },
                        }
                    }
                }
            }
            div { dt { "Samples" } dd { (c.total) " (" (c.pending) " pending, " (c.done) " done, " (c.failed) " failed, " (c.skipped) " skipped)" } }
            div {
                dt { "Scoring" }
                dd {
                    @if p.sampling_rate < 1.0 {
                        (format!("{:.1}", 100.0 * p.sampling_rate)) " % of recent samples: the worker is sampling an overload (the others are stored as skipped)"
                    } @else {
                        "every sample"
                    }
                }
            }
            div { dt { "Thresholds" } dd { "semantic below " (p.drift_threshold) ", length beyond ±" (p.length_drift_threshold) } }
            div { dt { "False-alarm budget" } dd { (p.false_alarm_budget) " per 100,000 stable samples (distribution and refusal detectors)" } }
            div { dt { "Auto-switch" } dd { @if p.auto_switch_enabled { "on (to the other version when drift is detected)" } @else { "off" } } }
        }
    }
}

fn markers(events: &[DriftEventRow]) -> Vec<Marker> {
    let mut markers = Vec::new();
    for e in events {
        markers.push(Marker {
            x: e.sample_id as f64,
            kind: MarkerKind::Drift,
            label: format!("{} drift on version {} (score {:.3})", e.kind.as_str(), e.version.as_str(), e.score),
        });
        if let Some(to) = e.switched_to {
            markers.push(Marker {
                x: e.sample_id as f64,
                kind: MarkerKind::Switch,
                label: format!("switched {} → {}", e.version.as_str(), to.as_str()),
            });
        }
    }
    markers
}

fn score_charts(data: &PromptData) -> Markup {
    let p = &data.prompt;
    let semantic: Vec<(f64, f64)> =
        data.history.iter().filter_map(|s| Some((s.sample_id as f64, s.semantic_score?))).collect();
    let length: Vec<(f64, f64)> =
        data.history.iter().filter_map(|s| Some((s.sample_id as f64, s.length_score?))).collect();
    let distribution: Vec<(f64, f64)> =
        data.history.iter().filter_map(|s| Some((s.sample_id as f64, s.distribution_score?))).collect();
    let refusals: Vec<(f64, f64)> =
        data.history.iter().filter_map(|s| Some((s.sample_id as f64, s.refusal_rate? * 100.0))).collect();
    let evidence_threshold = Budget::new(p.false_alarm_budget).distribution_threshold(distribution::STEP);
    let reference_refusals = data
        .baselines
        .iter()
        .find(|b| b.version == p.active_prompt)
        .and_then(|b| b.reference_refusal_rate)
        .unwrap_or(0.0)
        * 100.0;
    let markers = markers(&data.events);
    let x_label = |x: f64| format!("sample #{x:.0}");
    // a score needs a full window of samples scored past a ready baseline
    let ready = data.baselines.iter().any(|b| b.version == p.active_prompt && b.status == BaselineStatus::Ready);
    let waiting = if ready {
        format!("scores start after {WINDOW} samples past the baseline: {}/{WINDOW}", data.window_fill)
    } else {
        "scores start once the baseline is ready".to_string()
    };
    html! {
        p.muted { "The last " (CHART_POINTS) " scored samples. Semantic drift fires when the score falls below its threshold; length drift when the length score goes beyond ± its threshold; distribution drift when the evidence rises above the line the false-alarm budget sets; refusal drift when the refusal rate is clearly above the reference's (an exact test, at the same budget)." }
        div.charts {
            figure {
                figcaption { "Semantic score" }
                (charts::line_chart(&Series { name: "Semantic score", points: &semantic, threshold: p.drift_threshold, drifting: Drifting::Below, waiting: &waiting }, &markers, &x_label))
            }
            figure {
                figcaption { "Length score" }
                (charts::line_chart(&Series { name: "Length score", points: &length, threshold: p.length_drift_threshold, drifting: Drifting::BeyondEither, waiting: &waiting }, &markers, &x_label))
            }
            figure {
                figcaption { "Distribution evidence (−log10 p) against the budget's line" }
                (charts::line_chart(&Series { name: "Distribution evidence", points: &distribution, threshold: evidence_threshold, drifting: Drifting::Above, waiting: "the distribution test looks every 5 samples once 20 are past the baseline" }, &markers, &x_label))
            }
            figure {
                figcaption { "Refusal rate of the last 50 responses (%) against the reference's" }
                (charts::line_chart(&Series { name: "Refusal rate", points: &refusals, threshold: reference_refusals, drifting: Drifting::Above, waiting: "the refusal rate starts once the baseline is ready" }, &markers, &x_label))
            }
        }
    }
}

fn settings_form(signed_in: &SignedIn, p: &PromptRow, form: &SettingsForm, problems: &[Problem]) -> Markup {
    let number = |id: &str, label: &str, value: &str, step: &str, hint: &str| {
        let bad = layout::invalid(problems, id);
        html! {
            div.field {
                label for=(id) { (label) }
                input id=(id) name=(id) type="text" inputmode="decimal" value=(value) data-step=(step)
                    aria-invalid=[bad.then_some("true")] aria-describedby={ "hint-" (id) @if bad { " err-" (id) } };
                small.muted id={ "hint-" (id) } { (hint) }
                (field_problems(problems, id, id))
            }
        }
    };
    html! {
        @if !problems.is_empty() {
            p.error role="alert" { "The settings were not saved: fix the fields marked below." }
        }
        form.settings method="post" action={ (prompt_href(&p.name)) "/settings" } novalidate {
            (csrf_field(&signed_in.session))
            div.grid {
                (number("drift_threshold", "Semantic threshold", &form.drift_threshold, "0.01", "0 to 1; drift when the score falls below it"))
                (number("length_drift_threshold", "Length threshold", &form.length_drift_threshold, "0.1", "above 0; drift when |length score| exceeds it"))
                (number("min_baseline_samples", "Baseline samples", &form.min_baseline_samples, "1", "samples a baseline learns from"))
                (number("false_alarm_budget", "False-alarm budget", &form.false_alarm_budget, "0.1", "distribution and refusal detectors: expected false alarms per 100,000 stable samples"))
                div.field {
                    label for="active_prompt" { "Active version" }
                    select #active_prompt name="active_prompt" {
                        @for v in PromptVersion::ALL {
                            option value=(v.as_str()) selected[form.active_prompt == v.as_str()] { (v.as_str()) }
                        }
                    }
                    (field_problems(problems, "active_prompt", "active_prompt"))
                }
                div.field.check {
                    input #auto_switch_enabled type="checkbox" name="auto_switch_enabled" checked[form.auto_switch_enabled.is_some()];
                    label for="auto_switch_enabled" { "Switch to the other version when drift is detected" }
                }
            }
            p { button type="submit" { "Save settings" } }
        }
    }
}

/// A share as a percentage, "–" when unknown.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".to_string(), |s| format!("{:.1}%", s * 100.0))
}

fn explanation(text: &str) -> Markup {
    let Ok(e) = serde_json::from_str::<Value>(text) else { return html! {} };
    let quotes = |list: &Value| -> Markup {
        html! {
            ol.quotes {
                @for q in list.as_array().into_iter().flatten() {
                    li {
                        span.muted { "#" (q["sample_id"]) " · similarity " (score(q["similarity"].as_f64())) }
                        @if let Some(t) = q["text"].as_str() { blockquote { (t) } }
                    }
                }
            }
        }
    };
    let terms = |list: &Value| -> Markup {
        html! {
            @for t in list.as_array().into_iter().flatten() {
                li { strong { (t["term"].as_str().unwrap_or("")) } " "
                    span.muted { (format!("{:.0}% → {:.0}%", t["baseline_share"].as_f64().unwrap_or(0.0) * 100.0, t["recent_share"].as_f64().unwrap_or(0.0) * 100.0)) } }
            }
        }
    };
    let lengths = |q: &Value| -> Markup {
        html! { td { (q["p10"]) } td { (q["p25"]) } td { (q["p50"]) } td { (q["p75"]) } td { (q["p90"]) } td { (q["samples"]) } }
    };
    // The terms that moved, or why there are none (both text-based kinds show it).
    let term_shifts = html! {
        @if e.get("terms_rose").is_some() {
            div.compare {
                div { h4 { "Terms that rose" } ul { (terms(&e["terms_rose"])) } }
                div { h4 { "Terms that fell" } ul { (terms(&e["terms_fell"])) } }
            }
        } @else {
            p.muted { "Content capture is off for this project: responses are named by id only." }
        }
    };
    html! {
        @match e["kind"].as_str() {
            Some("semantic") => {
                div.compare {
                    div { h4 { "Recent responses farthest from the baseline" } (quotes(&e["farthest_recent"])) }
                    div { h4 { "Baseline responses closest to it" } (quotes(&e["closest_baseline"])) }
                }
                (term_shifts)
            }
            Some("distribution") => {
                div.compare {
                    div { h4 { "Recent responses least like the reference" } (quotes(&e["least_like_reference"])) }
                    div { h4 { "Reference responses least like the recent ones" } (quotes(&e["reference_least_like_recent"])) }
                }
                (term_shifts)
            }
            Some("refusal") => {
                p {
                    "Refusals: " strong { (percent(e["recent_rate"].as_f64())) } " of the last " (e["recent_window"]) " responses, against "
                    (percent(e["reference_rate"].as_f64())) " in the reference."
                }
                h4 { "Latest recent refusals" }
                ol.quotes {
                    @for q in e["recent_refusals"].as_array().into_iter().flatten() {
                        li {
                            span.muted { "#" (q["sample_id"]) }
                            @if let Some(t) = q["text"].as_str() { blockquote { (t) } }
                        }
                    }
                }
            }
            Some("length") => {
                div.table-wrap { table {
                    caption { "Response length (characters)" }
                    thead { tr { th scope="col" { "" } th scope="col" { "p10" } th scope="col" { "p25" } th scope="col" { "median" } th scope="col" { "p75" } th scope="col" { "p90" } th scope="col" { "samples" } } }
                    tbody {
                        tr { th scope="row" { "Baseline" } (lengths(&e["baseline_lengths"])) }
                        tr { th scope="row" { "Recent" } (lengths(&e["recent_lengths"])) }
                    }
                } }
            }
            _ => {}
        }
    }
}

fn events(data: &PromptData, href: &str, params: &DetailParams) -> Markup {
    let next = (data.events.len() as i64 == EVENTS_PAGE)
        .then(|| data.events.last().map(|e| format!("{href}?events_before={}#events", e.id)))
        .flatten();
    let previous = params.events_before.is_some().then(|| format!("{href}#events"));
    html! {
        @if data.events.is_empty() {
            p.muted { "No drift detected yet." }
        }
        @for e in &data.events {
            @let over = match e.kind {
                DriftKind::Semantic => semantic_over(Some(e.score), e.threshold),
                DriftKind::Length => length_over(Some(e.score), e.threshold),
                DriftKind::Distribution | DriftKind::Refusal => e.score >= e.threshold,
            };
            @let score_name = match e.kind { DriftKind::Distribution | DriftKind::Refusal => "evidence", _ => "score" };
            details.event open[e.id == data.events[0].id && params.events_before.is_none()] {
                summary {
                    strong { (e.kind.as_str()) " drift" } " on version " (e.version.as_str()) " · " (score_name) " "
                    span class=(if over { "score over" } else { "score" }) { (format!("{:.3}", e.score)) }
                    " vs " (format!("{:.2}", e.threshold)) " · " (time(e.created_at))
                    @if let Some(to) = e.switched_to { " · " span.badge.status-switch { "switched to " (to.as_str()) } }
                }
                @if let Some(text) = &e.explanation { (explanation(text)) } @else { p.muted { "No explanation was recorded for this event." } }
            }
        }
        (layout::pager("Drift event pages", previous, next))
    }
}

fn samples(data: &PromptData, href: &str, params: &DetailParams) -> Markup {
    let next = (data.samples.len() as i64 == SAMPLES_PAGE)
        .then(|| data.samples.last().map(|s| format!("{href}?before={}#samples", s.id)))
        .flatten();
    // keyset paging goes forwards only: "previous" returns to the newest samples
    let previous = params.before.is_some().then(|| format!("{href}#samples"));
    html! {
        @if data.samples.is_empty() {
            p.muted { "No samples on this page." }
        } @else {
            div.table-wrap { table #sample-table {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Received" } th scope="col" { "Version" } th scope="col" { "State" }
                    th scope="col" { "Semantic" } th scope="col" { "Length" } th scope="col" { "Response" }
                } }
                tbody {
                    @for s in &data.samples {
                        tr {
                            td { (s.id) } td { (time(s.received_at)) } td { (s.prompt_version.as_str()) }
                            td { (s.state.as_str()) @if let Some(err) = &s.error { br; span.error { (err) } } }
                            td { (score(s.semantic_score)) } td { (score(s.length_score)) }
                            td.response { (truncate(&s.response_text, RESPONSE_CHARS)) }
                        }
                    }
                }
            } }
        }
        (layout::pager("Sample pages", previous, next))
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
