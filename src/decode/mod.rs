//! The wire formats that bring spans and log records in, decoded into ingest items
//! (`crate::ingest`), independent of HTTP: the Fallom SDK's JSON span ([`fallom`]), OTLP spans
//! ([`otlp_spans`]) and OTLP log records ([`otlp_logs`]), and how GenAI conventions name a
//! call's model, usage and content ([`conventions`], [`content`]).

pub mod content;
pub mod conventions;
pub mod fallom;
pub mod otlp_logs;
pub mod otlp_spans;
