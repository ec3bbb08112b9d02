//! What OTLP/HTTP ingest shares between its signals (`/v1/traces` and `/v1/logs`), so both
//! refuse and answer alike: the encoding a request is sent in (and answered in), the body read
//! under the server's limits, decode errors, the refusal of snake_case OTLP/JSON, and the
//! refusal of an export over its size limit.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use prost::Message;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::ingest::IngestOptions;
use crate::store::KeyOwner;
use crate::web::body::{parse_json, read_body};
use crate::web::{ApiError, ApiResult, AppState};

/// OTLP/HTTP protobuf: an encoded `ExportTraceServiceRequest` (or, in answers,
/// `ExportTraceServiceResponse`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the wire format in the OpenAPI document
pub struct OtlpProtobuf(Vec<u8>);

/// One OTLP signal as ingest names it.
pub struct Signal {
    /// The export's top-level field in OTLP/JSON (`resourceSpans`).
    pub json_field: &'static str,
    /// The same field as protobuf names it, which OTLP/JSON does not accept (`resource_spans`).
    pub snake_field: &'static str,
    /// What an export holds, as error codes and details name it (`spans`, `log_records`).
    pub items: &'static str,
    /// The most items one export may hold, and the error code over it (`too_many_spans`).
    pub max_items: usize,
    pub too_many_code: &'static str,
}

/// How this caller's spans and records are stored: its project's privacy setting, the
/// server's text limit.
pub fn ingest_options(state: &AppState, owner: &KeyOwner) -> IngestOptions {
    IngestOptions { capture_content: owner.capture_content, max_text_chars: state.settings.max_text_chars }
}

/// A request body, by the encoding it came in (and is answered in).
pub enum OtlpBody {
    Protobuf(Bytes),
    Json(Value),
}

/// Reads an export's body under the server's limits. A JSON body that names the signal's field
/// in snake_case is refused: serde would ignore the unknown key and store nothing.
pub async fn read(request: Request, state: &AppState, signal: &Signal) -> ApiResult<OtlpBody> {
    let protobuf = is_protobuf(request.headers())?;
    let body = read_body(request, state).await?;
    if protobuf {
        return Ok(OtlpBody::Protobuf(body));
    }
    let value = parse_json(&body)?;
    if value.get(signal.snake_field).is_some() && value.get(signal.json_field).is_none() {
        return Err(ApiError::bad_request(
            "invalid_otlp_json",
            format!("OTLP/JSON field names are lowerCamelCase: send {}, not {}", signal.json_field, signal.snake_field),
        ));
    }
    Ok(OtlpBody::Json(value))
}

/// Whether the body is OTLP protobuf (else JSON); any other content type is refused.
fn is_protobuf(headers: &HeaderMap) -> ApiResult<bool> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(true),
        "application/json" | "" => Ok(false),
        other => Err(ApiError::unsupported_media_type(
            "unsupported_media_type",
            format!("content type {other:?} is not accepted: send application/x-protobuf (OTLP) or application/json"),
        )),
    }
}

/// A decoder's answer for a protobuf body, its error as a 400.
pub fn from_protobuf<T>(decoded: Result<T, String>) -> ApiResult<T> {
    decoded.map_err(|m| ApiError::bad_request("invalid_protobuf", m))
}

/// A decoder's answer for an OTLP/JSON body, its error as a 400.
pub fn from_json<T>(decoded: Result<T, String>) -> ApiResult<T> {
    decoded.map_err(|m| ApiError::bad_request("invalid_otlp_json", m))
}

/// Refuses an export over the signal's limit, whole: a retry of the same export would be
/// refused again, and storing part of it would leave traces half there (or calls without the
/// content that joins them).
pub fn check_size(signal: &Signal, count: usize) -> ApiResult<()> {
    if count <= signal.max_items {
        return Ok(());
    }
    let (max, items) = (signal.max_items, signal.items);
    let mut details = serde_json::Map::new();
    details.insert(format!("max_{items}"), json!(max));
    details.insert(items.to_string(), json!(count));
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        signal.too_many_code,
        format!(
            "an export may hold at most {max} {words}; this one holds {count}: export smaller batches",
            words = items.replace('_', " ")
        ),
    )
    .with_details(Value::Object(details)))
}

/// The export's answer in the request's encoding: protobuf as is, JSON in its OTLP/JSON shape.
pub fn answer<R: Message, J: Serialize + From<R>>(protobuf: bool, response: R) -> Response {
    if protobuf {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))], response.encode_to_vec())
            .into_response()
    } else {
        Json(J::from(response)).into_response()
    }
}
