//! `POST /v1/logs`: OTLP/HTTP log export, protobuf or JSON (gzip accepted), answered in the
//! request's encoding, with the same auth, limits and duplicate handling as `/v1/traces` (see `otlp`). GenAI
//! content events among the records give their LLM call's drift sample (see
//! `store::log_records`); every record can be read back with its trace.

use axum::extract::{Request, State};
use axum::response::Response;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::otlp::{self, OtlpBody, OtlpProtobuf, Signal};
use crate::decode::otlp_logs;
use crate::ingest::IngestOptions;
use crate::validate::limits::MAX_OTLP_LOG_RECORDS;
use crate::web::auth::IngestAuth;
use crate::web::{ApiError, ApiResult, AppState};

const LOG_RECORDS: Signal = Signal {
    json_field: "resourceLogs",
    snake_field: "resource_logs",
    items: "log_records",
    max_items: MAX_OTLP_LOG_RECORDS,
    too_many_code: "too_many_log_records",
};

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
    let options = otlp::ingest_options(&state, &owner);
    let (protobuf, export) = match otlp::read(request, &state, &LOG_RECORDS).await? {
        OtlpBody::Protobuf(body) => (true, otlp::from_protobuf(otlp_logs::decode_protobuf(&body))?),
        OtlpBody::Json(value) if value.is_object() => (false, otlp::from_json(otlp_logs::decode_json(value))?),
        OtlpBody::Json(_) => {
            return Err(ApiError::bad_request("invalid_otlp_json", "an OTLP/JSON log export is an object"));
        }
    };
    let answer = store(&state, owner.project_id, &export, options).await?;
    Ok(otlp::answer::<_, OtlpLogsResult>(protobuf, answer))
}

/// Stores an export's valid records; the answer names the ones rejected.
async fn store(
    state: &AppState,
    project_id: i64,
    export: &ExportLogsServiceRequest,
    options: IngestOptions,
) -> ApiResult<ExportLogsServiceResponse> {
    otlp::check_size(&LOG_RECORDS, otlp_logs::record_count(export))?;
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
