//! `POST /v1/traces` takes three formats on one path, told apart by content type and shape:
//! OTLP/HTTP protobuf (`application/x-protobuf`), OTLP/HTTP JSON (an object with
//! `resourceSpans`) and the Fallom SDK's JSON span (anything else that is JSON). OTLP clients
//! get their answer in the encoding they sent. Dashboards read traces back under
//! `/api/v1/traces`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Auth;
use super::body::{parse_json, read_body};
use super::error::{ApiError, ApiResult};
use super::query::{page_limit, ApiPath, ApiQuery};
use super::AppState;
use crate::store::{NewSpan, SpanFilter, SpanRow, TraceStatus, TraceSummaryRow};
use crate::traces::{fallom, otlp, IngestOptions};

/// Most Fallom spans in one JSON array (the SDK sends one at a time).
const MAX_FALLOM_SPANS: usize = 1000;

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

fn request_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" | "" => Ok(Encoding::Json),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type {other:?} is not accepted: send application/x-protobuf (OTLP) or application/json"),
        )),
    }
}

pub async fn ingest(State(state): State<AppState>, Auth(owner): Auth, request: Request) -> ApiResult<Response> {
    let encoding = request_encoding(request.headers())?;
    let body = read_body(request, &state).await?;
    let options =
        IngestOptions { capture_content: owner.capture_content, max_text_chars: state.settings.max_text_chars };

    if encoding == Encoding::Protobuf {
        let export = otlp::decode_protobuf(&body).map_err(|m| ApiError::bad_request("invalid_protobuf", m))?;
        let answer = store_otlp(&state, owner.project_id, &export, options).await?.encode_to_vec();
        return Ok(
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))], answer).into_response()
        );
    }

    let value = parse_json(&body)?;
    if value.get("resource_spans").is_some() && value.get("resourceSpans").is_none() {
        // serde would ignore the unknown key and store nothing; say why instead.
        return Err(ApiError::bad_request(
            "invalid_otlp_json",
            "OTLP/JSON field names are lowerCamelCase: send resourceSpans, not resource_spans",
        ));
    }
    if value.get("resourceSpans").is_some() {
        let export = otlp::decode_json(value).map_err(|m| ApiError::bad_request("invalid_otlp_json", m))?;
        let answer = store_otlp(&state, owner.project_id, &export, options).await?;
        return Ok(Json(serde_json::to_value(answer).map_err(|_| ApiError::internal())?).into_response());
    }

    let spans = fallom::parse(&value, options, MAX_FALLOM_SPANS)?;
    let stored = store(&state, owner.project_id, &spans).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "accepted", "stored": stored.stored, "duplicates": stored.duplicates, "samples": stored.samples,
        })),
    )
        .into_response())
}

/// Stores an OTLP export's valid spans; the answer names the ones rejected.
async fn store_otlp(
    state: &AppState,
    project_id: i64,
    export: &ExportTraceServiceRequest,
    options: IngestOptions,
) -> ApiResult<ExportTraceServiceResponse> {
    let decoded = otlp::spans(export, options);
    store(state, project_id, &decoded.spans).await?;
    Ok(otlp::response(&decoded.rejected))
}

async fn store(state: &AppState, project_id: i64, spans: &[NewSpan]) -> ApiResult<crate::store::SpansStored> {
    if spans.is_empty() {
        return Ok(Default::default());
    }
    let stored = state.store.insert_spans(project_id, spans).await?;
    if stored.samples > 0 {
        state.samples_arrived.notify_one();
    }
    Ok(stored)
}

#[derive(Deserialize)]
pub struct ListQuery {
    config_key: Option<String>,
    session_id: Option<String>,
    customer_id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    /// Epoch milliseconds, inclusive.
    from: Option<i64>,
    /// Epoch milliseconds, exclusive.
    to: Option<i64>,
    limit: Option<String>,
    /// The `next_before` cursor of the previous page.
    before: Option<String>,
}

fn parse_status(status: &str) -> Result<TraceStatus, ApiError> {
    match status.to_ascii_uppercase().as_str() {
        "ERROR" => Ok(TraceStatus::Error),
        "OK" => Ok(TraceStatus::Ok),
        _ => Err(ApiError::bad_request("invalid_query", format!("status must be OK or ERROR, got {status:?}"))),
    }
}

/// Cursors are `<start_ms>.<trace_id>`: the sort key of the last trace on a page.
fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor.split_once('.').and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_string()))).ok_or_else(|| {
        ApiError::bad_request("invalid_query", "before must be a next_before value from a previous page")
    })
}

fn summary_json(t: &TraceSummaryRow) -> Value {
    json!({
        "trace_id": t.trace_id, "name": t.root_name, "session_id": t.session_id, "config_key": t.config_key,
        "customer_id": t.customer_id, "start_ms": t.start_ms, "end_ms": t.end_ms,
        "duration_ms": t.end_ms - t.start_ms, "span_count": t.span_count, "error_count": t.error_count,
        "status": if t.error_count > 0 { "ERROR" } else { "OK" },
        "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(q.limit.as_deref())?;
    let filter = SpanFilter {
        config_key: q.config_key,
        session_id: q.session_id,
        customer_id: q.customer_id,
        model: q.model,
        status: q.status.as_deref().map(parse_status).transpose()?,
        from_ms: q.from,
        to_ms: q.to,
        before: q.before.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let traces = state.store.trace_summaries(owner.project_id, &filter).await?;
    let next_before =
        (traces.len() as i64 == limit).then(|| traces.last().map(|t| format!("{}.{}", t.start_ms, t.trace_id)));
    Ok(Json(json!({
        "traces": traces.iter().map(summary_json).collect::<Vec<_>>(),
        "next_before": next_before.flatten(),
    })))
}

pub fn span_json(row: &SpanRow) -> Value {
    let s = &row.span;
    json!({
        "trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id, "source": s.source,
        "name": s.name, "kind": s.kind, "model": s.model, "session_id": s.session_id,
        "customer_id": s.customer_id, "config_key": s.config_key, "start_ms": s.start_ms, "end_ms": s.end_ms,
        "duration_ms": s.duration_ms, "status": s.status, "error_message": s.error_message,
        "time_to_first_token_ms": s.time_to_first_token_ms, "is_streaming": s.is_streaming,
        "usage": { "input_tokens": s.usage.input, "output_tokens": s.usage.output, "total_tokens": s.usage.total },
        "request": s.request_text, "response_text": s.response_text, "metadata": s.metadata, "tags": s.tags,
        "prompt_key": s.prompt_key, "prompt_version": s.prompt_version,
        "prompt_ab_test_key": s.prompt_ab_test_key, "prompt_variant_index": s.prompt_variant_index,
        "attributes": s.attributes, "sample_id": row.sample_id, "received_at": row.received_at,
    })
}

pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(trace_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let spans = state.store.trace_spans(owner.project_id, &trace_id).await?;
    if spans.is_empty() {
        return Err(ApiError::not_found(format!("no trace with id `{trace_id}` in this project")));
    }
    let start = spans.iter().map(|s| s.span.start_ms).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.span.end_ms).max().unwrap_or(0);
    Ok(Json(json!({
        "trace_id": trace_id, "start_ms": start, "end_ms": end, "duration_ms": end - start,
        "span_count": spans.len(), "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
    })))
}
