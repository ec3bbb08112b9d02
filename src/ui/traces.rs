//! Traces (`/ui/traces`): the list with the REST API's filters, paged by the same cursor, and
//! one trace's spans as a waterfall with model, usage, timings, errors and content (none when
//! the project does not capture content: it was never stored).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::cost::cost_text;
use super::layout::{api_error_page, layout, page, pager, time};
use super::session::SignedIn;
use super::{encode, owner};
use crate::domain::SpanStatus;
use crate::ops::traces::{self as op, SpanPageParams, SpanView, TraceDetail, TraceListParams, TraceLogPage};
use crate::store::TraceStatus;
use crate::web::AppState;

const NAV: &str = "/ui/traces";
const PAGE_SIZE: i64 = 50;
/// The text filters, named as in `GET /api/v1/traces`.
const TEXT_FILTERS: &[(&str, &str)] =
    &[("config_key", "Config key"), ("session_id", "Session"), ("customer_id", "Customer"), ("model", "Model")];

/// A `datetime-local` value (UTC) as epoch milliseconds.
fn parse_local_time(text: &str) -> Option<i64> {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(t.and_utc().timestamp_millis())
}

/// The list's filters as typed, and the REST parameters they make (or what is wrong with them).
struct TraceFilters {
    typed: HashMap<String, String>,
    /// Taken by the handler once read.
    params: Option<TraceListParams>,
    problems: Vec<String>,
}

impl TraceFilters {
    fn read(q: HashMap<String, String>) -> TraceFilters {
        let text = |name: &str| q.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut problems = Vec::new();
        let mut time = |name: &str, label: &str| {
            let raw = text(name)?;
            let parsed = parse_local_time(&raw);
            if parsed.is_none() {
                problems.push(format!("{label} must be a date and time like 2026-11-23T14:05"));
            }
            parsed
        };
        let from = time("from", "From");
        let to = time("to", "To");
        let status = match text("status").as_deref() {
            Some("ERROR") => Some(TraceStatus::Error),
            Some("OK") => Some(TraceStatus::Ok),
            _ => None,
        };
        let before = text("before").and_then(|b| op::trace_cursor(&b));
        let params = TraceListParams {
            config_key: text("config_key"),
            session_id: text("session_id"),
            customer_id: text("customer_id"),
            model: text("model"),
            status,
            from,
            to,
            limit: PAGE_SIZE,
            before,
        };
        TraceFilters { typed: q, params: Some(params), problems }
    }

    fn value(&self, name: &str) -> &str {
        self.typed.get(name).map_or("", String::as_str)
    }

    /// This list's URL from its first page, or from the page after `cursor`.
    fn href(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<String> = self
            .typed
            .iter()
            .filter(|(k, v)| k.as_str() != "before" && !v.is_empty())
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        pairs.sort();
        pairs.extend(cursor.map(|c| format!("before={}", encode(c))));
        format!("{NAV}?{}", pairs.join("&"))
    }
}

pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut filters = TraceFilters::read(q);
    let params = filters.params.take().expect("read sets the parameters");
    let paging = params.before.is_some();
    let found = if filters.problems.is_empty() {
        match op::list(&state, &owner(&signed_in), params).await {
            Ok(page) => Some(page),
            Err(e) => return api_error_page(e),
        }
    } else {
        None
    };
    let status = if filters.problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let body = html! {
        h1 { "Traces" }
        form.filters method="get" action=(NAV) role="search" {
            @for (name, label) in TEXT_FILTERS {
                div { label for=(name) { (label) } input id=(name) name=(name) type="text" value=(filters.value(name)); }
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "Any" }
                    option value="OK" selected[filters.value("status") == "OK"] { "OK" }
                    option value="ERROR" selected[filters.value("status") == "ERROR"] { "ERROR" }
                }
            }
            div { label for="from" { "From (UTC)" } input #from name="from" type="datetime-local" value=(filters.value("from")); }
            div { label for="to" { "To (UTC)" } input #to name="to" type="datetime-local" value=(filters.value("to")); }
            div { button type="submit" { "Filter" } }
        }
        @for p in &filters.problems { p.error role="alert" { (p) } }
        @if let Some(found) = &found {
            @if found.traces.is_empty() {
                div.panel #empty-traces {
                    @if paging || filters.typed.values().any(|v| !v.is_empty()) {
                        p { "No trace matches these filters. " a href=(NAV) { "Show all traces" } }
                    } @else {
                        p { strong { "No traces yet." } " Send them with the Fallom SDK (" code { "fallom.init(api_key=...)" } ") or any OpenTelemetry exporter to " code { "/v1/traces" } "." }
                    }
                }
            } @else {
                div.table-wrap { table #trace-list {
                    thead { tr {
                        th scope="col" { "Trace" } th scope="col" { "Started" } th scope="col" { "Duration" } th scope="col" { "Spans" }
                        th scope="col" { "Status" } th scope="col" { "Tokens in / out" } th scope="col" { "Cost" } th scope="col" { "Session" } th scope="col" { "Config" }
                    } }
                    tbody { @for t in &found.traces { tr {
                        th scope="row" { a href={ (NAV) "/" (encode(&t.trace_id)) } { (t.name.as_deref().unwrap_or(&t.trace_id)) } }
                        td { (time(t.start_ms)) } td { (t.duration_ms) " ms" } td { (t.span_count) }
                        td { span class={ "badge " @if t.error_count > 0 { "status-drifted" } } { (t.status.as_str()) } }
                        td { (t.input_tokens.unwrap_or(0)) " / " (t.output_tokens.unwrap_or(0)) }
                        td { (cost_text(&t.cost)) }
                        td { (t.session_id.as_deref().unwrap_or("–")) } td { (t.config_key.as_deref().unwrap_or("–")) }
                    } } }
                } }
            }
            (pager("Trace pages", paging.then(|| filters.href(None)), found.next_before.as_deref().map(|c| filters.href(Some(c)))))
        }
    };
    page(status, layout("Traces", Some(&signed_in.session), NAV, body))
}

/// Spans in tree order (a parent before its children, siblings by start), with their depth.
fn tree_order(spans: &[SpanView]) -> Vec<(usize, &SpanView)> {
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&SpanView>> = HashMap::new();
    for s in spans {
        // a parent that is not in the trace (not sent, or sent later) makes the span a root
        let parent = s.parent_span_id.as_deref().filter(|p| ids.contains(p) && *p != s.span_id);
        children.entry(parent).or_default().push(s);
    }
    for list in children.values_mut() {
        // popped from the end of a stack: latest first here means earliest visited first
        list.sort_by(|a, b| (b.start_ms, &b.span_id).cmp(&(a.start_ms, &a.span_id)));
    }
    let mut ordered = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, &SpanView)> =
        children.remove(&None).unwrap_or_default().into_iter().map(|s| (0, s)).collect();
    while let Some((depth, span)) = stack.pop() {
        ordered.push((depth, span));
        if let Some(list) = children.remove(&Some(span.span_id.as_str())) {
            stack.extend(list.into_iter().map(|s| (depth + 1, s)));
        }
    }
    // spans whose parents form a loop are reachable from no root: list them at the top level
    for list in children.into_values() {
        ordered.extend(list.into_iter().rev().map(|s| (0, s)));
    }
    ordered
}

/// The span's bar on the trace's time axis, as an SVG 1000 units wide.
fn bar(span: &SpanView, start: i64, total: i64) -> Markup {
    let total = total.max(1) as f64;
    let x = ((span.start_ms - start) as f64 / total * 1000.0).clamp(0.0, 1000.0);
    let width = (span.duration_ms.max(0) as f64 / total * 1000.0).clamp(2.0, 1000.0 - x.min(998.0));
    let class = if span.status == SpanStatus::Error { "wf-bar wf-error" } else { "wf-bar" };
    html! {
        svg.waterfall viewBox="0 0 1000 12" preserveAspectRatio="none" role="img"
            aria-label=(format!("starts at +{} ms, lasts {} ms", span.start_ms - start, span.duration_ms)) {
            rect class=(class) x=(format!("{x:.1}")) y="1" width=(format!("{width:.1}")) height="10" rx="2" {}
        }
    }
}

/// Spans per page of a trace.
const SPANS_PAGE: i64 = 200;

pub async fn detail(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(trace_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let capture = signed_in.session.capture_content;
    let after = q.get("after").and_then(|a| op::span_cursor(a));
    let span_page = SpanPageParams { limit: SPANS_PAGE, after };
    let href = format!("{NAV}/{}", encode(&trace_id));
    let trace = match op::detail(&state, &owner(&signed_in), trace_id.clone(), span_page).await {
        Ok(t) => t,
        Err(e) => return api_error_page(e),
    };
    let logs_after = q.get("logs_after").and_then(|a| op::span_cursor(a));
    let log_page = SpanPageParams { limit: LOG_RECORDS_PAGE, after: logs_after };
    let logs = if trace.log_record_count == 0 {
        None
    } else {
        match op::logs(&state, &owner(&signed_in), trace_id.clone(), log_page).await {
            Ok(page) => Some(page),
            Err(e) => return api_error_page(e),
        }
    };
    let ordered = tree_order(&trace.spans);
    let body = html! {
        p.crumbs { a href=(NAV) { "Traces" } " / " }
        h1 { "Trace " code { (trace.trace_id) } }
        p.muted { (trace.span_count) " spans · " (trace.duration_ms) " ms · started " (time(trace.start_ms))
            @if trace.span_count > trace.spans.len() as i64 { " · " (trace.spans.len()) " on this page" }
            " · cost " (cost_text(&trace.cost)) }
        @if !capture { p.notice { "Content capture is off for this project: prompts and responses are not stored, so none are shown." } }
        div.table-wrap { table #waterfall {
            caption.visually-hidden { "The trace's spans on its time line" }
            thead { tr { th scope="col" { "Span" } th scope="col" { "Model" } th scope="col" { "Duration" } th scope="col" { "Tokens in / out" } th scope="col" { "Cost" } th scope="col" .wf-col { "Timeline" } } }
            tbody { @for (depth, s) in &ordered { tr {
                th scope="row" class={ "depth-" ((*depth).min(8)) } { a href={ "#span-" (s.span_id) } { (s.name) } }
                td { (s.model.as_deref().unwrap_or("–")) }
                td { (s.duration_ms) " ms" }
                td { (s.usage.input_tokens.map_or("–".into(), |n| n.to_string())) " / " (s.usage.output_tokens.map_or("–".into(), |n| n.to_string())) }
                td { (cost_text(&s.cost)) }
                td.wf-col { (bar(s, trace.start_ms, trace.duration_ms)) }
            } } }
        } }
        (pager("Span pages", after.map(|_| href.clone()), trace.next_after.as_ref().map(|a| format!("{href}?after={}", encode(a)))))
        h2 { "Spans" }
        @for (_, s) in &ordered {
            details.span id={ "span-" (s.span_id) } open[s.status == SpanStatus::Error] {
                summary { strong { (s.name) } " · " (s.status.as_str()) " · " (s.duration_ms) " ms" @if let Some(m) = &s.model { " · " code { (m) } } }
                dl.summary {
                    div { dt { "Span id" } dd { code { (s.span_id) } } }
                    div { dt { "Started" } dd { (time(s.start_ms)) } }
                    @if let Some(t) = s.time_to_first_token_ms { div { dt { "First token" } dd { (t) " ms" } } }
                    @if let Some(n) = s.usage.total_tokens { div { dt { "Total tokens" } dd { (n) } } }
                    @if let Some(k) = &s.prompt_key { div { dt { "Prompt template" } dd { (k) @if let Some(v) = s.prompt_version { " v" (v) } } } }
                    @if let Some(id) = s.sample_id { div { dt { "Drift sample" } dd { "#" (id) } } }
                    @if let Some(id) = s.resource_id { div { dt { "Resource" } dd { a href={ "#resource-" (id) } { "#" (id) } } } }
                }
                @if let Some(e) = &s.error_message { p.error { (e) } }
                @if let Some(r) = &s.request { h4 { "Request" } pre { (r) } }
                @if let Some(r) = &s.response_text { h4 { "Response" } pre { (r) } }
                @if !s.attributes.is_empty() {
                    details.attributes {
                        summary { "Attributes (" (s.attributes.len()) ")" }
                        pre { (serde_json::to_string_pretty(&s.attributes).unwrap_or_default()) }
                    }
                }
            }
        }
        @if let Some(logs) = &logs { (log_records(&trace, logs, &href, logs_after.is_some())) }
        (resources(&trace, logs.as_ref()))
    };
    page(StatusCode::OK, layout("Trace", Some(&signed_in.session), NAV, body))
}

/// The OTLP resources this page's spans and log records name, each shown once (a resource is
/// shared by every span of an exporter, and can be large).
fn resources(trace: &TraceDetail, logs: Option<&TraceLogPage>) -> Markup {
    let mut all = trace.resources.clone();
    if let Some(logs) = logs {
        all.extend(logs.resources.iter().map(|(id, r)| (id.clone(), r.clone())));
    }
    html! {
        @if !all.is_empty() {
            h2 #resources { "Resources" }
            @for (id, attributes) in &all {
                details.attributes id={ "resource-" (id) } {
                    summary { "Resource #" (id) @if let Some(name) = attributes.get("service.name").and_then(|v| v.as_str()) { " · " code { (name) } } }
                    pre { (serde_json::to_string_pretty(attributes).unwrap_or_default()) }
                }
            }
        }
    }
}

/// Log records per page of a trace.
const LOG_RECORDS_PAGE: i64 = 100;

/// The trace's log records: time, severity, event and span, with body and attributes folded.
fn log_records(trace: &TraceDetail, logs: &TraceLogPage, href: &str, paged: bool) -> Markup {
    html! {
        h2 #log-records { "Log records" }
        p.muted { (trace.log_record_count) " log records"
            @if trace.log_record_count > logs.log_records.len() as i64 { " · " (logs.log_records.len()) " on this page" } }
        div.table-wrap { table {
            caption.visually-hidden { "The trace's log records in time order" }
            thead { tr { th scope="col" { "Time" } th scope="col" { "Severity" } th scope="col" { "Event" } th scope="col" { "Span" } th scope="col" { "Body and attributes" } } }
            tbody { @for r in &logs.log_records { tr {
                td { (time(r.time_ms)) }
                td { (r.severity_text.as_deref().unwrap_or("–")) }
                td { @if let Some(e) = &r.event_name { code { (e) } } @else { "–" } }
                td { @if let Some(s) = &r.span_id { a href={ "#span-" (s) } { code { (s) } } } @else { "–" } }
                td {
                    @if let Some(b) = &r.body { details { summary { "Body" } pre { (serde_json::to_string_pretty(b).unwrap_or_default()) } } }
                    @if !r.attributes.is_empty() { details { summary { "Attributes (" (r.attributes.len()) ")" } pre { (serde_json::to_string_pretty(&r.attributes).unwrap_or_default()) } } }
                    @if let Some(id) = r.resource_id { a href={ "#resource-" (id) } { "Resource #" (id) } }
                }
            } } }
        } }
        (pager("Log record pages", paged.then(|| format!("{href}#log-records")),
            logs.next_after.as_ref().map(|a| format!("{href}?logs_after={}#log-records", encode(a)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_are_utc_milliseconds() {
        assert_eq!(parse_local_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_local_time("2026-11-23T14:05:30"), Some(1_795_442_730_000));
        assert_eq!(parse_local_time("yesterday"), None);
    }
}
