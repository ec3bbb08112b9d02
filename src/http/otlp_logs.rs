//! `POST /v1/logs`: OTLP/HTTP log export, protobuf or JSON (gzip accepted), answered in the
//! request's encoding, with the same auth, limits and duplicate handling as `/v1/traces`. GenAI
//! content events among the records give their LLM call's drift sample (see
//! `store::log_records`); every record can be read back with its trace.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use prost::Message;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::IngestAuth;
use super::body::{parse_json, read_body};
use super::error::{ApiError, ApiResult};
use super::traces::{request_encoding, Encoding, OtlpProtobuf};
use super::AppState;
use crate::traces::{otlp_logs, IngestOptions};
use crate::validate::limits::MAX_OTLP_LOG_RECORDS;

/// OTLP/HTTP JSON (`ExportLogsServiceRequest`, lowerCamelCase field names, ids in hex). Every
/// field is optional in OTLP: `{}` is an empty export.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // documents the wire format; the body is decoded by opentelemetry-proto
pub struct OtlpLogsExport {
    #[serde(rename = "resourceLogs")]
    #[schema(value_type = Vec<Object>, required = false)]
    pub resource_logs: Vec<Value>,
}

/// The OTLP/JSON answer: `partialSuccess` names the log records rejected, if any.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpLogsResult {
    pub partial_success: Option<OtlpLogsPartialSuccess>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpLogsPartialSuccess {
    pub rejected_log_records: i64,
    pub error_message: String,
}

impl From<ExportLogsServiceResponse> for OtlpLogsResult {
    fn from(r: ExportLogsServiceResponse) -> Self {
        OtlpLogsResult {
            partial_success: r.partial_success.map(|p| OtlpLogsPartialSuccess {
                rejected_log_records: p.rejected_log_records,
                error_message: p.error_message,
            }),
        }
    }
}

/// Log ingest for OpenTelemetry OTLP/HTTP log exporters (gzip accepted). Records with bad ids
/// are rejected alone and counted in `partialSuccess`; a record already stored is skipped.
/// GenAI content events (`gen_ai.user.message`, `gen_ai.choice`,
/// `gen_ai.client.inference.operation.details`) are joined to their span by trace and span id,
/// in either order of arrival, and give the call's one drift sample.
#[utoipa::path(
    post, path = "/v1/logs", tag = "sdk", operation_id = "ingest_otlp_logs",
    request_body(content(
        (OtlpLogsExport = "application/json"),
        (OtlpProtobuf = "application/x-protobuf"),
    )),
    responses(
        (status = 200, description = "Export stored (the answer is in the request's encoding)", content(
            (OtlpLogsResult = "application/json"),
            (OtlpProtobuf = "application/x-protobuf"),
        )),
    )
)]
pub async fn ingest(
    State(state): State<AppState>,
    IngestAuth(owner): IngestAuth,
    request: Request,
) -> ApiResult<Response> {
    let encoding = request_encoding(request.headers())?;
    let body = read_body(request, &state).await?;
    let options =
        IngestOptions { capture_content: owner.capture_content, max_text_chars: state.settings.max_text_chars };

    if encoding == Encoding::Protobuf {
        let export = otlp_logs::decode_protobuf(&body).map_err(|m| ApiError::bad_request("invalid_protobuf", m))?;
        let answer = store(&state, owner.project_id, &export, options).await?.encode_to_vec();
        return Ok(
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))], answer).into_response()
        );
    }
    let value = parse_json(&body)?;
    if !value.is_object() {
        return Err(ApiError::bad_request("invalid_otlp_json", "an OTLP/JSON log export is an object"));
    }
    if value.get("resource_logs").is_some() && value.get("resourceLogs").is_none() {
        // serde would ignore the unknown key and store nothing; say why instead.
        return Err(ApiError::bad_request(
            "invalid_otlp_json",
            "OTLP/JSON field names are lowerCamelCase: send resourceLogs, not resource_logs",
        ));
    }
    let export = otlp_logs::decode_json(value).map_err(|m| ApiError::bad_request("invalid_otlp_json", m))?;
    let answer = store(&state, owner.project_id, &export, options).await?;
    Ok(Json(OtlpLogsResult::from(answer)).into_response())
}

/// Stores an export's valid records; the answer names the ones rejected.
async fn store(
    state: &AppState,
    project_id: i64,
    export: &ExportLogsServiceRequest,
    options: IngestOptions,
) -> ApiResult<ExportLogsServiceResponse> {
    let count = otlp_logs::record_count(export);
    if count > MAX_OTLP_LOG_RECORDS {
        // refused whole, as an over-size span export is: storing part would leave calls without
        // the content that joins them
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_log_records",
            format!(
                "an export may hold at most {MAX_OTLP_LOG_RECORDS} log records; this one holds {count}: \
                 export smaller batches"
            ),
        )
        .with_details(json!({"max_log_records": MAX_OTLP_LOG_RECORDS, "log_records": count})));
    }
    let decoded = otlp_logs::records(export, options);
    if !decoded.records.is_empty() {
        let stored = state.store.insert_log_records(project_id, &decoded.records, options).await?;
        crate::observe::ingest_accepted("log_records", stored.stored);
        if stored.samples > 0 {
            state.samples_arrived.notify_one();
        }
    }
    crate::observe::ingest_rejected_items("log_records", "invalid_id", decoded.rejected.len());
    Ok(otlp_logs::response(&decoded.rejected))
}
