//! Every size and range limit of the API, defined once: the request readers enforce them and
//! the OpenAPI document publishes them (see [`super::schemas`]), so the two cannot disagree.

/// Names a person chooses: prompt names, model-config keys, template and A/B test keys.
pub const MAX_NAME_CHARS: usize = 200;
/// Identifiers a client generates: session, customer, trace and span ids, metric field names,
/// targeting fields and values.
pub const MAX_ID_CHARS: usize = 200;
/// Model names (`gpt-4o-2024-08-06`), in logs, configs, sessions and spans.
pub const MAX_MODEL_CHARS: usize = 200;
/// Span names; longer OTLP names are cut, longer Fallom names refused.
pub const MAX_SPAN_NAME_CHARS: usize = 1000;
/// A span's kind (`llm`, `client`, ...).
pub const MAX_KIND_CHARS: usize = 100;
/// A span's error message; longer OTLP status messages are cut.
pub const MAX_ERROR_CHARS: usize = 10_000;
/// A prompt template's system prompt or user template.
pub const MAX_TEMPLATE_CHARS: usize = 100_000;
/// An ISO 8601 time as text.
pub const MAX_TIME_CHARS: usize = 100;

/// Variants of one model config or prompt A/B test.
pub const MAX_VARIANTS: usize = 100;
/// Individual targets, and rules, of one model config's targeting.
pub const MAX_TARGETS: usize = 10_000;
/// Tags on one span.
pub const MAX_TAGS: usize = 100;
/// Fields in one custom-metrics update.
pub const MAX_METRIC_FIELDS: usize = 200;
/// Fallom spans in one JSON array (the SDK sends one at a time).
pub const MAX_FALLOM_SPANS: usize = 1000;
/// Spans in one OTLP export. The OpenTelemetry SDKs' batch processor sends 512 at most by
/// default; a bigger export is refused whole (413), never stored half-way.
pub const MAX_OTLP_SPANS: usize = 10_000;
/// Log records in one OTLP export: the same rule as spans (the SDKs' batch log processor
/// also sends 512 at most by default).
pub const MAX_OTLP_LOG_RECORDS: usize = 10_000;
/// Attributes stored per span (OpenTelemetry's own default attribute count limit); the rest
/// are dropped and counted in `otel.dropped_attributes_count`.
pub const MAX_SPAN_ATTRIBUTES: usize = 128;
/// Characters of one stored attribute string; longer values are cut and marked.
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 4096;
/// Items of one stored attribute array (and entries of a nested map), and how deep maps nest.
pub const MAX_ATTRIBUTE_ITEMS: usize = 128;
pub const MAX_ATTRIBUTE_DEPTH: usize = 4;

/// Version numbers (configs, templates, A/B tests, `prompt_version` of a span): 1 up to this.
pub const MAX_VERSION: i64 = i32::MAX as i64;
/// Token counts of one span: 0 up to this (10^12, far above any single model call). Sums over
/// many spans saturate at `i64::MAX` instead of overflowing.
pub const MAX_TOKENS: i64 = 1_000_000_000_000;
/// Durations in milliseconds (`duration_ms`, `time_to_first_token_ms`): 0 up to ten years.
pub const MAX_DURATION_MS: i64 = 315_576_000_000;
/// `prompt_variant_index` of a span and `variantIndex` of targeting: 0 up to this.
pub const MAX_VARIANT_INDEX: i64 = MAX_VARIANTS as i64 - 1;

/// `min_baseline_samples` of a prompt.
pub const MIN_BASELINE_SAMPLES: i64 = 2;
/// Learning keeps every vector until the baseline is ready (about 1.5 KiB each, in its stored
/// state and in memory while a batch is scored): 2,000 keeps that state at 3 MiB, so a scoring
/// transaction stays short; more samples hardly make the centroid or its calibration better.
pub const MAX_BASELINE_SAMPLES: i64 = 2_000;
/// `length_drift_threshold` of a prompt: above 0, at most this many standard deviations.
pub const MAX_LENGTH_DRIFT_THRESHOLD: f64 = 100.0;

/// Page sizes of every paged list.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

/// Weights are percentages; floating-point sums like 33.3 + 33.3 + 33.4 need a little room.
pub const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;

/// An alert channel's URL.
pub const MAX_URL_CHARS: usize = 2048;
/// Prompt names in one alert channel's filter.
pub const MAX_CHANNEL_PROMPTS: usize = 100;
/// How long a rotated-out webhook secret may stay valid: up to 30 days.
pub const MAX_SECRET_GRACE_SECS: i64 = 30 * 24 * 3600;
/// The default grace period of a rotated-out secret: a day.
pub const DEFAULT_SECRET_GRACE_SECS: i64 = 24 * 3600;
