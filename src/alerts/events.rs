//! The alert payloads, one builder per event type. Every payload is
//! `{"type", "timestamp", "data"}` (the Standard Webhooks convention); docs/alerts.md,
//! "Events", shows an example of each. Payloads are built once, stored in the outbox, and sent byte for byte on
//! every attempt, so a retried message verifies exactly like the first.

use serde_json::{json, Value};

use crate::domain::{AlertEventType, DriftKind, PromptVersion};

/// RFC 3339 in UTC with milliseconds, from epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A payload ready for the outbox.
pub struct AlertEvent {
    pub event_type: AlertEventType,
    /// The prompt it is about, for channels' prompt filters.
    pub prompt: Option<String>,
    pub created_at: i64,
    pub payload: Value,
}

impl AlertEvent {
    fn new(event_type: AlertEventType, prompt: Option<&str>, created_at: i64, data: Value) -> Self {
        let payload = json!({ "type": event_type.as_str(), "timestamp": rfc3339(created_at), "data": data });
        AlertEvent { event_type, prompt: prompt.map(str::to_string), created_at, payload }
    }

    pub fn body(&self) -> String {
        self.payload.to_string()
    }
}

/// Where an alert about a prompt comes from.
pub struct PromptRef<'a> {
    pub project: &'a str,
    pub prompt: &'a str,
}

/// What the drift event that opened an episode recorded.
pub struct DetectedDrift<'a> {
    pub drift_event_id: i64,
    pub version: PromptVersion,
    pub kind: DriftKind,
    pub score: f64,
    pub threshold: f64,
    pub window_size: i64,
    pub sample_id: i64,
    pub switched_to: Option<PromptVersion>,
    pub explanation: Option<&'a Value>,
}

pub fn drift_detected(p: &PromptRef, d: &DetectedDrift, at: i64) -> AlertEvent {
    let data = json!({
        "project": p.project,
        "prompt": p.prompt,
        "drift_event_id": d.drift_event_id,
        "version": d.version,
        "kind": d.kind,
        "score": d.score,
        "threshold": d.threshold,
        "window_size": d.window_size,
        "sample_id": d.sample_id,
        "switched_to": d.switched_to,
        "detected_at": rfc3339(at),
        "explanation": d.explanation,
    });
    AlertEvent::new(AlertEventType::DriftDetected, Some(p.prompt), at, data)
}

pub struct ResolvedDrift {
    /// The event that opened the episode (None if it is gone).
    pub drift_event_id: Option<i64>,
    pub version: PromptVersion,
    pub kind: DriftKind,
    pub score: f64,
    pub threshold: f64,
    pub window_size: i64,
}

pub fn drift_resolved(p: &PromptRef, r: &ResolvedDrift, at: i64) -> AlertEvent {
    let data = json!({
        "project": p.project,
        "prompt": p.prompt,
        "version": r.version,
        "kind": r.kind,
        "drift_event_id": r.drift_event_id,
        "score": r.score,
        "threshold": r.threshold,
        "window_size": r.window_size,
        "resolved_at": rfc3339(at),
    });
    AlertEvent::new(AlertEventType::DriftResolved, Some(p.prompt), at, data)
}

pub fn version_switched(
    p: &PromptRef,
    from: PromptVersion,
    to: PromptVersion,
    drift_event_id: i64,
    at: i64,
) -> AlertEvent {
    let data = json!({
        "project": p.project,
        "prompt": p.prompt,
        "from": from,
        "to": to,
        "reason": "drift",
        "drift_event_id": drift_event_id,
    });
    AlertEvent::new(AlertEventType::VersionSwitched, Some(p.prompt), at, data)
}

pub fn baseline_ready(p: &PromptRef, version: PromptVersion, sample_count: i64, at: i64) -> AlertEvent {
    let data = json!({ "project": p.project, "prompt": p.prompt, "version": version, "sample_count": sample_count });
    AlertEvent::new(AlertEventType::BaselineReady, Some(p.prompt), at, data)
}

pub fn test(project: &str, channel_id: i64, at: i64) -> AlertEvent {
    let data = json!({
        "project": project,
        "channel_id": channel_id,
        "message": "This is a test alert from DriftBalloon: the channel works.",
    });
    AlertEvent::new(AlertEventType::Test, None, at, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_shape() {
        let p = PromptRef { project: "default", prompt: "bot" };
        let e = baseline_ready(&p, PromptVersion::A, 30, 1_700_000_000_123);
        assert_eq!(e.payload["type"], "baseline.ready");
        assert_eq!(e.payload["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(e.payload["data"]["sample_count"], 30);
        assert_eq!(e.prompt.as_deref(), Some("bot"));
        assert_eq!(test("default", 4, 0).payload["data"]["channel_id"], 4);
    }
}
