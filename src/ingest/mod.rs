//! Ingest items and the rules that shape them, below the store: what the HTTP handlers and the
//! wire decoders (`decode/`) hand to the store ([`items`]), what the project's privacy setting
//! and the storage bounds keep ([`privacy`], [`bounds`]), and how a span becomes a drift sample
//! ([`span_sample`]). The store imports this module, never the reverse.

pub mod bounds;
pub mod items;
pub mod privacy;
pub mod span_sample;

pub use items::{NewLogRecord, NewSample, NewSpan, TokenUsage};
pub use span_sample::{finish_span, sample_of, PROMPT_NAME_ATTRIBUTE};

#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// The project's `capture_content` setting.
    pub capture_content: bool,
    /// The server's `max_text_chars`: sample text beyond it is cut, not refused.
    pub max_text_chars: usize,
}

pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}
