//! Trace reads, for `/api/v1/traces` and the dashboard's trace pages: the trace list with its
//! filters and cursor, one trace with a page of its spans, and a trace's OTLP log records.
//! Ingest (`POST /v1/traces`) is `http::otlp_traces`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::cost::{CostTotal, CostView, PriceTable};
use crate::domain::{SpanSource, SpanStatus};
use crate::store::KeyOwner;
use crate::store::{LogRecordRow, SpanFilter, SpanRow, TraceStatus, TraceSummaryRow};
use crate::validate::schemas;
use crate::web::error::{ApiError, ApiResult};
use crate::web::query::{FromQuery, QueryFields};
use crate::web::AppState;

/// One trace in a list: its spans' aggregates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraceSummary {
    pub trace_id: String,
    /// The root span's name.
    pub name: Option<String>,
    pub session_id: Option<String>,
    pub config_key: Option<String>,
    pub customer_id: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_ms: i64,
    pub span_count: i64,
    pub error_count: i64,
    /// `ERROR` when any span failed.
    pub status: SpanStatus,
    /// Sums over the spans, saturating at 2^63 - 1.
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    /// The spans' cost at the current prices (docs/cost.md).
    pub cost: CostView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TracePage {
    /// Newest first.
    pub traces: Vec<TraceSummary>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenUsageView {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
}

/// A stored span.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub source: SpanSource,
    pub name: String,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub config_key: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_ms: i64,
    pub status: SpanStatus,
    pub error_message: Option<String>,
    pub time_to_first_token_ms: Option<i64>,
    pub is_streaming: Option<bool>,
    pub usage: TokenUsageView,
    /// The call's cost at the current prices: null `usd` when its model has no price.
    pub cost: CostView,
    /// The request content (null when the project does not capture content).
    pub request: Option<String>,
    pub response_text: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Value>,
    pub prompt_key: Option<String>,
    pub prompt_version: Option<i64>,
    pub prompt_ab_test_key: Option<String>,
    pub prompt_variant_index: Option<i64>,
    /// The remaining attributes.
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// The span's OTLP resource, in the answer's `resources`.
    pub resource_id: Option<i64>,
    /// The drift sample taken from this span's response, if any.
    pub sample_id: Option<i64>,
    pub received_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TraceDetail {
    pub trace_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_ms: i64,
    /// All the trace's spans (the page may hold fewer).
    pub span_count: i64,
    /// All the trace's spans' cost at the current prices.
    pub cost: CostView,
    /// This page's spans, in start order.
    pub spans: Vec<SpanView>,
    /// The OTLP resources of this page's spans, each once, by the id its spans name in
    /// `resource_id` (a resource is shared by every span of one exporter).
    #[schema(value_type = Object)]
    pub resources: Resources,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
    /// The trace's OTLP log records (read them at `/api/v1/traces/{trace_id}/logs`).
    pub log_record_count: i64,
}

/// OTLP resources by id (as text, a JSON object's key), each the resource's attributes.
pub type Resources = BTreeMap<String, Value>;

/// The resources `items` name, each once.
fn resources_of<'a>(items: impl Iterator<Item = (Option<i64>, Option<&'a Arc<Map<String, Value>>>)>) -> Resources {
    items.filter_map(|(id, resource)| Some((id?.to_string(), Value::Object(resource?.as_ref().clone())))).collect()
}

/// A stored OTLP log record.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogRecordView {
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// The event time, else the observed time, else arrival (epoch ms).
    pub time_ms: i64,
    pub severity_number: Option<i64>,
    pub severity_text: Option<String>,
    pub event_name: Option<String>,
    /// The body as sent, bounded like attributes (null when the project does not capture
    /// content).
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    /// The attributes (the scope under `otel.scope.name`).
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// The record's OTLP resource, in the page's `resources`.
    pub resource_id: Option<i64>,
    /// The request and response text of a GenAI content event, whole.
    pub request: Option<String>,
    pub response_text: Option<String>,
    pub received_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TraceLogPage {
    /// In time order.
    pub log_records: Vec<LogRecordView>,
    /// The OTLP resources of this page's records, each once, by the id its records name in
    /// `resource_id`.
    #[schema(value_type = Object)]
    pub resources: Resources,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<String>,
}

impl From<&LogRecordRow> for LogRecordView {
    fn from(row: &LogRecordRow) -> Self {
        let r = &row.record;
        let mut attributes = r.attributes.clone();
        if let Some(scope) = &r.scope_name {
            attributes.insert("otel.scope.name".into(), Value::String(scope.clone()));
        }
        LogRecordView {
            resource_id: row.resource_id,
            trace_id: r.trace_id.clone(),
            span_id: r.span_id.clone(),
            time_ms: r.time_ms,
            severity_number: r.severity_number,
            severity_text: r.severity_text.clone(),
            event_name: r.event_name.clone(),
            body: r.body.clone(),
            attributes,
            request: r.request_text.clone(),
            response_text: r.response_text.clone(),
            received_at: row.received_at,
        }
    }
}

/// Filters of the trace list; session, config and customer are the trace's (the first value
/// its spans carried), a model matches when any span used it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceListParams {
    pub config_key: Option<String>,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub model: Option<String>,
    /// `ERROR`: some span failed; `OK`: none did (any letter case).
    #[param(schema_with = schemas::trace_status)]
    pub status: Option<TraceStatus>,
    /// The trace's start, epoch milliseconds, inclusive.
    pub from: Option<i64>,
    /// The trace's start, epoch milliseconds, exclusive.
    pub to: Option<i64>,
    /// Page size.
    #[param(schema_with = schemas::page_limit, required = false)]
    pub limit: i64,
    /// The `next_before` of the previous page (`<start_ms>.<trace_id>`).
    #[param(value_type = Option<String>, pattern = r"^-?[0-9]{1,18}\.[\s\S]+$")]
    pub before: Option<(i64, String)>,
}

fn parse_status(q: &mut QueryFields) -> Option<TraceStatus> {
    match q.text("status")?.to_ascii_uppercase().as_str() {
        "ERROR" => Some(TraceStatus::Error),
        "OK" => Some(TraceStatus::Ok),
        other => {
            q.reject("status", &format!("must be OK or ERROR, got {other:?}"));
            None
        }
    }
}

/// A trace-list cursor, `<start_ms>.<trace_id>`: the sort key of the last trace on a page.
pub fn trace_cursor(raw: &str) -> Option<(i64, String)> {
    raw.split_once('.').and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_string())))
}

/// A span-page cursor, `<start_ms>.<n>`: the sort key of the last span on a page.
pub fn span_cursor(raw: &str) -> Option<(i64, i64)> {
    raw.split_once('.').and_then(|(ms, id)| Some((ms.parse().ok()?, id.parse().ok()?)))
}

fn parse_cursor(q: &mut QueryFields) -> Option<(i64, String)> {
    let raw = q.text("before")?;
    let parsed = trace_cursor(&raw);
    if parsed.is_none() {
        q.reject("before", "must be a next_before value from a previous page");
    }
    parsed
}

impl FromQuery for TraceListParams {
    fn read(q: &mut QueryFields) -> Self {
        TraceListParams {
            limit: q.page_limit(),
            config_key: q.text("config_key"),
            session_id: q.text("session_id"),
            customer_id: q.text("customer_id"),
            model: q.text("model"),
            status: parse_status(q),
            from: q.int("from", i64::MIN, i64::MAX),
            to: q.int("to", i64::MIN, i64::MAX),
            before: parse_cursor(q),
        }
    }
}

impl TraceSummary {
    fn new(t: &TraceSummaryRow, cost: CostView) -> Self {
        TraceSummary {
            trace_id: t.trace_id.clone(),
            name: t.root_name.clone(),
            session_id: t.session_id.clone(),
            config_key: t.config_key.clone(),
            customer_id: t.customer_id.clone(),
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            duration_ms: t.end_ms.saturating_sub(t.start_ms),
            span_count: t.span_count,
            error_count: t.error_count,
            status: if t.error_count > 0 { SpanStatus::Error } else { SpanStatus::Ok },
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost,
        }
    }
}

/// Each trace's cost, in the order of `trace_ids`.
async fn trace_costs(
    state: &AppState,
    prices: &PriceTable,
    project_id: i64,
    trace_ids: &[&str],
) -> ApiResult<Vec<CostView>> {
    let mut totals: Vec<CostTotal> = trace_ids.iter().map(|_| CostTotal::default()).collect();
    let position: HashMap<&str, usize> = trace_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for u in state.store.usage_by_trace_and_model(project_id, trace_ids).await? {
        if let Some(&i) = position.get(u.group.as_str()) {
            totals[i].add(prices, u.model.as_deref(), u.input_tokens, u.output_tokens, u.calls);
        }
    }
    Ok(totals.into_iter().map(CostTotal::view).collect())
}

/// One call's cost.
fn span_cost(prices: &PriceTable, span: &crate::ingest::NewSpan) -> CostView {
    let mut total = CostTotal::default();
    let tokens = |n: Option<i64>| n.map(|n| n as f64);
    total.add(prices, span.model.as_deref(), tokens(span.usage.input), tokens(span.usage.output), 1);
    total.view()
}

/// Traces of the project, newest first, one row per trace.
pub async fn list(state: &AppState, owner: &KeyOwner, params: TraceListParams) -> ApiResult<TracePage> {
    let limit = params.limit;
    let filter = SpanFilter {
        trace_id: None,
        config_key: params.config_key,
        session_id: params.session_id,
        customer_id: params.customer_id,
        model: params.model,
        status: params.status,
        from_ms: params.from,
        to_ms: params.to,
        before: params.before,
        limit,
    };
    let traces = state.store.trace_summaries(owner.project_id, &filter).await?;
    let next_before =
        (traces.len() as i64 == limit).then(|| traces.last().map(|t| format!("{}.{}", t.start_ms, t.trace_id)));
    let ids: Vec<&str> = traces.iter().map(|t| t.trace_id.as_str()).collect();
    let prices = super::prices::prices_for(state, owner.project_id).await?;
    let costs = trace_costs(state, &prices, owner.project_id, &ids).await?;
    let traces = traces.iter().zip(costs).map(|(t, cost)| TraceSummary::new(t, cost)).collect();
    Ok(TracePage { traces, next_before: next_before.flatten() })
}

impl SpanView {
    fn new(row: &SpanRow, prices: &PriceTable) -> Self {
        let s = &row.span;
        SpanView {
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            source: s.source,
            name: s.name.clone(),
            kind: s.kind.clone(),
            model: s.model.clone(),
            session_id: s.session_id.clone(),
            customer_id: s.customer_id.clone(),
            config_key: s.config_key.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            duration_ms: s.duration_ms,
            status: s.status,
            error_message: s.error_message.clone(),
            time_to_first_token_ms: s.time_to_first_token_ms,
            is_streaming: s.is_streaming,
            usage: TokenUsageView {
                input_tokens: s.usage.input,
                output_tokens: s.usage.output,
                total_tokens: s.usage.total,
            },
            cost: span_cost(prices, s),
            request: s.request_text.clone(),
            response_text: s.response_text.clone(),
            metadata: s.metadata.clone(),
            tags: s.tags.clone(),
            prompt_key: s.prompt_key.clone(),
            prompt_version: s.prompt_version,
            prompt_ab_test_key: s.prompt_ab_test_key.clone(),
            prompt_variant_index: s.prompt_variant_index,
            attributes: s.attributes.clone(),
            resource_id: row.resource_id,
            sample_id: row.sample_id,
            received_at: row.received_at,
        }
    }
}

/// A page of one trace's spans.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpanPageParams {
    /// Spans per page.
    #[param(schema_with = schemas::page_limit, required = false)]
    pub limit: i64,
    /// The `next_after` of the previous page (`<start_ms>.<n>`).
    #[param(value_type = Option<String>, pattern = r"^-?[0-9]{1,18}\.[0-9]{1,18}$")]
    pub after: Option<(i64, i64)>,
}

impl FromQuery for SpanPageParams {
    fn read(q: &mut QueryFields) -> Self {
        let after = q.text("after").and_then(|raw| {
            let parsed = span_cursor(&raw);
            if parsed.is_none() {
                q.reject("after", "must be a next_after value from a previous page");
            }
            parsed
        });
        SpanPageParams { limit: q.page_limit(), after }
    }
}

/// One trace: its time range and span count, and a page of its spans in start order (a trace
/// can hold thousands: follow `next_after` for the rest).
pub async fn detail(
    state: &AppState,
    owner: &KeyOwner,
    trace_id: String,
    SpanPageParams { limit, after }: SpanPageParams,
) -> ApiResult<TraceDetail> {
    let Some(summary) = state.store.trace_summary(owner.project_id, &trace_id).await? else {
        return Err(ApiError::not_found(format!("no trace with id `{trace_id}` in this project")));
    };
    let spans = state.store.trace_spans(owner.project_id, &trace_id, limit, after).await?;
    let next_after =
        (spans.len() as i64 == limit).then(|| spans.last().map(|s| format!("{}.{}", s.span.start_ms, s.id))).flatten();
    let log_record_count = state.store.trace_log_record_count(owner.project_id, &trace_id).await?;
    let prices = super::prices::prices_for(state, owner.project_id).await?;
    let cost = trace_costs(state, &prices, owner.project_id, &[trace_id.as_str()]).await?.remove(0);
    Ok(TraceDetail {
        cost,
        log_record_count,
        trace_id,
        start_ms: summary.start_ms,
        end_ms: summary.end_ms,
        duration_ms: summary.end_ms.saturating_sub(summary.start_ms),
        span_count: summary.span_count,
        resources: resources_of(spans.iter().map(|s| (s.resource_id, s.span.resource.as_ref()))),
        spans: spans.iter().map(|s| SpanView::new(s, &prices)).collect(),
        next_after,
    })
}

/// A page of one trace's OTLP log records, in time order (GenAI content events and any other
/// record that named the trace).
pub async fn logs(
    state: &AppState,
    owner: &KeyOwner,
    trace_id: String,
    SpanPageParams { limit, after }: SpanPageParams,
) -> ApiResult<TraceLogPage> {
    let records = state.store.trace_log_records(owner.project_id, &trace_id, limit, after).await?;
    if records.is_empty() && after.is_none() && state.store.trace_summary(owner.project_id, &trace_id).await?.is_none()
    {
        return Err(ApiError::not_found(format!("no trace with id `{trace_id}` in this project")));
    }
    let next_after = (records.len() as i64 == limit)
        .then(|| records.last().map(|r| format!("{}.{}", r.record.time_ms, r.id)))
        .flatten();
    Ok(TraceLogPage {
        resources: resources_of(records.iter().map(|r| (r.resource_id, r.record.resource.as_ref()))),
        log_records: records.iter().map(LogRecordView::from).collect(),
        next_after,
    })
}
