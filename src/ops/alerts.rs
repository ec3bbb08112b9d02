//! `/api/v1/alert-channels`: where drift alerts go. Webhook channels get a Standard Webhooks
//! signing secret, shown once at creation (and at each rotation); Slack channels take an
//! incoming-webhook URL, which is itself a secret, so neither appears in reads.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::prompts::Page;
use crate::alerts::{address, events, signing};
use crate::domain::{AlertEventType, ChannelKind, DeliveryStatus};
use crate::store::KeyOwner;
use crate::store::{now_ms, AlertChannelRow, ChannelPatch, DeliveryRow, NewChannel};
use crate::validate::limits::{
    DEFAULT_SECRET_GRACE_SECS, MAX_CHANNEL_PROMPTS, MAX_NAME_CHARS, MAX_SECRET_GRACE_SECS, MAX_URL_CHARS,
};
use crate::validate::{schemas, type_name, Fields, FromJson, Problems};
use crate::web::error::{ApiError, ApiResult, ProblemBody};

use crate::web::AppState;

/// An alert channel as reads show it (no secret; URLs with their secret parts masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertChannel {
    pub id: i64,
    pub kind: ChannelKind,
    /// The destination, with a Slack webhook's token and any query values masked.
    pub url: String,
    /// Event types sent (null = every type).
    pub events: Option<Vec<AlertEventType>>,
    /// Prompts alerted about (null = every prompt).
    pub prompts: Option<Vec<String>>,
    pub enabled: bool,
    /// Why the channel was disabled (by a person, a 410 answer, or failing for too long).
    pub disabled_reason: Option<String>,
    /// Epoch ms of the first failed attempt since the last success (null when healthy).
    pub failing_since: Option<i64>,
    /// Until when (epoch ms) the previous secret is still signed with, after a rotation.
    pub previous_secret_valid_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A channel just created or given a new secret: the secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertChannelWithSecret {
    #[serde(flatten)]
    pub channel: AlertChannel,
    /// Webhooks: the signing secret (`whsec_...`). Null for Slack.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertChannelList {
    pub channels: Vec<AlertChannel>,
}

// The schema's `max_items = 5` on `events` (utoipa takes literals only) is every event type.
const _: () = assert!(AlertEventType::ALL.len() == 5, "update max_items on the channels' events");

/// A new channel. (Read by [`FromJson`]; `Deserialize` only lets the schema say that unknown
/// fields are refused.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlertChannel {
    pub kind: ChannelKind,
    /// `http`/`https`. Loopback, link-local, private and cloud-metadata addresses are refused
    /// unless the server allows private networks.
    #[schema(schema_with = schemas::channel_url)]
    pub url: String,
    /// Event types to send (at most the 5 types there are); absent or null = every type.
    #[schema(nullable, min_items = 1, max_items = 5)]
    pub events: Option<Vec<AlertEventType>>,
    /// Prompt names to alert about; absent or null = every prompt.
    #[schema(schema_with = schemas::channel_prompts)]
    pub prompts: Option<Vec<String>>,
}

/// Changes to a channel; absent fields keep their value, `null` clears a filter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertChannelPatch {
    #[schema(schema_with = schemas::optional_channel_url)]
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<AlertEventType>>, nullable, min_items = 1, max_items = 5)]
    pub events: Option<Option<Vec<AlertEventType>>>,
    #[schema(schema_with = schemas::channel_prompts)]
    pub prompts: Option<Option<Vec<String>>>,
    #[schema(nullable = false)]
    pub enabled: Option<bool>,
}

/// A secret rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// Seconds the old secret stays valid: both signatures are sent until then.
    #[schema(schema_with = schemas::grace_period)]
    pub grace_period_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedTest {
    pub event_id: i64,
    /// The delivery's `webhook-id`.
    pub message_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDelivery {
    pub id: i64,
    /// The `webhook-id` header: the same on every attempt.
    pub message_id: String,
    pub event_id: i64,
    pub event_type: AlertEventType,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// HTTP status of the last attempt (null if there was no answer).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub last_attempt_at: Option<i64>,
    /// Epoch ms of the next attempt while pending.
    pub next_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDeliveryPage {
    pub deliveries: Vec<AlertDelivery>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

fn read_url(f: &Fields, required: bool, problems: &mut Problems) -> Option<String> {
    let raw = if required {
        f.required_str("url", MAX_URL_CHARS, problems)
    } else {
        f.optional_str("url", MAX_URL_CHARS, problems)
    }?;
    match address::parse_channel_url(raw.trim()) {
        Ok(url) => Some(url.to_string()),
        Err(message) => {
            problems.push(f.path("url"), message);
            None
        }
    }
}

/// A filter list: absent = None, null = Some(None) (clear), else the checked items.
fn read_list<T>(
    f: &Fields,
    name: &str,
    max_items: usize,
    problems: &mut Problems,
    item: impl Fn(&Value) -> Result<T, String>,
) -> Option<Option<Vec<T>>> {
    if f.object().get(name).is_some_and(Value::is_null) {
        return Some(None);
    }
    let items = f.optional_array(name, max_items, problems)?;
    if items.is_empty() {
        problems.push(f.path(name), "must not be empty; leave it out (or null) for no filter");
        return None;
    }
    let mut values = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        match item(v) {
            Ok(value) => values.push(value),
            Err(message) => problems.push(format!("{}[{i}]", f.path(name)), message),
        }
    }
    Some(Some(values))
}

fn event_type(v: &Value) -> Result<AlertEventType, String> {
    let known = || AlertEventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
    match v.as_str() {
        Some(s) => s.parse().map_err(|_| format!("is not an event type (known: {})", known())),
        None => Err(format!("must be an event type (a string), got {}", type_name(v))),
    }
}

fn prompt_name(v: &Value) -> Result<String, String> {
    match v.as_str() {
        Some(s) if s.trim().is_empty() => Err("must not be empty".to_string()),
        Some(s) if s.chars().count() > MAX_NAME_CHARS => Err(format!("is longer than {MAX_NAME_CHARS} characters")),
        Some(s) => Ok(s.to_string()),
        None => Err(format!("must be a prompt name (a string), got {}", type_name(v))),
    }
}

impl FromJson for NewAlertChannel {
    const WHAT: &'static str = "alert channel";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["kind", "url", "events", "prompts"], "an alert channel field", problems);
        let kind = match f.required_str("kind", 20, problems) {
            Some(k) => k.parse::<ChannelKind>().map_err(|_| problems.push("kind", "must be `webhook` or `slack`")).ok(),
            None => None,
        };
        let url = read_url(&f, true, problems);
        let events = read_list(&f, "events", AlertEventType::ALL.len(), problems, event_type);
        let prompts = read_list(&f, "prompts", MAX_CHANNEL_PROMPTS, problems, prompt_name);
        Some(NewAlertChannel { kind: kind?, url: url?, events: events.flatten(), prompts: prompts.flatten() })
    }
}

impl FromJson for AlertChannelPatch {
    const WHAT: &'static str = "alert channel change";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["url", "events", "prompts", "enabled"], "an alert channel field", problems);
        for name in ["url", "enabled"] {
            if f.object().get(name).is_some_and(Value::is_null) {
                problems.push(name, "must not be null");
            }
        }
        Some(AlertChannelPatch {
            url: read_url(&f, false, problems),
            events: read_list(&f, "events", AlertEventType::ALL.len(), problems, event_type),
            prompts: read_list(&f, "prompts", MAX_CHANNEL_PROMPTS, problems, prompt_name),
            enabled: f.optional_bool("enabled", problems),
        })
    }
}

impl FromJson for SecretRotation {
    const WHAT: &'static str = "secret rotation";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["grace_period_seconds"], "a rotation field", problems);
        Some(SecretRotation {
            grace_period_seconds: f.optional_int("grace_period_seconds", 0, MAX_SECRET_GRACE_SECS, problems),
        })
    }
}

/// Masks what in a URL may be a credential: a Slack webhook's path after `/services/`, and
/// the values of query parameters.
fn masked_url(kind: ChannelKind, raw: &str) -> String {
    let Ok(mut url) = reqwest::Url::parse(raw) else { return "***".to_string() };
    if kind == ChannelKind::Slack {
        let path = url.path().to_string();
        let kept = path.split_once("/services/").map(|(head, _)| format!("{head}/services/***"));
        url.set_path(&kept.unwrap_or_else(|| "/***".to_string()));
    }
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(k, _)| format!("{k}=***")).collect();
        url.set_query(Some(&names.join("&")));
    }
    url.to_string()
}

impl From<&AlertChannelRow> for AlertChannel {
    fn from(c: &AlertChannelRow) -> Self {
        AlertChannel {
            id: c.id,
            kind: c.kind,
            url: masked_url(c.kind, &c.url),
            events: c.event_types.clone(),
            prompts: c.prompt_names.clone(),
            enabled: c.enabled,
            disabled_reason: c.disabled_reason.clone(),
            failing_since: c.failing_since,
            previous_secret_valid_until: c.previous_secret_expires_at.filter(|t| *t > now_ms()),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl From<&DeliveryRow> for AlertDelivery {
    fn from(d: &DeliveryRow) -> Self {
        AlertDelivery {
            id: d.id,
            message_id: d.message_id.clone(),
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            last_latency_ms: d.last_latency_ms,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

/// Refuses, at once and with a 422, a URL whose host is a literal address the dispatcher
/// would refuse (names are checked when they are resolved, at each attempt).
fn check_destination(state: &AppState, url: &str) -> ApiResult<()> {
    let Ok(parsed) = reqwest::Url::parse(url) else { return Ok(()) };
    address::check_literal_host(&parsed, state.settings.alerts_allow_private_networks).map_err(|refused| {
        let message = format!(
            "{}; set DRIFTBALLOON_ALERTS_ALLOW_PRIVATE_NETWORKS=true to alert to hosts on your own network",
            refused.0
        );
        ApiError::validation(
            "alert channel",
            vec![ProblemBody { path: "url".into(), message, index: None, field: None }],
        )
    })
}

fn channel_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("no alert channel {id} in this project"))
}

async fn find_channel(state: &AppState, project_id: i64, id: i64) -> ApiResult<AlertChannelRow> {
    state.store.alert_channel(project_id, id).await?.ok_or_else(|| channel_not_found(id))
}

/// The project's alert channels.
pub async fn list(state: &AppState, owner: &KeyOwner) -> ApiResult<AlertChannelList> {
    let channels = state.store.alert_channels(owner.project_id).await?;
    Ok(AlertChannelList { channels: channels.iter().map(AlertChannel::from).collect() })
}

/// Creates a channel. A webhook channel's signing secret is in this answer only.
pub async fn create(
    state: &AppState,
    owner: &KeyOwner,
    new: NewAlertChannel,
) -> ApiResult<(StatusCode, AlertChannelWithSecret)> {
    check_destination(state, &new.url)?;
    let secret = (new.kind == ChannelKind::Webhook).then(signing::new_secret);
    let channel = NewChannel {
        kind: new.kind,
        url: new.url,
        secret: secret.clone(),
        event_types: new.events,
        prompt_names: new.prompts,
    };
    let row = state.store.create_alert_channel(owner.project_id, &channel).await?;
    tracing::info!(channel = row.id, kind = %row.kind, "alert channel created");
    Ok((StatusCode::CREATED, AlertChannelWithSecret { channel: (&row).into(), secret }))
}

/// One channel.
pub async fn detail(state: &AppState, owner: &KeyOwner, id: i64) -> ApiResult<AlertChannel> {
    Ok((&find_channel(state, owner.project_id, id).await?).into())
}

async fn apply_patch(state: &AppState, project_id: i64, id: i64, patch: &ChannelPatch) -> ApiResult<AlertChannel> {
    let row = state.store.update_alert_channel(project_id, id, patch).await?;
    let row = row.ok_or_else(|| channel_not_found(id))?;
    Ok((&row).into())
}

/// Changes a channel's URL, filters or enabled state. Enabling clears the disabled reason and
/// resumes its pending deliveries.
pub async fn update(state: &AppState, owner: &KeyOwner, id: i64, patch: AlertChannelPatch) -> ApiResult<AlertChannel> {
    if let Some(url) = &patch.url {
        check_destination(state, url)?;
    }
    let patch =
        ChannelPatch { url: patch.url, event_types: patch.events, prompt_names: patch.prompts, enabled: patch.enabled };
    apply_patch(state, owner.project_id, id, &patch).await
}

/// Enables a channel: clears why it was disabled and resumes its pending deliveries.
pub async fn enable(state: &AppState, owner: &KeyOwner, id: i64) -> ApiResult<AlertChannel> {
    let channel =
        apply_patch(state, owner.project_id, id, &ChannelPatch { enabled: Some(true), ..Default::default() }).await?;
    state.store.outbox_notify().notify_one();
    Ok(channel)
}

/// Disables a channel: nothing is sent to it (and nothing queued for it) until it is enabled.
pub async fn disable(state: &AppState, owner: &KeyOwner, id: i64) -> ApiResult<AlertChannel> {
    apply_patch(state, owner.project_id, id, &ChannelPatch { enabled: Some(false), ..Default::default() }).await
}

/// Deletes a channel and its delivery history.
pub async fn delete(state: &AppState, owner: &KeyOwner, id: i64) -> ApiResult<StatusCode> {
    if !state.store.delete_alert_channel(owner.project_id, id).await? {
        return Err(channel_not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a `test` event for this channel (whatever its filters).
pub async fn test(state: &AppState, owner: &KeyOwner, id: i64) -> ApiResult<(StatusCode, QueuedTest)> {
    let channel = find_channel(state, owner.project_id, id).await?;
    if !channel.enabled {
        let reason = channel.disabled_reason.unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "channel_disabled",
            format!("alert channel {id} is disabled ({reason}); enable it first"),
        ));
    }
    let (project, _) = state.store.project_settings(owner.project_id).await?;
    let event = events::test(&project, id, now_ms());
    let (event_id, message_id) = state
        .store
        .queue_channel_alert(owner.project_id, id, event.event_type, &event.body(), event.created_at)
        .await?;
    Ok((StatusCode::ACCEPTED, QueuedTest { event_id, message_id }))
}

/// Gives a webhook channel a new signing secret. The old one stays valid for the grace period
/// (default a day): every message carries both signatures until then.
pub async fn rotate_secret(
    state: &AppState,
    owner: &KeyOwner,
    id: i64,
    rotation: SecretRotation,
) -> ApiResult<AlertChannelWithSecret> {
    let channel = find_channel(state, owner.project_id, id).await?;
    if channel.kind != ChannelKind::Webhook {
        return Err(ApiError::new(StatusCode::CONFLICT, "no_secret", "only webhook channels have a signing secret"));
    }
    let grace_ms = rotation.grace_period_seconds.unwrap_or(DEFAULT_SECRET_GRACE_SECS) * 1000;
    let secret = signing::new_secret();
    let row = state.store.rotate_channel_secret(owner.project_id, id, &secret, now_ms() + grace_ms).await?;
    let row = row.ok_or_else(|| channel_not_found(id))?;
    tracing::info!(channel = id, "alert channel secret rotated");
    Ok(AlertChannelWithSecret { channel: (&row).into(), secret: Some(secret) })
}

/// A channel's deliveries, newest first: event, attempts, last answer, next attempt.
pub async fn deliveries(
    state: &AppState,
    owner: &KeyOwner,
    id: i64,
    Page { limit, before }: Page,
) -> ApiResult<AlertDeliveryPage> {
    find_channel(state, owner.project_id, id).await?;
    let rows = state.store.alert_deliveries(id, limit, before.unwrap_or(0)).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|d| d.id)).flatten();
    Ok(AlertDeliveryPage { deliveries: rows.iter().map(AlertDelivery::from).collect(), next_before })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems<T: FromJson>(body: Value) -> Vec<String> {
        match T::from_json(&body) {
            Ok(_) => vec![],
            Err(e) => e.problems.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn names_every_bad_field() {
        assert!(problems::<NewAlertChannel>(json!({"kind": "webhook", "url": "https://example.com/hook"})).is_empty());
        assert_eq!(
            problems::<NewAlertChannel>(
                json!({"kind": "pager", "url": "ftp://x", "events": ["drift.detected", "nope"], "prompts": [1]})
            ),
            ["kind", "url", "events[1]", "prompts[0]"]
        );
        assert_eq!(
            problems::<NewAlertChannel>(json!({"kind": "slack", "url": "https://h/x", "prompts": "bot"})),
            ["prompts"]
        );
        assert_eq!(
            problems::<NewAlertChannel>(json!({"kind": "slack", "url": "https://h/x", "events": []})),
            ["events"]
        );
        assert_eq!(problems::<AlertChannelPatch>(json!({"enabled": null, "x": 1})), ["x", "enabled"]);
        assert!(problems::<AlertChannelPatch>(json!({"events": null, "prompts": null})).is_empty());
        assert_eq!(problems::<SecretRotation>(json!({"grace_period_seconds": -1})), ["grace_period_seconds"]);
    }

    #[test]
    fn masks_credentials_in_urls() {
        assert_eq!(
            masked_url(ChannelKind::Slack, "https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/services/***"
        );
        assert_eq!(
            masked_url(ChannelKind::Webhook, "https://e.com/h?token=abc&x=1"),
            "https://e.com/h?token=***&x=***"
        );
        assert_eq!(masked_url(ChannelKind::Webhook, "https://e.com/h"), "https://e.com/h");
    }
}
