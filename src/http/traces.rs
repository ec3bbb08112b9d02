//! The API's trace reads (`/api/v1/traces`): each reads its request and calls its operation in
//! `crate::ops::traces`. Ingest (`POST /v1/traces`) is `otlp_traces`.

use axum::extract::State;
use axum::Json;

use crate::ops::traces as ops;
use crate::ops::traces::*;
use crate::web::auth::Auth;
use crate::web::query::{ApiPath, ValidQuery};
use crate::web::{ApiResult, AppState};

/// Traces of the project, newest first, one row per trace.
#[utoipa::path(
    get, path = "/api/v1/traces", tag = "traces", operation_id = "list_traces",
    params(TraceListParams),
    responses((status = 200, body = TracePage))
)]
pub async fn list(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ValidQuery(params): ValidQuery<TraceListParams>,
) -> ApiResult<Json<TracePage>> {
    ops::list(&state, &owner, params).await.map(Json)
}

/// One trace: its time range and span count, and a page of its spans in start order (a trace
/// can hold thousands: follow `next_after` for the rest).
#[utoipa::path(
    get, path = "/api/v1/traces/{trace_id}", tag = "traces", operation_id = "get_trace",
    params(("trace_id" = String, Path, example = "5b8efff798038103d269b633813fc60c"), SpanPageParams),
    responses((status = 200, body = TraceDetail))
)]
pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(trace_id): ApiPath<String>,
    ValidQuery(arg3): ValidQuery<SpanPageParams>,
) -> ApiResult<Json<TraceDetail>> {
    ops::detail(&state, &owner, trace_id, arg3).await.map(Json)
}

/// A page of one trace's OTLP log records, in time order (GenAI content events and any other
/// record that named the trace).
#[utoipa::path(
    get, path = "/api/v1/traces/{trace_id}/logs", tag = "traces", operation_id = "get_trace_logs",
    params(("trace_id" = String, Path, example = "5b8efff798038103d269b633813fc60c"), SpanPageParams),
    responses((status = 200, body = TraceLogPage))
)]
pub async fn logs(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(trace_id): ApiPath<String>,
    ValidQuery(arg3): ValidQuery<SpanPageParams>,
) -> ApiResult<Json<TraceLogPage>> {
    ops::logs(&state, &owner, trace_id, arg3).await.map(Json)
}
