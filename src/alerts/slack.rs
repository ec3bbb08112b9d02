//! Slack rendering for DriftBalloon alert events: [`message`] turns one alert event
//! (`{"type", "timestamp", "data"}`) into a Slack incoming-webhook body, Block Kit `blocks` plus a short
//! fallback `text` for notifications and clients that cannot show blocks.
//!
//! Slack rejects the *whole* message with `invalid_blocks` when any Block Kit limit is exceeded, so one
//! long prompt name or response text would silently lose the alert. Every string is therefore escaped
//! first and then cut (never inside a char or an escape entity, ending in "…") to fit: header plain_text
//! ≤ 150 chars; section text ≤ 3000; each field ≤ 2000 and ≤ 10 fields per section; ≤ 10 context
//! elements; button text ≤ 75 and url ≤ 3000 (a longer link is dropped: a cut URL would point somewhere
//! wrong); ≤ 50 blocks; top-level text ≤ 3000.
//!
//! All payload text is escaped (`&`, `<`, `>`) so user data can never ping (`<!channel>`) or smuggle a
//! link (`<http://x|y>`). Missing or mistyped fields fall back to defaults instead of panicking: an alert
//! with partial data is better than no alert.

use serde_json::{json, Value};

const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
const MAX_FIELDS: usize = 10;
const CONTEXT_MAX: usize = 10;
const URL_MAX: usize = 3000;
const TEXT_MAX: usize = 3000;
/// Quotes are cut far below the section limit so that three of them stay readable at a glance.
const QUOTE_MAX: usize = 300;
const QUOTES: usize = 3;
const TERMS: usize = 5;
const TERM_MAX: usize = 60;
const MISSING: &str = "—";

/// The Slack message for one alert event. `event` is the alert payload `{"type","timestamp","data"}`;
/// `public_url` is the server's public base URL (a trailing slash is stripped) or None.
pub fn message(event: &Value, public_url: Option<&str>) -> Value {
    let kind = str_at(event, "type", "unknown");
    let data = event.get("data").unwrap_or(&Value::Null);
    let header = clip(&one_line(&title(kind, data)), HEADER_MAX);
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}})];
    let fields = fields(kind, data);
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(text) = detail(kind, data) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": fit(&text, SECTION_MAX)}}));
    }
    blocks.push(context(event, data));
    let url = public_url.and_then(|base| dashboard_url(base, data));
    if let Some(url) = &url {
        let button = json!({"type": "button", "text": {"type": "plain_text", "text": "Open in dashboard"}, "url": url});
        blocks.push(json!({"type": "actions", "elements": [button]}));
    }
    json!({"text": fallback(&header, url.as_deref()), "blocks": blocks})
}

/// Escapes text for Slack mrkdwn/plain text: & -> &amp;, < -> &lt;, > -> &gt; (nothing else).
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Escapes raw text, then cuts it to `max` chars.
fn clip(raw: &str, max: usize) -> String {
    fit(&escape(raw), max)
}

/// Cuts already-escaped text to at most `max` chars ending in "…". Entities are kept whole because
/// a split `&am` would render as garbage (or a stray `&` Slack may reject).
fn fit(escaped: &str, max: usize) -> String {
    if escaped.chars().count() <= max {
        return escaped.to_string();
    }
    let budget = max.saturating_sub(1);
    let (mut out, mut used, mut rest) = (String::new(), 0, escaped);
    while let Some(c) = rest.chars().next() {
        let unit = ["&amp;", "&lt;", "&gt;"].into_iter().find(|e| rest.starts_with(e)).unwrap_or(&rest[..c.len_utf8()]);
        let n = unit.chars().count();
        if used + n > budget {
            break;
        }
        out.push_str(unit);
        used += n;
        rest = &rest[unit.len()..];
    }
    out.push('…');
    out
}

/// Collapses newlines and runs of whitespace, so user text cannot break out of a quote or header line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A non-blank string field, or `default` when it is missing, blank or not a string.
fn str_at<'a>(value: &'a Value, key: &str, default: &'a str) -> &'a str {
    value.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).unwrap_or(default)
}

/// An escaped, single-line field for mrkdwn; numbers (e.g. a numeric `channel_id`) are shown as-is.
fn esc_at(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::Number(n)) => n.to_string(),
        _ => escape(&one_line(str_at(value, key, MISSING))),
    }
}

fn num_at(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

fn title(kind: &str, data: &Value) -> String {
    let prompt = str_at(data, "prompt", "unknown prompt");
    match kind {
        "drift.detected" => format!("Drift detected: {prompt}"),
        "drift.resolved" => format!("Drift resolved: {prompt}"),
        "prompt.version_switched" => format!("Prompt switched to version {}: {prompt}", str_at(data, "to", "b")),
        "baseline.ready" => format!("Baseline ready: {prompt}"),
        "test" => "Test alert from DriftBalloon".to_string(),
        other => format!("DriftBalloon alert: {other}"),
    }
}

/// The label/value grid under the header; values are escaped here, the whole field is cut later.
fn fields(kind: &str, data: &Value) -> Vec<Value> {
    let project = ("Project", esc_at(data, "project"));
    let prompt = ("Prompt", esc_at(data, "prompt"));
    let version = ("Version", esc_at(data, "version"));
    let drift_kind = ("Kind", esc_at(data, "kind"));
    let score = ("Score vs threshold", score_text(data));
    let window =
        ("Window", data.get("window_size").and_then(Value::as_u64).map_or(MISSING.into(), |n| format!("{n} samples")));
    let rows = match kind {
        "drift.detected" => {
            vec![project, prompt, drift_kind, version, score, ("Version switch", switch_text(data)), window]
        }
        "drift.resolved" => vec![project, prompt, drift_kind, version, score, window],
        "prompt.version_switched" => {
            let switch = format!("{} → {}", esc_at(data, "from"), esc_at(data, "to"));
            vec![project, prompt, ("Version switch", switch), ("Reason", esc_at(data, "reason"))]
        }
        "baseline.ready" => {
            let count = data.get("sample_count").and_then(Value::as_u64).map_or(MISSING.into(), |n| n.to_string());
            vec![project, prompt, version, ("Baseline samples", count)]
        }
        "test" => vec![project, ("Channel", esc_at(data, "channel_id"))],
        _ => vec![project, prompt],
    };
    rows.into_iter()
        .take(MAX_FIELDS)
        .map(|(label, value)| json!({"type": "mrkdwn", "text": fit(&format!("*{label}*\n{value}"), FIELD_MAX)}))
        .collect()
}

/// Length drift is a signed z-like score against a symmetric band; semantic drift is a distance.
fn score_text(data: &Value) -> String {
    let (Some(score), Some(threshold)) = (num_at(data, "score"), num_at(data, "threshold")) else {
        return MISSING.to_string();
    };
    if str_at(data, "kind", "") == "length" {
        format!("{score:+.2} (threshold ±{threshold:.2})")
    } else {
        format!("{score:.3} (threshold {threshold:.3})")
    }
}

fn switch_text(data: &Value) -> String {
    match data.get("switched_to").and_then(Value::as_str) {
        Some(to) => format!("{} → {}", escape(&one_line(str_at(data, "version", "a"))), escape(&one_line(to))),
        None => "none".to_string(),
    }
}

/// The free-text section: the test message, or the drift explanation.
fn detail(kind: &str, data: &Value) -> Option<String> {
    let explanation = data.get("explanation").unwrap_or(&Value::Null);
    match (kind, explanation.get("kind").and_then(Value::as_str)) {
        ("test", _) => data.get("message").and_then(Value::as_str).filter(|m| !m.trim().is_empty()).map(escape),
        ("drift.detected", Some("semantic")) => semantic_detail(explanation),
        ("drift.detected", Some("length")) => Some(length_detail(explanation)),
        _ => None,
    }
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn semantic_detail(explanation: &Value) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    let quotes: Vec<String> = list(explanation, "farthest_recent").iter().take(QUOTES).map(quote).collect();
    if !quotes.is_empty() {
        lines.push("*Farthest recent responses*".to_string());
        lines.extend(quotes);
    }
    let terms: Vec<String> = [("rose", "terms_rose"), ("fell", "terms_fell")]
        .into_iter()
        .map(|(label, key)| (label, term_list(explanation, key)))
        .filter(|(_, terms)| !terms.is_empty())
        .map(|(label, terms)| format!("{label}: {terms}"))
        .collect();
    if !terms.is_empty() {
        lines.push(format!("*Terms* {}", terms.join(" · ")));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Text may be absent when content capture is off; the sample id still lets an operator find it.
fn quote(sample: &Value) -> String {
    match (sample.get("text").and_then(Value::as_str), sample.get("sample_id").and_then(Value::as_i64)) {
        (Some(text), _) => format!("> {}", clip(&one_line(text), QUOTE_MAX)),
        (None, Some(id)) => format!("> _sample #{id} (text not captured)_"),
        (None, None) => "> _(text not captured)_".to_string(),
    }
}

fn term_list(explanation: &Value, key: &str) -> String {
    let terms = list(explanation, key).iter().filter_map(|t| t.get("term").and_then(Value::as_str));
    terms.take(TERMS).map(|t| clip(&one_line(t), TERM_MAX)).collect::<Vec<_>>().join(", ")
}

fn length_detail(explanation: &Value) -> String {
    let row = |label: &str, key: &str| {
        let stats = explanation.get(key).unwrap_or(&Value::Null);
        let pct = |p: &str| num_at(stats, p).map_or(MISSING.to_string(), |v| format!("{v:.0}"));
        let n = stats.get("samples").and_then(Value::as_u64).map_or(MISSING.to_string(), |n| n.to_string());
        format!("{label}: p10 {} · p50 {} · p90 {} (n={n})", pct("p10"), pct("p50"), pct("p90"))
    };
    format!("*Response length*\n{}\n{}", row("baseline", "baseline_lengths"), row("recent", "recent_lengths"))
}

/// Timestamp and ids, so the alert can be matched to the dashboard and logs.
fn context(event: &Value, data: &Value) -> Value {
    let ids = [("drift event", "drift_event_id"), ("sample", "sample_id")];
    let ids = ids.into_iter().filter_map(|(label, key)| Some(format!("{label} #{}", data.get(key)?.as_i64()?)));
    let items = std::iter::once(clip(str_at(event, "timestamp", "unknown time"), SECTION_MAX)).chain(ids);
    let elements: Vec<Value> = items.take(CONTEXT_MAX).map(|text| json!({"type": "mrkdwn", "text": text})).collect();
    json!({"type": "context", "elements": elements})
}

/// The prompt's dashboard page, or None when there is no prompt, the URL is too long, or the base URL is
/// not absolute http(s): Slack rejects the whole message for an invalid button URL, losing the alert.
fn dashboard_url(base: &str, data: &Value) -> Option<String> {
    let base = base.trim_end_matches('/');
    let prompt = data.get("prompt").and_then(Value::as_str).filter(|p| !p.is_empty())?;
    let url = format!("{base}/ui/prompts/{}", percent_encode(prompt));
    let absolute = base.starts_with("https://") || base.starts_with("http://");
    (absolute && url.chars().count() <= URL_MAX).then_some(url)
}

/// Encodes every byte outside the RFC 3986 unreserved set, so names with `/`, `?` or `#` stay one path segment.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The header doubles as the notification text; the link is added only if it still fits.
fn fallback(header: &str, url: Option<&str>) -> String {
    let with_link = url.map(|u| format!("{header} <{}|View prompt>", escape(u)));
    with_link.filter(|t| t.chars().count() <= TEXT_MAX).unwrap_or_else(|| header.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders one event, checks it against every limit, and returns it with its JSON text for `contains` checks.
    fn render(kind: &str, data: Value, url: Option<&str>) -> (Value, String) {
        let msg = message(&json!({"type": kind, "timestamp": "2024-05-01T12:00:00Z", "data": data}), url);
        assert_within_block_kit_limits(&msg);
        let text = msg.to_string();
        (msg, text)
    }

    fn header(msg: &Value) -> &str {
        msg["blocks"][0]["text"]["text"].as_str().unwrap_or_default()
    }

    fn detected(kind: &str, score: f64, threshold: f64, explanation: Value) -> Value {
        json!({"project": "shop", "prompt": "support bot", "drift_event_id": 7, "version": "a", "kind": kind,
            "score": score, "threshold": threshold, "window_size": 20, "sample_id": 99, "switched_to": "b",
            "detected_at": "2024-05-01T12:00:00Z", "explanation": explanation})
    }

    /// Walks the whole message generically and checks every Block Kit limit on each typed object it meets,
    /// plus, on every string, that nothing can ping or link and that no escape entity was split by a cut.
    fn assert_within_block_kit_limits(msg: &Value) {
        let len = |v: &Value| v.as_str().map(|s| s.chars().count()).expect("text must be a string");
        assert!((1..=3000).contains(&len(&msg["text"])));
        assert!(msg["blocks"].as_array().expect("blocks").len() <= 50);
        walk(msg, &mut |v| match (v.get("type").and_then(Value::as_str), v.as_str()) {
            (Some("header"), _) => assert!((1..=150).contains(&len(&v["text"]["text"]))),
            (Some("section"), _) => {
                v.get("text").into_iter().for_each(|t| assert!((1..=3000).contains(&len(&t["text"]))));
                let fields = v.get("fields").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                assert!(fields.len() <= 10);
                fields.iter().for_each(|f| assert!((1..=2000).contains(&len(&f["text"]))));
            }
            (Some("context"), _) => assert!((1..=10).contains(&v["elements"].as_array().expect("elements").len())),
            (Some("button"), _) => assert!(len(&v["text"]["text"]) <= 75 && len(&v["url"]) <= 3000),
            (_, Some(s)) => {
                assert!(!s.contains("<!") && !s.contains("<@") && !s.contains("<http://x"), "unescaped: {s}");
                for (i, _) in s.match_indices('&') {
                    assert!(["&amp;", "&lt;", "&gt;"].iter().any(|e| s[i..].starts_with(e)), "split entity: {s}");
                }
            }
            _ => {}
        });
    }

    fn walk(v: &Value, check: &mut dyn FnMut(&Value)) {
        check(v);
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, check)),
            Value::Object(map) => map.values().for_each(|i| walk(i, check)),
            _ => {}
        }
    }

    const BASE: &str = "https://db.example/";

    #[test]
    fn drift_detected_semantic() {
        let term = |t: &str| json!({"term": t, "baseline_share": 0.1, "recent_share": 0.4});
        let expl = json!({"kind": "semantic", "content_captured": true, "closest_baseline": [],
            "farthest_recent": [{"sample_id": 1, "text": "Your refund\nis on its way"}, {"sample_id": 2}],
            "terms_rose": [term("refund"), term("order")], "terms_fell": [term("photosynthesis")]});
        let (msg, text) = render("drift.detected", detected("semantic", 0.4123, 0.7, expl), Some(BASE));
        assert_eq!(header(&msg), "Drift detected: support bot");
        for part in ["0.412 (threshold 0.700)", "a → b", "20 samples", "> Your refund is on its way", "sample #2 ("] {
            assert!(text.contains(part), "missing {part}");
        }
        assert!(text.contains("drift event #7") && text.contains("sample #99"));
        assert!(text.contains("rose: refund, order · fell: photosynthesis"));
        let link = "https://db.example/ui/prompts/support%20bot";
        assert_eq!(msg["blocks"][4]["elements"][0]["url"], link);
        assert_eq!(msg["text"], format!("Drift detected: support bot <{link}|View prompt>"));
    }

    #[test]
    fn drift_detected_length() {
        let stats = |p: f64| json!({"samples": 200, "p10": p, "p25": p, "p50": p * 2.0, "p75": p, "p90": p * 4.0});
        let expl = json!({"kind": "length", "baseline_lengths": stats(100.0), "recent_lengths": stats(30.0)});
        let (msg, text) = render("drift.detected", detected("length", 2.3149, 1.5, expl), None);
        assert!(text.contains("+2.31 (threshold ±1.50)"));
        assert!(text.contains("baseline: p10 100 · p50 200 · p90 400 (n=200)\\nrecent: p10 30 · p50 60 · p90 120"));
        assert!(msg["blocks"].as_array().expect("blocks").iter().all(|b| b["type"] != "actions"));
    }

    #[test]
    fn drift_resolved_without_event_id() {
        let data = json!({"project": "shop", "prompt": "p", "version": "b", "kind": "semantic", "drift_event_id": null,
            "score": 0.2, "threshold": 0.7, "window_size": 20, "resolved_at": "2024-05-01T13:00:00Z"});
        let (msg, text) = render("drift.resolved", data, Some("https://db.example"));
        assert_eq!(header(&msg), "Drift resolved: p");
        assert!(text.contains("0.200 (threshold 0.700)") && !text.contains("drift event #"));
        assert!(!text.contains("switch"));
    }

    #[test]
    fn version_switched() {
        let data =
            json!({"project": "s", "prompt": "p", "from": "a", "to": "b", "reason": "drift", "drift_event_id": 3});
        let (msg, text) = render("prompt.version_switched", data, None);
        assert_eq!(header(&msg), "Prompt switched to version b: p");
        assert!(text.contains("a → b") && text.contains("drift event #3"));
    }

    #[test]
    fn baseline_ready() {
        let data = json!({"project": "shop", "prompt": "p", "version": "a", "sample_count": 200});
        let (msg, text) = render("baseline.ready", data, None);
        assert_eq!(header(&msg), "Baseline ready: p");
        assert!(text.contains("*Baseline samples*\\n200"));
    }

    #[test]
    fn test_event_has_message_and_no_button() {
        let data = json!({"project": "shop", "channel_id": 12, "message": "hello"});
        let (msg, text) = render("test", data, Some("https://x.y"));
        assert!(text.contains("*Channel*\\n12"));
        assert_eq!(header(&msg), "Test alert from DriftBalloon");
        assert_eq!(msg["blocks"][2]["text"]["text"], "hello");
        assert_eq!(msg["blocks"].as_array().map(Vec::len), Some(4));
        assert_eq!(msg["blocks"][3]["type"], "context");
    }

    #[test]
    fn unknown_and_malformed_events_do_not_panic() {
        assert_eq!(header(&render("weird", json!({}), None).0), "DriftBalloon alert: weird");
        let detected = json!({"type": "drift.detected", "data": {"score": "x", "explanation": {"kind": "length"}}});
        for event in [Value::Null, json!({"data": 5, "type": 1}), detected] {
            assert_within_block_kit_limits(&message(&event, Some("")));
            assert_within_block_kit_limits(&message(&event, Some("https://x")));
        }
    }

    #[test]
    fn hostile_input_stays_within_limits() {
        let nasty = "<!channel> <@U123> <http://x|y> *bold* & a\nb ";
        let long = format!("{nasty}{}{}", "🎈&".repeat(3000), "漢字<>".repeat(1000));
        let term = json!({"term": long, "baseline_share": 0.1, "recent_share": 0.2});
        let sample = json!({"sample_id": 1, "similarity": 0.1, "text": long});
        let (rose, fell) = (vec![term.clone(); 50], vec![term; 50]);
        let expl =
            json!({"kind": "semantic", "farthest_recent": vec![sample; 20], "terms_rose": rose, "terms_fell": fell});
        let mut data = json!({"project": long, "prompt": long, "version": long, "kind": long, "from": long, "to": long,
            "reason": long, "channel_id": long, "message": long, "switched_to": long, "explanation": expl});
        for kind in ["drift.detected", "drift.resolved", "prompt.version_switched", "baseline.ready", "test", &long] {
            for url in [None, Some("https://db.example/"), Some(&long[..])] {
                let msg = message(&json!({"type": kind, "timestamp": long, "data": data}), url);
                assert_within_block_kit_limits(&msg);
                assert!(kind == "test" || header(&msg).ends_with('…'));
            }
        }
        data["prompt"] = json!(nasty);
        let (_, text) = render("drift.detected", data, Some("https://db.example"));
        assert!(text.contains("&lt;!channel&gt; &lt;@U123&gt; &lt;http://x|y&gt; *bold* &amp; a b"));
    }

    #[test]
    fn escaping_and_cutting() {
        assert_eq!(escape("a & <b> \"c\" 'd' *e*"), "a &amp; &lt;b&gt; \"c\" 'd' *e*");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        assert_eq!(fit("&amp;&amp;&amp;", 9), "&amp;…");
        assert_eq!(fit("&lt;&gt;", 9), "&lt;&gt;");
        assert_eq!(clip("🎈漢字🎈", 3), "🎈漢…");
    }

    #[test]
    fn dashboard_link_is_percent_encoded() {
        let data = json!({"prompt": "a b/ü?&#x~._-Z9"});
        let url = dashboard_url("https://db.example/", &data);
        assert_eq!(url.as_deref(), Some("https://db.example/ui/prompts/a%20b%2F%C3%BC%3F%26%23x~._-Z9"));
        assert_eq!(percent_encode("🎈"), "%F0%9F%8E%88");
        assert_eq!(dashboard_url("/", &data), None);
        assert_eq!(dashboard_url("db.example", &data), None);
        assert_eq!(dashboard_url("https://x", &json!({"prompt": "a".repeat(3000)})), None);
    }
}
