//! What a span keeps when its project does not capture content: an allowlist, because content
//! arrives under names no list of content attributes can know in advance (OpenInference's
//! `output.value`, `ai.response.text`, `traceloop.entity.output`, a custom attribute). Only
//! attributes known to carry no content are kept: ids, model and provider, request parameters,
//! usage, timings and status codes. docs/sdks-and-otlp.md, "Privacy: content capture", lists them.

/// Span attributes kept by exact name.
const SPAN_KEYS: &[&str] = &[
    "session.id",
    "user.id",
    "enduser.id",
    "fallom.session_id",
    "fallom.customer_id",
    "fallom.config_key",
    "gen_ai.conversation.id",
    "gen_ai.prompt.name",
    "driftballoon.prompt_name",
    "gen_ai.operation.name",
    "gen_ai.system",
    "gen_ai.provider.name",
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.output.type",
    "llm.model_name",
    "llm.provider",
    "llm.system",
    "llm.request.type",
    "llm.is_streaming",
    "openinference.span.kind",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "traceloop.workflow.name",
    "ai.model.id",
    "ai.model.provider",
    "ai.operationId",
    "ai.response.model",
    "ai.response.finishReason",
    "error.type",
    "http.request.method",
    "http.response.status_code",
    "server.address",
    "server.port",
    "otel.status_code",
    "otel.scope.name",
    "otel.dropped_attributes_count",
];

/// Span attributes kept by prefix: request parameters and token counts.
const SPAN_PREFIXES: &[&str] =
    &["gen_ai.request.", "gen_ai.usage.", "llm.token_count.", "llm.usage.", "ai.usage.", "ai.settings."];

/// Resource attributes kept by prefix: what runs where, never what it said.
const RESOURCE_PREFIXES: &[&str] =
    &["service.", "telemetry.", "host.", "os.", "process.runtime.", "deployment.", "cloud.", "k8s.", "container."];

pub fn keep_span_attribute(key: &str) -> bool {
    SPAN_KEYS.contains(&key) || SPAN_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// A log record keeps what a span keeps, and the name of the event it is. Its body is never
/// kept without content capture: a body is the record's message.
pub fn keep_log_attribute(key: &str) -> bool {
    key == "event.name" || keep_span_attribute(key)
}

pub fn keep_resource_attribute(key: &str) -> bool {
    key == "driftballoon.prompt_name" || RESOURCE_PREFIXES.iter().any(|p| key.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_under_any_name_is_dropped() {
        for content in [
            "gen_ai.output.messages",
            "gen_ai.completion.0.content",
            "llm.output_messages.0.message.content",
            "llm.input_messages.0.message.content",
            "output.value",
            "input.value",
            "ai.response.text",
            "ai.prompt",
            "traceloop.entity.output",
            "fallom.raw.response",
            "my.custom.answer",
        ] {
            assert!(!keep_span_attribute(content), "{content}");
        }
        for kept in ["gen_ai.request.model", "gen_ai.usage.input_tokens", "llm.token_count.prompt", "session.id"] {
            assert!(keep_span_attribute(kept), "{kept}");
        }
        assert!(keep_resource_attribute("service.name") && !keep_resource_attribute("app.user_question"));
    }
}
