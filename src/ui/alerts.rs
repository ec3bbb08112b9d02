//! Alert channels (`/ui/alerts`): the list, a create form whose answer shows a webhook's signing
//! secret once, and one channel's page with a test send, enable/disable and its delivery
//! history, paged. Everything goes through the REST handlers, so secrets stay masked the same
//! way and the same address checks apply.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};

use super::forms::{field, problems_of};
use super::layout::{self, api_error_page, csrf_field, field_problems, layout, page, pager, time};
use super::owner;
use super::session::{redirect, PostedForm, SignedIn};
use crate::domain::{AlertEventType, ChannelKind};
use crate::ops::alerts::{self as op, AlertChannel, NewAlertChannel};
use crate::ops::prompts::Page;
use crate::validate::{FromJson, Problem};
use crate::web::AppState;

const NAV: &str = "/ui/alerts";
const DELIVERIES_PAGE: i64 = 25;

fn channel_href(id: i64) -> String {
    format!("{NAV}/{id}")
}

/// Channel ids in URLs are positive integers; anything else names no channel.
fn channel_id(text: &str) -> Option<i64> {
    text.parse().ok().filter(|n: &i64| *n > 0)
}

fn no_such_channel() -> Response {
    layout::error_page(StatusCode::NOT_FOUND, "There is no such alert channel in this project.")
}

/// The create form as typed.
#[derive(Debug, Default)]
struct ChannelForm {
    kind: String,
    url: String,
    events: Vec<String>,
    prompts: String,
}

impl ChannelForm {
    fn from_fields(fields: &[(String, String)]) -> ChannelForm {
        ChannelForm {
            kind: field(fields, "kind").to_string(),
            url: field(fields, "url").trim().to_string(),
            events: fields.iter().filter(|(n, _)| n == "events").map(|(_, v)| v.clone()).collect(),
            prompts: field(fields, "prompts").to_string(),
        }
    }

    /// The body `POST /api/v1/alert-channels` would get: no events ticked or no prompts named
    /// means every one (the API's absent filter).
    fn to_json(&self) -> Value {
        let mut body = json!({"kind": self.kind, "url": self.url});
        if !self.events.is_empty() {
            body["events"] = json!(self.events);
        }
        let prompts: Vec<&str> = self.prompts.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        if !prompts.is_empty() {
            body["prompts"] = json!(prompts);
        }
        body
    }
}

fn filter_text(list: &Option<Vec<impl std::fmt::Display>>) -> String {
    match list {
        None => "all".into(),
        Some(items) => items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    }
}

fn channel_state(c: &AlertChannel) -> Markup {
    html! {
        @if c.enabled {
            span.badge.status-ready { "enabled" }
            @if let Some(since) = c.failing_since { " " span.error { "failing since " (time(since)) } }
        } @else {
            span.badge.status-drifted { "disabled" }
            @if let Some(r) = &c.disabled_reason { " " span.muted { (r) } }
        }
    }
}

pub async fn list(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    render_list(&state, &signed_in, &ChannelForm::default(), &[]).await
}

async fn render_list(state: &AppState, signed_in: &SignedIn, form: &ChannelForm, problems: &[Problem]) -> Response {
    let channels = match op::list(state, &owner(signed_in)).await {
        Ok(list) => list.channels,
        Err(e) => return api_error_page(e),
    };
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let body = html! {
        h1 { "Alert channels" }
        p.muted { "Drift, recoveries, version switches and ready baselines are sent to signed webhooks (Standard Webhooks) and Slack." }
        @if channels.is_empty() {
            div.panel #empty-channels { p { strong { "No alert channels yet." } " Add a webhook or a Slack incoming webhook below, then send it a test." } }
        } @else {
            div.table-wrap { table #channel-list {
                thead { tr { th scope="col" { "Channel" } th scope="col" { "Destination" } th scope="col" { "Events" } th scope="col" { "Prompts" } th scope="col" { "State" } } }
                tbody { @for c in &channels { tr {
                    th scope="row" { a href=(channel_href(c.id)) { (c.kind.as_str()) " #" (c.id) } }
                    td.response { code { (c.url) } }
                    td { (filter_text(&c.events)) } td { (filter_text(&c.prompts)) }
                    td { (channel_state(c)) }
                } } }
            } }
        }
        section aria-labelledby="create-h" {
            h2 #create-h { "Add a channel" }
            (create_form(signed_in, form, problems))
        }
    };
    page(status, layout("Alerts", Some(&signed_in.session), NAV, body))
}

fn create_form(signed_in: &SignedIn, form: &ChannelForm, problems: &[Problem]) -> Markup {
    html! {
        @if !problems.is_empty() { p.error role="alert" { "The channel was not added: fix the fields marked below." } }
        form method="post" action=(NAV) novalidate {
            (csrf_field(&signed_in.session))
            div.field {
                label for="kind" { "Kind" }
                select #kind name="kind" {
                    @for k in ChannelKind::ALL { option value=(k.as_str()) selected[form.kind == k.as_str()] { (k.as_str()) } }
                }
                (field_problems(problems, "kind", "kind"))
            }
            div.field {
                label for="url" { "URL" }
                input #url name="url" type="url" value=(form.url) placeholder="https://example.com/hooks/drift"
                    aria-invalid=[layout::invalid(problems, "url").then_some("true")];
                (field_problems(problems, "url", "url"))
            }
            fieldset {
                legend { "Events (none ticked = all)" }
                @for e in AlertEventType::ALL.iter().filter(|e| **e != AlertEventType::Test) {
                    div.check {
                        input type="checkbox" name="events" value=(e.as_str()) id={ "ev-" (e.as_str()) } checked[form.events.iter().any(|x| x == e.as_str())];
                        label for={ "ev-" (e.as_str()) } { code { (e.as_str()) } }
                    }
                }
                @for p in problems.iter().filter(|p| p.path.starts_with("events")) { span.field-error role="alert" { (p.path) " " (p.message) } }
            }
            div.field {
                label for="prompts" { "Prompts (comma-separated; empty = all)" }
                input #prompts name="prompts" type="text" value=(form.prompts);
                @for p in problems.iter().filter(|p| p.path.starts_with("prompts")) { span.field-error role="alert" { (p.path) " " (p.message) } }
            }
            p { button type="submit" { "Add channel" } }
        }
    }
}

pub async fn create(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, fields, .. } = posted;
    let form = ChannelForm::from_fields(&fields);
    let new = match NewAlertChannel::from_json(&form.to_json()) {
        Ok(new) => new,
        Err(e) => return render_list(&state, &signed_in, &form, &e.problems).await,
    };
    let created = match op::create(&state, &owner(&signed_in), new).await {
        Ok((_, created)) => created,
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            return render_list(&state, &signed_in, &form, &problems_of(&e)).await
        }
        Err(e) => return api_error_page(e),
    };
    let c = &created.channel;
    // The secret is in this answer only (the page is never cached); it is not stored readable.
    let body = html! {
        h1 { "Channel added" }
        p { (c.kind.as_str()) " #" (c.id) " sends to " code { (c.url) } "." }
        @if let Some(secret) = &created.secret {
            div.panel.warning #secret-panel {
                p { strong { "Signing secret (shown only now):" } }
                pre #channel-secret { (secret) }
                p.muted { "Verify each delivery's " code { "webhook-signature" } " with it (Standard Webhooks). Rotate it from the API if it leaks." }
            }
        }
        p { a.button href=(channel_href(c.id)) { "Open the channel" } " " a href=(NAV) { "Back to alert channels" } }
    };
    page(StatusCode::CREATED, layout("Channel added", Some(&signed_in.session), NAV, body))
}

#[derive(Debug, Default, Deserialize)]
pub struct ChannelParams {
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(params): Query<ChannelParams>,
) -> Response {
    let Some(id) = channel_id(&id) else { return no_such_channel() };
    let before = params.before.as_deref().and_then(|b| b.parse().ok()).filter(|n: &i64| *n > 0);
    let caller = owner(&signed_in);
    let read = tokio::try_join!(
        op::detail(&state, &caller, id),
        op::deliveries(&state, &caller, id, Page { limit: DELIVERIES_PAGE, before }),
    );
    let (c, deliveries) = match read {
        Ok((c, d)) => (c, d),
        Err(e) => return api_error_page(e),
    };
    let notice = match params.notice.as_deref() {
        Some("test") => Some("Test alert queued: it appears below once sent."),
        Some("enabled") => Some("Channel enabled."),
        Some("disabled") => Some("Channel disabled."),
        _ => None,
    };
    let action = |verb: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action={ (channel_href(c.id)) "/" (verb) } {
                (csrf_field(&signed_in.session))
                button class=(class) type="submit" { (label) }
            }
        }
    };
    let body = html! {
        p.crumbs { a href=(NAV) { "Alert channels" } " / " }
        h1 { (c.kind.as_str()) " #" (c.id) " " (channel_state(&c)) }
        (layout::notice(notice))
        dl.summary {
            div { dt { "Destination" } dd { code { (c.url) } } }
            div { dt { "Events" } dd { (filter_text(&c.events)) } }
            div { dt { "Prompts" } dd { (filter_text(&c.prompts)) } }
            div { dt { "Created" } dd { (time(c.created_at)) } }
        }
        p.actions {
            @if c.enabled { (action("test", "Send a test alert", "")) " " (action("disable", "Disable", "secondary")) }
            @else { (action("enable", "Enable", "")) }
        }
        h2 { "Deliveries" }
        @if deliveries.deliveries.is_empty() {
            p.muted #no-deliveries { "Nothing sent yet." }
        } @else {
            div.table-wrap { table #delivery-list {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Last answer" } th scope="col" { "Created" } th scope="col" { "Next attempt" } } }
                tbody { @for d in &deliveries.deliveries { tr {
                    td { code { (d.event_type.as_str()) } }
                    td { (d.status.as_str()) }
                    td { (d.attempts) }
                    td {
                        @if let Some(s) = d.last_status { "HTTP " (s) } @if let Some(e) = &d.last_error { " " span.error { (e) } }
                        @if let Some(ms) = d.last_latency_ms { span.muted { " · " (ms) " ms" } }
                    }
                    td { (time(d.created_at)) }
                    td { @if let Some(t) = d.next_attempt_at { (time(t)) } @else { "–" } }
                } } }
            } }
        }
        (pager("Delivery pages", before.map(|_| channel_href(c.id)), deliveries.next_before.map(|b| format!("{}?before={b}", channel_href(c.id)))))
    };
    page(StatusCode::OK, layout("Alert channel", Some(&signed_in.session), NAV, body))
}

/// `POST /ui/alerts/{id}/{test|enable|disable}`.
pub async fn act(
    State(state): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
    posted: PostedForm,
) -> Response {
    let Some(id) = channel_id(&id) else { return no_such_channel() };
    let signed_in = posted.signed_in;
    let (st, who, path) = (&state, &owner(&signed_in), id);
    let done = match verb.as_str() {
        "test" => op::test(st, who, path).await.map(|_| "test"),
        "enable" => op::enable(st, who, path).await.map(|_| "enabled"),
        "disable" => op::disable(st, who, path).await.map(|_| "disabled"),
        _ => return layout::error_page(StatusCode::NOT_FOUND, "There is no such action on a channel."),
    };
    match done {
        Ok(notice) => redirect(&format!("{}?notice={notice}", channel_href(id))),
        Err(e) => api_error_page(e),
    }
}
