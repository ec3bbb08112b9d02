//! `POST /v1/traces` takes three formats on one path, told apart by content type and shape:
//! OTLP/HTTP protobuf (`application/x-protobuf`), OTLP/HTTP JSON (an object with
//! `resourceSpans`) and the Fallom SDK's JSON span (anything else that is JSON). OTLP clients
//! get their answer in the encoding they sent (see `otlp`, shared with `/v1/logs`). Dashboards
//! read traces back under `/api/v1/traces` (`traces`).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::otlp::{self, OtlpBody, OtlpProtobuf, Signal};
use crate::decode::fallom::{self, FallomSpan};
use crate::decode::otlp_spans;
use crate::ingest::{IngestOptions, NewSpan};
use crate::store::SpansStored;
use crate::validate::limits::MAX_OTLP_SPANS;
use crate::web::auth::IngestAuth;
use crate::web::error::ApiError;
use crate::web::{ApiResult, AppState};

const SPANS: Signal = Signal {
    json_field: "resourceSpans",
    snake_field: "resource_spans",
    items: "spans",
    max_items: MAX_OTLP_SPANS,
    too_many_code: "too_many_spans",
};

/// The JSON bodies `POST /v1/traces` takes: a Fallom span, an array of them, or an OTLP/JSON
/// export.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the wire format; bodies are told apart by shape in `ingest`
pub enum TracesJson {
    Span(Box<FallomSpan>),
    /// 1 to 1000 spans, stored all or nothing.
    Spans(Vec<FallomSpan>),
    Otlp(OtlpExport),
}

/// OTLP/HTTP JSON (`ExportTraceServiceRequest`, lowerCamelCase field names, ids in hex).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct OtlpExport {
    #[serde(rename = "resourceSpans")]
    #[schema(value_type = Vec<Object>)]
    pub resource_spans: Vec<Value>,
}

/// The answer to Fallom spans.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpansAccepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub stored: usize,
    /// Spans already stored (same trace and span id), skipped.
    pub duplicates: usize,
    /// Drift samples taken from the spans' responses.
    pub samples: usize,
}

/// The OTLP/JSON answer: `partialSuccess` names the spans rejected, if any.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpExportResult {
    pub partial_success: Option<OtlpPartialSuccess>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpPartialSuccess {
    pub rejected_spans: i64,
    pub error_message: String,
}

impl From<ExportTraceServiceResponse> for OtlpExportResult {
    fn from(r: ExportTraceServiceResponse) -> Self {
        OtlpExportResult {
            partial_success: r
                .partial_success
                .map(|p| OtlpPartialSuccess { rejected_spans: p.rejected_spans, error_message: p.error_message }),
        }
    }
}

/// Turns an OTLP export into spans (and the ids it rejects) on a blocking thread: decoding and
/// content extraction take milliseconds of CPU for a large export, and on the async runtime
/// they held up the SQLite group-commit task between its statements (its transaction stayed
/// open while a worker thread decoded), so the single writer idled.
async fn decode_off_runtime<F>(decode: F, options: IngestOptions) -> ApiResult<otlp_spans::Decoded>
where
    F: FnOnce() -> ApiResult<ExportTraceServiceRequest> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let export = decode()?;
        otlp::check_size(&SPANS, otlp_spans::span_count(&export))?;
        Ok(otlp_spans::spans(&export, options))
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "span decoding panicked");
        ApiError::internal()
    })?
}

/// Stores an OTLP export's valid spans; the answer names the ones rejected.
async fn store_otlp(
    state: &AppState,
    project_id: i64,
    decoded: otlp_spans::Decoded,
    options: IngestOptions,
) -> ApiResult<ExportTraceServiceResponse> {
    store(state, project_id, decoded.spans, options).await?;
    crate::observe::ingest_rejected_items("spans", "invalid_id", decoded.rejected.len());
    Ok(otlp_spans::response(&decoded.rejected))
}

async fn store(
    state: &AppState,
    project_id: i64,
    spans: Vec<NewSpan>,
    options: IngestOptions,
) -> ApiResult<SpansStored> {
    if spans.is_empty() {
        return Ok(Default::default());
    }
    let stored = state.store.insert_spans(project_id, spans, options).await?;
    crate::observe::ingest_accepted("spans", stored.stored);
    if stored.samples > 0 {
        state.samples_arrived.notify_one();
    }
    Ok(stored)
}

/// Trace ingest for the Fallom SDK and OpenTelemetry OTLP/HTTP exporters (gzip accepted).
/// OTLP is answered in the request's encoding; spans with bad ids are rejected alone and
/// counted in `partialSuccess`. A span already stored is skipped.
#[utoipa::path(
    post, path = "/v1/traces", tag = "sdk", operation_id = "ingest_traces",
    request_body(content(
        (TracesJson = "application/json"),
        (OtlpProtobuf = "application/x-protobuf"),
    )),
    responses(
        (status = 202, description = "Fallom spans stored", body = SpansAccepted),
        (status = 200, description = "OTLP export stored (the answer is in the request's encoding)", content(
            (OtlpExportResult = "application/json"),
            (OtlpProtobuf = "application/x-protobuf"),
        )),
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    IngestAuth(owner): IngestAuth,
    request: Request,
) -> ApiResult<Response> {
    let options = otlp::ingest_options(&state, &owner);
    match otlp::read(request, &state, &SPANS).await? {
        OtlpBody::Protobuf(body) => {
            let decoded =
                decode_off_runtime(move || otlp::from_protobuf(otlp_spans::decode_protobuf(&body)), options).await?;
            let answer = store_otlp(&state, owner.project_id, decoded, options).await?;
            Ok(otlp::answer::<_, OtlpExportResult>(true, answer))
        }
        OtlpBody::Json(value) if value.get(SPANS.json_field).is_some() => {
            let decoded = decode_off_runtime(move || otlp::from_json(otlp_spans::decode_json(value)), options).await?;
            let answer = store_otlp(&state, owner.project_id, decoded, options).await?;
            Ok(otlp::answer::<_, OtlpExportResult>(false, answer))
        }
        OtlpBody::Json(value) => {
            let spans = fallom::parse(&value, options)?;
            let stored = store(&state, owner.project_id, spans, options).await?;
            let answer = SpansAccepted {
                status: "accepted",
                stored: stored.stored,
                duplicates: stored.duplicates,
                samples: stored.samples,
            };
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
    }
}
