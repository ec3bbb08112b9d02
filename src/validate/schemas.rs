//! OpenAPI schemas of constrained fields, built from the constants in
//! [`crate::validate::limits`] (utoipa's attribute limits take only literals), so the document
//! always states the limits the request readers enforce. Used as
//! `#[schema(schema_with = schemas::name)]` on request fields. "Optional" variants also allow
//! `null`, which the readers treat as absent (the SDKs send `null` for unset fields).

use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::validate::limits::*;

/// An alert channel URL as `alerts::address::parse_channel_url` accepts it: http(s), a host
/// with an optional port, then an optional path and query in RFC 3986's characters (the `uri`
/// format; the server would also take others, percent-encoded); no user name, password or
/// fragment.
/// The host is a DNS name whose last label starts with a letter (a last label of digits makes
/// URL parsing read the host as an IPv4 address) or a dotted IPv4 address; the server also takes
/// a bracketed IPv6 literal, which the pattern leaves out.
const CHANNEL_URL_PATTERN: &str = concat!(
    r"^[Hh][Tt][Tt][Pp][Ss]?://",
    r"(([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?",
    r"|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    r"(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"([/?]([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"
);

/// Not blank: at least one character that is not white space (the readers refuse "   ").
const NOT_BLANK: &str = r"\S";

fn types(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::Array(vec![t, Type::Null])
    } else {
        SchemaType::Type(t)
    }
}

/// A required, non-blank string of at most `max` characters.
pub fn required_text(max: usize) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(max)).pattern(Some(NOT_BLANK))
}

/// An optional string of at most `max` characters (null allowed).
pub fn optional_text(max: usize) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(types(Type::String, true)).max_length(Some(max))
}

/// An integer from `min` to `max`.
pub fn int(min: i64, max: i64, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(types(Type::Integer, nullable))
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
}

/// Defines a `fn NAME() -> RefOr<Schema>` for `schema_with`.
macro_rules! schema_fn {
    ($($(#[$meta:meta])* $name:ident => $body:expr;)+) => {
        $(
            $(#[$meta])*
            pub fn $name() -> RefOr<Schema> {
                RefOr::T(Schema::Object($body.build()))
            }
        )+
    };
}

schema_fn! {
    /// Prompt names, config keys, template and A/B test keys.
    name => required_text(MAX_NAME_CHARS);
    optional_name => optional_text(MAX_NAME_CHARS);
    /// Keys SDKs put into URL paths: no `/ ? # % \`, no white space.
    key => required_text(MAX_NAME_CHARS).pattern(Some(r"^[^/?#%\\\s\x00-\x1f\x7f-\x9f]+$"));
    id => required_text(MAX_ID_CHARS);
    optional_id => optional_text(MAX_ID_CHARS);
    model => required_text(MAX_MODEL_CHARS);
    optional_model => optional_text(MAX_MODEL_CHARS);
    span_name => required_text(MAX_SPAN_NAME_CHARS);
    optional_kind => optional_text(MAX_KIND_CHARS);
    optional_error => optional_text(MAX_ERROR_CHARS);
    template => ObjectBuilder::new().schema_type(Type::String).max_length(Some(MAX_TEMPLATE_CHARS));
    required_template => required_text(MAX_TEMPLATE_CHARS);
    /// An ISO 8601 time (RFC 3339 is the documented form; a time without an offset is also
    /// read, as UTC).
    time => required_text(MAX_TIME_CHARS).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)));
    version => int(1, MAX_VERSION, false);
    optional_version => int(1, MAX_VERSION, true);
    optional_duration_ms => int(0, MAX_DURATION_MS, true);
    duration_ms => int(0, MAX_DURATION_MS, false);
    optional_variant_index => int(0, MAX_VARIANT_INDEX, true);
    variant_index => int(0, MAX_VARIANT_INDEX, false);
    /// A percentage weight.
    weight => ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0.0)).maximum(Some(100.0));
    /// Tokens of one span (documented on span reads; sums saturate at i64::MAX).
    optional_tokens => int(0, i64::MAX, true);
    /// An alert channel's http(s) URL: it names a host (a DNS name or an IP address, with an
    /// optional port), has no user name or password and no fragment, as the server checks.
    channel_url => required_text(MAX_URL_CHARS).format(Some(SchemaFormat::Custom("uri".into())))
        .pattern(Some(CHANNEL_URL_PATTERN));
    optional_channel_url => optional_text(MAX_URL_CHARS).pattern(Some(CHANNEL_URL_PATTERN));
    grace_period => int(0, MAX_SECRET_GRACE_SECS, true).default(Some(DEFAULT_SECRET_GRACE_SECS.into()));
}

/// An alert channel's prompt filter: prompt names (null = every prompt).
pub fn channel_prompts() -> RefOr<Schema> {
    let item = required_text(MAX_NAME_CHARS).build();
    let array = ArrayBuilder::new()
        .schema_type(types(Type::Array, true))
        .items(item)
        .min_items(Some(1))
        .max_items(Some(MAX_CHANNEL_PROMPTS));
    RefOr::T(Schema::Array(array.build()))
}

/// Span tags: at most [`MAX_TAGS`] strings of at most [`MAX_ID_CHARS`] characters.
pub fn optional_tags() -> RefOr<Schema> {
    let array = ArrayBuilder::new()
        .schema_type(types(Type::Array, true))
        .items(optional_text(MAX_ID_CHARS).schema_type(Type::String))
        .max_items(Some(MAX_TAGS));
    RefOr::T(Schema::Array(array.build()))
}

/// `drift_threshold` of a prompt: a similarity ratio from 0 to 1.
pub fn ratio() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::Number).minimum(Some(0.0)).maximum(Some(1.0)).build(),
    ))
}

/// `length_drift_threshold` of a prompt: standard deviations, above 0.
pub fn length_threshold() -> RefOr<Schema> {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0.0))
        .maximum(Some(MAX_LENGTH_DRIFT_THRESHOLD));
    RefOr::T(Schema::Object(schema.build()))
}

/// `false_alarm_budget` of a prompt: expected false alarms per 100,000 stable samples.
pub fn false_alarm_budget() -> RefOr<Schema> {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(crate::drift::budget::MIN_BUDGET))
        .maximum(Some(crate::drift::budget::MAX_BUDGET));
    RefOr::T(Schema::Object(schema.build()))
}

/// `min_baseline_samples` of a prompt.
pub fn min_baseline_samples() -> RefOr<Schema> {
    RefOr::T(Schema::Object(int(MIN_BASELINE_SAMPLES, MAX_BASELINE_SAMPLES, false).build()))
}

/// Custom metrics: 1 to [`MAX_METRIC_FIELDS`] fields with any values, names of 1 to
/// [`MAX_ID_CHARS`] characters, not blank.
pub fn metric_data() -> RefOr<Schema> {
    let names = required_text(MAX_ID_CHARS);
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .max_properties(Some(MAX_METRIC_FIELDS))
        .property_names(Some(names));
    RefOr::T(Schema::Object(schema.build()))
}

/// An array of 1 to [`MAX_VARIANTS`] items of the named component schema.
fn variant_list(item: &str) -> RefOr<Schema> {
    let array = ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name(item))
        .min_items(Some(1))
        .max_items(Some(MAX_VARIANTS));
    RefOr::T(Schema::Array(array.build()))
}

/// The variants of a model config.
pub fn model_variants() -> RefOr<Schema> {
    variant_list("ModelVariant")
}

/// The variants of a prompt A/B test.
pub fn ab_variants() -> RefOr<Schema> {
    variant_list("AbVariant")
}

/// An optional list of at most [`MAX_TARGETS`] items of the named component schema.
fn target_list(item: &str) -> RefOr<Schema> {
    let array = ArrayBuilder::new()
        .schema_type(types(Type::Array, true))
        .items(utoipa::openapi::Ref::from_schema_name(item))
        .max_items(Some(MAX_TARGETS));
    RefOr::T(Schema::Array(array.build()))
}

pub fn individual_targets() -> RefOr<Schema> {
    target_list("IndividualTarget")
}

pub fn targeting_rules() -> RefOr<Schema> {
    target_list("TargetingRule")
}

/// The value an individual target matches (may be empty).
pub fn target_value() -> RefOr<Schema> {
    RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).max_length(Some(MAX_ID_CHARS)).build()))
}

/// The `limit` of a paged list.
pub fn page_limit() -> RefOr<Schema> {
    RefOr::T(Schema::Object(int(1, MAX_PAGE, false).default(Some(DEFAULT_PAGE.into())).build()))
}

/// A span status as clients may write it: `OK`, `ERROR` or `UNSET` in any letter case.
pub fn span_status() -> RefOr<Schema> {
    RefOr::T(Schema::Object(ObjectBuilder::new().schema_type(Type::String).pattern(Some(ANY_CASE_STATUS)).build()))
}

/// A trace status filter: `OK` or `ERROR` in any letter case.
pub fn trace_status() -> RefOr<Schema> {
    let schema = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^([Oo][Kk]|[Ee][Rr][Rr][Oo][Rr])$"));
    RefOr::T(Schema::Object(schema.build()))
}

const ANY_CASE_STATUS: &str = "^([Oo][Kk]|[Ee][Rr][Rr][Oo][Rr]|[Uu][Nn][Ss][Ee][Tt])$";
