//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! their typed bodies (the routes and the document are registered together, so they cannot
//! drift apart). What every operation shares is added here by rule rather than repeated in
//! each annotation: the two auth schemes, and the error answers each kind of operation can
//! give (every operation: 500, 503; with a key: 401; with a body: 400, 413, 415, 422; with
//! path parameters: 400, 404; with query parameters: 400, 422).

use axum::http::StatusCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, Ref, RefOr, Response};
use utoipa::OpenApi;

use crate::ops::model_configs::{IndividualTarget, ModelVariant, TargetingRule};
use crate::ops::templates::AbVariant;
use crate::web::error::{ErrorBody, ValidationErrorBody};

/// Paths that need no key.
pub const PUBLIC_PATHS: &[&str] = &["/health", "/healthz", "/readyz"];

const DESCRIPTION: &str = "\
Self-hosted LLM drift detection: log model responses, get drift verdicts per prompt, and serve \
model A/B configs, traces, custom metrics and prompt templates to the DriftBalloon and Fallom SDKs \
and to OpenTelemetry exporters.

**Auth.** Every operation except the health checks needs an API key, sent as \
`X-API-Key: db_sk_...` or `Authorization: Bearer db_sk_...`. A key sees only its own project. \
A key's scope is `ingest` (the operations marked with the `ingest` role: what SDKs and exporters \
call) or `admin` (everything); a wrong-scope request is a 403.

**Limits.** While the server has room, no key is refused. When its requests in flight reach \
its capacity, projects (and keys within a project) share it fairly: one over its share gets a \
429 `over_fair_share` with `Retry-After`; the SDKs' config reads are never refused for the same \
key's writes. Each client address has a budget of invalid keys (429 `too_many_failed_auth`), \
and an operator may set a hard request rate per key (429 `rate_limited`). A full server answers \
a 503 `overloaded` with `Retry-After`.

**Errors.** Every error answer, from every layer, is JSON: \
`{\"error\": {\"code\", \"message\", \"details\"}}`. A 422 lists every problem of the request in \
`details.problems` as `{path, message}`. A path with no such method is a 405 with an `Allow` \
header; an unknown path is a 404; a 503 (database unavailable, the request ran past the \
server's timeout, or the server is overloaded) carries `Retry-After`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "DriftBalloon server", description = DESCRIPTION, license(name = "MIT")),
    tags(
        (name = "drift", description = "Logs, prompts, baselines, drift events and samples"),
        (name = "sdk", description = "The paths the DriftBalloon and Fallom SDKs and OTLP exporters call"),
        (name = "model-configs", description = "Model A/B configs, their traffic summary and custom metrics"),
        (name = "prompts", description = "Prompt templates and prompt A/B tests"),
        (name = "traces", description = "Stored traces"),
        (name = "alerts", description = "Alert channels (signed webhooks, Slack) and their deliveries"),
        (name = "project", description = "The key's project"),
        (name = "health", description = "Liveness and readiness (no key)"),
    ),
    // Schemas referred to only from hand-built schemas (`validate::schemas`) are listed here.
    components(schemas(ErrorBody, ValidationErrorBody, IndividualTarget, TargetingRule, ModelVariant, AbVariant))
)]
pub struct ApiDoc;

fn error_response(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(schema))).build())
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).build()))
        .description(Some(description))
        .build()
}

/// The shared error answers, by the name operations refer to them with.
fn error_responses() -> Vec<(&'static str, Response)> {
    let error = "ErrorBody";
    vec![
        (
            "BadRequest",
            error_response(
                "The request cannot be read: not JSON (`invalid_json`), not OTLP (`invalid_protobuf`, \
                 `invalid_otlp_json`), a malformed path or query string (`invalid_path`, `invalid_query`)",
                error,
            )
            .build(),
        ),
        ("Unauthorized", error_response("No API key, or an unknown or revoked one", error).build()),
        (
            "Forbidden",
            error_response("The key's scope is `ingest` and the operation needs an `admin` key", error).build(),
        ),
        ("NotFound", error_response("No such resource in the key's project", error).build()),
        (
            "MethodNotAllowed",
            error_response("The path exists but not with this method", error)
                .header(
                    "Allow",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
                        .description(Some("The methods the path accepts"))
                        .build(),
                )
                .build(),
        ),
        ("PayloadTooLarge", error_response("The body, after gzip decoding, is over `body_limit_bytes`", error).build()),
        (
            "BodyTooSlow",
            error_response(
                "The body arrived too slowly (`body_too_slow`): it has `body_read_timeout_secs` plus a \
                 second per `body_min_bytes_per_sec` bytes received",
                error,
            )
            .build(),
        ),
        (
            "UnsupportedMediaType",
            error_response(
                "A `Content-Encoding` other than gzip, or (on `/v1/traces`) a content type other than \
                 JSON or protobuf",
                error,
            )
            .build(),
        ),
        (
            "ValidationFailed",
            error_response("The request is well-formed but wrong: every problem is listed", "ValidationErrorBody")
                .build(),
        ),
        (
            "TooManyRequests",
            error_response(
                "The server is full and this project or key holds its fair share of it \
                 (`over_fair_share`), the key is over an operator's hard rate (`rate_limited`), or \
                 this address sent too many invalid keys (`too_many_failed_auth`); retry after \
                 `Retry-After`",
                error,
            )
            .header("Retry-After", integer_header("Seconds to wait before retrying"))
            .build(),
        ),
        ("Internal", error_response("A server fault (logged; the cause is never sent)", error).build()),
        (
            "Unavailable",
            error_response(
                "The database is unavailable (`unavailable`), the request ran past the server's \
                 timeout (`timeout`), or too many requests are in flight (`overloaded`); retry",
                error,
            )
            .header("Retry-After", integer_header("Seconds to wait before retrying"))
            .build(),
        ),
    ]
}

/// Adds the answers an operation of this kind can give, keeping any it documents itself.
fn add_error_answers(op: &mut Operation, public: bool) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| {
        params.iter().any(
            |p| matches!(p, RefOr::T(p) if std::mem::discriminant(&p.parameter_in) == std::mem::discriminant(&place)),
        )
    };
    let (in_path, in_query) = (has(ParameterIn::Path), has(ParameterIn::Query));
    let mut answers = vec![("500", "Internal"), ("503", "Unavailable")];
    if !public {
        answers.push(("401", "Unauthorized"));
        answers.push(("429", "TooManyRequests"));
    }
    if op.request_body.is_some() {
        answers.extend([
            ("400", "BadRequest"),
            ("408", "BodyTooSlow"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
        ]);
        answers.push(("422", "ValidationFailed"));
    }
    if in_path {
        answers.extend([("400", "BadRequest"), ("404", "NotFound")]);
    }
    if in_query {
        answers.extend([("400", "BadRequest"), ("422", "ValidationFailed")]);
    }
    for (status, name) in answers {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
    // OpenAPI requires a description on every response; utoipa leaves it empty when the
    // annotation gives none, so the status's own reason phrase stands in.
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response {
            if response.description.is_empty() {
                let reason = status.parse::<u16>().ok().and_then(|s| StatusCode::from_u16(s).ok());
                response.description = reason.and_then(|s| s.canonical_reason()).unwrap_or("Success").to_string();
            }
        }
    }
}

/// The operations an `ingest` key may call: what the SDKs and OTLP exporters send and read.
/// Their handlers take `auth::IngestAuth`; every other operation with a key takes `auth::Auth`
/// and needs an `admin` key (the scopes test checks the two agree).
pub const INGEST_OPERATIONS: &[&str] = &[
    "post_logs",
    "get_sdk_config",
    "sdk_list_configs",
    "sdk_get_config_version",
    "sdk_record_session",
    "sdk_record_metrics",
    "ingest_traces",
    "ingest_otlp_logs",
    "sdk_list_prompts",
    "sdk_list_prompt_ab_tests",
];

/// Completes the generated document: auth schemes, per-operation security and error answers.
pub fn finish(mut doc: OpenApiDoc) -> OpenApiDoc {
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "api_key".into(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "An API key, `db_sk_...` (what the DriftBalloon SDK sends)",
        )))),
    );
    components.security_schemes.insert(
        "bearer".into(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The same API key as a bearer token (what the Fallom SDK and OTLP exporters send)"))
                .build(),
        )),
    );
    for (name, response) in error_responses() {
        components.responses.insert(name.to_string(), RefOr::T(response));
    }
    // The scope an operation needs, as the role name OpenAPI 3.1 allows in a requirement.
    let key_auth =
        |scope: &str| vec![SecurityRequirement::new("api_key", [scope]), SecurityRequirement::new("bearer", [scope])];
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            let ingest = op.operation_id.as_deref().is_some_and(|id| INGEST_OPERATIONS.contains(&id));
            op.security = Some(match (public, ingest) {
                (true, _) => Vec::new(),
                (false, true) => key_auth("ingest"),
                (false, false) => key_auth("admin"),
            });
            add_error_answers(op, public);
            if !public && !ingest {
                op.responses
                    .responses
                    .entry("403".to_string())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Forbidden")));
            }
        }
    }
    doc
}
