//! One error type for every handler, and one error shape for every answer: each error leaves
//! the server as `{"error": {"code", "message", "details"}}`, whichever layer produced it.
//! Handlers return [`ApiError`]; answers made by the framework or tower layers (405 wrong
//! method, 415 unknown `Content-Encoding`, 413 over the body limit, 503 timeout, panics) are
//! rewritten into the same shape by [`json_errors`]. Causes of 5xx answers are logged, never
//! sent to the client.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::AppState;
use crate::store::StoreError;
use crate::validate::ValidationError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Seconds for `Retry-After` (429; every 503 gets at least 1).
    pub retry_after: Option<u64>,
}

/// The `code` of an error answer, kept on the response for the metrics middleware.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// What went wrong, for programs: `unauthorized`, `not_found`, `invalid_json`,
    /// `invalid_path`, `invalid_query`, `validation_failed`, `payload_too_large`,
    /// `unsupported_media_type`, `unsupported_content_encoding`, `method_not_allowed`,
    /// `timeout`, `unavailable`, `overloaded`, `over_fair_share`, `rate_limited`,
    /// `too_many_failed_auth`, `forbidden`, `internal`, ...
    #[schema(example = "not_found")]
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// More about the error where there is more to say (the problems of a 422, the limit of a
    /// 413, the line and column of a JSON syntax error), else null.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

/// The body of a 422: every problem found in the request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub error: ValidationErrorInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorInfo {
    /// Always `validation_failed`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// The first problem, and how many more there are.
    pub message: String,
    pub details: ValidationDetails,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationDetails {
    /// The problems, at most [`MAX_REPORTED_PROBLEMS`] of them.
    pub problems: Vec<ProblemBody>,
    /// How many problems were found in all.
    pub problem_count: usize,
}

/// One problem with one field. `POST /api/v1/logs` also names the log's `index` and `field`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// Where: `variants[1].weight`, `logs[3].prompt_name`, `limit` (a query parameter).
    #[schema(example = "variants[1].weight")]
    pub path: String,
    #[schema(example = "must be a percentage from 0 to 100")]
    pub message: String,
    /// Logs only: the index of the log in the batch (null for the batch itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Option<usize>>,
    /// Logs only: the field of the log (`logs` for the batch itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Enough problems to fix a client, few enough to keep the error small.
pub const MAX_REPORTED_PROBLEMS: usize = 20;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Value::Null, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 429: the client is over a rate limit and should wait `retry_after_secs`.
    pub fn too_many_requests(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, code, message);
        error.retry_after = Some(retry_after_secs);
        error
    }

    /// A valid key without the scope the operation needs.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unsupported_media_type(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, code, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }

    /// The database could not be reached: clients should retry, so this is a 5xx.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }

    /// A 422 listing `problems`, as every validation failure of the API is answered.
    pub fn validation(what: &str, problems: Vec<ProblemBody>) -> Self {
        let message = match problems.as_slice() {
            [] => format!("invalid {what}"),
            [only] => format!("invalid {what}: {}: {}", only.path, only.message),
            [first, rest @ ..] => {
                format!("invalid {what}: {}: {} (and {} more problems)", first.path, first.message, rest.len())
            }
        };
        let problem_count = problems.len();
        let details =
            ValidationDetails { problems: problems.into_iter().take(MAX_REPORTED_PROBLEMS).collect(), problem_count };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message)
            .with_details(serde_json::to_value(details).unwrap_or_default())
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        let problems = err
            .problems
            .into_iter()
            .map(|p| ProblemBody { path: p.path, message: p.message, index: None, field: None })
            .collect();
        ApiError::validation(err.what, problems)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry later")
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        let retry_after = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => Some(self.retry_after.unwrap_or(1)),
            _ => self.retry_after,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The error a layer below the handlers meant by an answer with no JSON body.
fn layer_error(status: StatusCode, state: &AppState) -> ApiError {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(status, "method_not_allowed", "this path does not accept this method (see the Allow header)")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::unsupported_media_type(
            "unsupported_content_encoding",
            "the request's Content-Encoding is not supported: send it uncompressed or with gzip (once)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(state.settings.body_limit_bytes),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s and was stopped; retry later",
                state.settings.request_timeout_secs
            ),
        ),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::internal(),
        other => ApiError::new(
            other,
            "http_error",
            other.canonical_reason().unwrap_or("the request could not be served").to_string(),
        ),
    }
}

/// Outermost middleware: an error answer without a JSON body (made by axum or a tower layer
/// rather than a handler) gets the API's error shape. Headers such as `Allow` are kept; the
/// 503 gets `Retry-After`.
pub async fn json_errors(State(state): State<AppState>, response: Response) -> Response {
    let status = response.status();
    // JSON errors are the API's own; HTML ones are the dashboard's pages.
    let is_own = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_own {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let rewritten = layer_error(status, &state).into_response();
    parts.status = rewritten.status();
    for name in [header::CONTENT_ENCODING, header::CONTENT_LENGTH, header::CONTENT_TYPE] {
        parts.headers.remove(name);
    }
    let (new_parts, body) = rewritten.into_parts();
    parts.headers.extend(new_parts.headers);
    parts.extensions.extend(new_parts.extensions);
    Response::from_parts(parts, body)
}
