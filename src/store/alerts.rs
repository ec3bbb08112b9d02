//! Alert channels and the alert outbox. An alert event and its deliveries (one per matching
//! channel) are inserted by [`queue_alert`] inside the transaction of whatever caused them, so
//! they commit or vanish together with it; the dispatcher then claims due deliveries
//! ([`Store::claim_due_deliveries`]) and records each attempt ([`Store::finish_attempt`]).

use std::collections::HashMap;

use rand::RngCore;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{get_bool, get_enum, now_ms, Store, StoreResult};
use crate::domain::{AlertEventType, ChannelKind, DeliveryStatus};

#[derive(Debug, Clone)]
pub struct AlertChannelRow {
    pub id: i64,
    pub project_id: i64,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    /// None = every event type.
    pub event_types: Option<Vec<AlertEventType>>,
    /// None = every prompt.
    pub prompt_names: Option<Vec<String>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const CHANNEL_COLUMNS: &str = "id, project_id, kind, url, secret, previous_secret, previous_secret_expires_at, \
     event_types, prompt_names, enabled, disabled_reason, failing_since, created_at, updated_at";

impl AlertChannelRow {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        let event_types: Option<String> = r.try_get("event_types")?;
        let prompt_names: Option<String> = r.try_get("prompt_names")?;
        Ok(AlertChannelRow {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            kind: get_enum(r, "kind")?,
            url: r.try_get("url")?,
            secret: r.try_get("secret")?,
            previous_secret: r.try_get("previous_secret")?,
            previous_secret_expires_at: r.try_get("previous_secret_expires_at")?,
            event_types: event_types.as_deref().map(json_column).transpose()?,
            prompt_names: prompt_names.as_deref().map(json_column).transpose()?,
            enabled: get_bool(r, "enabled")?,
            disabled_reason: r.try_get("disabled_reason")?,
            failing_since: r.try_get("failing_since")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// Whether this channel's filters let an event through (`prompt` is None for events that
    /// are not about a prompt).
    pub fn wants(&self, event_type: AlertEventType, prompt: Option<&str>) -> bool {
        let type_ok = self.event_types.as_ref().is_none_or(|types| types.contains(&event_type));
        let prompt_ok = match (&self.prompt_names, prompt) {
            (None, _) => true,
            (Some(names), Some(p)) => names.iter().any(|n| n == p),
            (Some(_), None) => true,
        };
        type_ok && prompt_ok
    }

    /// The secrets to sign with now: the current one, and the previous one during its grace
    /// period.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&str> {
        let previous = self.previous_secret.as_deref().filter(|_| self.previous_secret_expires_at > Some(now_ms));
        self.secret.as_deref().into_iter().chain(previous).collect()
    }
}

pub struct NewChannel {
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
    pub event_types: Option<Vec<AlertEventType>>,
    pub prompt_names: Option<Vec<String>>,
}

/// Changes to a channel; `None` keeps a value, `Some(None)` clears a filter.
#[derive(Default)]
pub struct ChannelPatch {
    pub url: Option<String>,
    pub event_types: Option<Option<Vec<AlertEventType>>>,
    pub prompt_names: Option<Option<Vec<String>>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub message_id: String,
    pub event_id: i64,
    pub event_type: AlertEventType,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

/// A delivery claimed for one attempt, with what is needed to make it.
pub struct ClaimedDelivery {
    pub id: i64,
    pub message_id: String,
    /// Attempts including this one.
    pub attempts: i64,
    pub payload: String,
    pub channel: AlertChannelRow,
}

/// What one attempt came to, as the dispatcher decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered,
    RetryAt(i64),
    /// Given up on this delivery.
    Failed,
}

pub struct AttemptRecord {
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub result: AttemptResult,
    /// Disable the channel, for this reason (its pending deliveries wait until it is enabled
    /// again).
    pub disable_channel: Option<String>,
}

/// A JSON column this server wrote; unreadable means a broken database.
fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| super::StoreError::Other(format!("unreadable alert channel filter: {e}")))
}

fn json_list<T: serde::Serialize>(list: &Option<Vec<T>>) -> Option<String> {
    list.as_ref().map(|l| serde_json::to_string(l).expect("a list of names serialises"))
}

/// A fresh Standard Webhooks message id (`webhook-id`), unique across databases.
fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("msg_{}", hex::encode(bytes))
}

/// The enabled channels of a project, read inside the caller's transaction.
pub async fn enabled_channels(conn: &mut AnyConnection, project_id: i64) -> StoreResult<Vec<AlertChannelRow>> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE project_id = $1 AND enabled = 1 ORDER BY id");
    let rows = sqlx::query(&sql).bind(project_id).fetch_all(&mut *conn).await?;
    rows.iter().map(AlertChannelRow::from_row).collect()
}

/// Writes an alert event and one pending delivery per channel, in the caller's transaction.
/// Returns the event id and the deliveries' message ids.
pub async fn queue_alert(
    conn: &mut AnyConnection,
    project_id: i64,
    event_type: AlertEventType,
    payload: &str,
    created_at: i64,
    channel_ids: &[i64],
) -> StoreResult<(i64, Vec<String>)> {
    let event_id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_events (project_id, type, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(project_id)
    .bind(event_type.as_str())
    .bind(payload)
    .bind(created_at)
    .fetch_one(&mut *conn)
    .await?;
    let mut message_ids = Vec::with_capacity(channel_ids.len());
    for channel_id in channel_ids {
        let message_id = new_message_id();
        sqlx::query(
            "INSERT INTO alert_deliveries (message_id, event_id, channel_id, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&message_id)
        .bind(event_id)
        .bind(channel_id)
        .bind(created_at)
        .execute(&mut *conn)
        .await?;
        message_ids.push(message_id);
    }
    Ok((event_id, message_ids))
}

impl Store {
    /// Woken after a commit that queued alert deliveries, so the dispatcher sends at once.
    pub fn outbox_notify(&self) -> &std::sync::Arc<tokio::sync::Notify> {
        &self.outbox
    }

    pub async fn create_alert_channel(&self, project_id: i64, c: &NewChannel) -> StoreResult<AlertChannelRow> {
        let now = now_ms();
        let sql = format!(
            "INSERT INTO alert_channels (project_id, kind, url, secret, event_types, prompt_names, created_at, \
                                         updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {CHANNEL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(project_id)
            .bind(c.kind.as_str())
            .bind(&c.url)
            .bind(&c.secret)
            .bind(json_list(&c.event_types))
            .bind(json_list(&c.prompt_names))
            .bind(now)
            .fetch_one(&self.write)
            .await?;
        AlertChannelRow::from_row(&row)
    }

    pub async fn alert_channels(&self, project_id: i64) -> StoreResult<Vec<AlertChannelRow>> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE project_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.read).await?;
        rows.iter().map(AlertChannelRow::from_row).collect()
    }

    pub async fn alert_channel(&self, project_id: i64, id: i64) -> StoreResult<Option<AlertChannelRow>> {
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE project_id = $1 AND id = $2");
        let row = sqlx::query(&sql).bind(project_id).bind(id).fetch_optional(&self.read).await?;
        row.as_ref().map(AlertChannelRow::from_row).transpose()
    }

    /// Applies a patch; enabling a channel also clears why it was disabled and its failure
    /// streak. None when the channel does not exist.
    pub async fn update_alert_channel(
        &self,
        project_id: i64,
        id: i64,
        patch: &ChannelPatch,
    ) -> StoreResult<Option<AlertChannelRow>> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {CHANNEL_COLUMNS} FROM alert_channels WHERE project_id = $1 AND id = $2");
        let Some(row) = sqlx::query(&sql).bind(project_id).bind(id).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let mut c = AlertChannelRow::from_row(&row)?;
        if let Some(url) = &patch.url {
            c.url = url.clone();
        }
        if let Some(types) = &patch.event_types {
            c.event_types = types.clone();
        }
        if let Some(names) = &patch.prompt_names {
            c.prompt_names = names.clone();
        }
        match patch.enabled {
            Some(true) if !c.enabled => {
                c.enabled = true;
                c.disabled_reason = None;
                c.failing_since = None;
            }
            Some(false) if c.enabled => {
                c.enabled = false;
                c.disabled_reason = Some("disabled over the API".to_string());
            }
            _ => {}
        }
        c.updated_at = now_ms();
        sqlx::query(
            "UPDATE alert_channels SET url = $1, event_types = $2, prompt_names = $3, enabled = $4, \
                    disabled_reason = $5, failing_since = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&c.url)
        .bind(json_list(&c.event_types))
        .bind(json_list(&c.prompt_names))
        .bind(c.enabled as i64)
        .bind(&c.disabled_reason)
        .bind(c.failing_since)
        .bind(c.updated_at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(c))
    }

    /// Deletes a channel with its delivery history (events stay). False when it did not exist.
    pub async fn delete_alert_channel(&self, project_id: i64, id: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let found = sqlx::query("SELECT id FROM alert_channels WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if found {
            sqlx::query("DELETE FROM alert_deliveries WHERE channel_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM alert_channels WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Replaces a webhook channel's secret; the old one stays valid (signed alongside) until
    /// `previous_valid_until`.
    pub async fn rotate_channel_secret(
        &self,
        project_id: i64,
        id: i64,
        secret: &str,
        previous_valid_until: i64,
    ) -> StoreResult<Option<AlertChannelRow>> {
        let sql = format!(
            "UPDATE alert_channels SET previous_secret = secret, previous_secret_expires_at = $1, secret = $2, \
                    updated_at = $3 WHERE project_id = $4 AND id = $5 RETURNING {CHANNEL_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(previous_valid_until)
            .bind(secret)
            .bind(now_ms())
            .bind(project_id)
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(AlertChannelRow::from_row).transpose()
    }

    /// Queues one event for one channel (the test event), bypassing the channel's filters.
    pub async fn queue_channel_alert(
        &self,
        project_id: i64,
        channel_id: i64,
        event_type: AlertEventType,
        payload: &str,
        created_at: i64,
    ) -> StoreResult<(i64, String)> {
        let mut tx = self.begin_write().await?;
        let (event_id, mut ids) =
            queue_alert(&mut tx, project_id, event_type, payload, created_at, &[channel_id]).await?;
        tx.commit().await?;
        self.outbox.notify_one();
        Ok((event_id, ids.pop().expect("one delivery per channel")))
    }

    /// A channel's deliveries, newest first, before delivery id `before` (0 = from the newest).
    pub async fn alert_deliveries(&self, channel_id: i64, limit: i64, before: i64) -> StoreResult<Vec<DeliveryRow>> {
        let rows = sqlx::query(
            "SELECT d.id, d.message_id, d.event_id, e.type, d.status, d.attempts, d.next_attempt_at, d.last_status, \
                    d.last_error, d.last_latency_ms, d.last_attempt_at, d.delivered_at, d.created_at \
             FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id \
             WHERE d.channel_id = $1 AND ($2 = 0 OR d.id < $2) ORDER BY d.id DESC LIMIT $3",
        )
        .bind(channel_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let status: DeliveryStatus = get_enum(r, "status")?;
                Ok(DeliveryRow {
                    id: r.try_get("id")?,
                    message_id: r.try_get("message_id")?,
                    event_id: r.try_get("event_id")?,
                    event_type: get_enum(r, "type")?,
                    status,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: match status {
                        DeliveryStatus::Pending => Some(r.try_get("next_attempt_at")?),
                        _ => None,
                    },
                    last_status: r.try_get("last_status")?,
                    last_error: r.try_get("last_error")?,
                    last_latency_ms: r.try_get("last_latency_ms")?,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                    delivered_at: r.try_get("delivered_at")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Whether any delivery of an enabled channel is due (a read, through the partial index).
    pub async fn has_due_deliveries(&self) -> StoreResult<bool> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT d.id FROM alert_deliveries d JOIN alert_channels c ON c.id = d.channel_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
               AND (d.claimed_until IS NULL OR d.claimed_until < $1) AND c.enabled = 1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }

    /// Claims up to `limit` due deliveries of enabled channels for `lease_ms`, under `token`,
    /// shared fairly: projects take turns for the slots, then the channels within a project,
    /// and no channel has more than [`IN_FLIGHT_PER_CHANNEL`] attempts claimed at once (by any
    /// replica). So one slow or flooded receiver holds at most that many of the dispatcher's
    /// slots, and another project's alert goes out at once; before, 16 deliveries to one slow
    /// receiver held all eight and another project's test alert waited 5.7 s. A claim is only
    /// taken when free or expired (checked again by the claiming UPDATE itself), so one attempt
    /// is made by one replica.
    pub async fn claim_due_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        token: &str,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        const DUE: &str = "d.status = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.claimed_until IS NULL OR d.claimed_until < $1)";
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let busy: HashMap<i64, i64> = sqlx::query(
            "SELECT channel_id, COUNT(*) AS n FROM alert_deliveries \
             WHERE status = 'pending' AND claimed_until >= $1 GROUP BY channel_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("channel_id")?, r.try_get("n")?)))
        .collect::<StoreResult<_>>()?;
        let due: Vec<DueChannel> = sqlx::query(&format!(
            "SELECT d.channel_id, c.project_id, MIN(d.next_attempt_at) AS due FROM alert_deliveries d \
             JOIN alert_channels c ON c.id = d.channel_id WHERE {DUE} AND c.enabled = 1 \
             GROUP BY d.channel_id, c.project_id ORDER BY due, d.channel_id"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            let channel_id = r.try_get("channel_id")?;
            let free = IN_FLIGHT_PER_CHANNEL - busy.get(&channel_id).copied().unwrap_or(0);
            Ok(DueChannel { channel_id, project_id: r.try_get("project_id")?, free })
        })
        .collect::<StoreResult<_>>()?;
        let mut ids = Vec::new();
        for (channel_id, n) in share_slots(&due, limit) {
            let picked: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT d.id FROM alert_deliveries d WHERE d.channel_id = $2 AND {DUE} \
                 ORDER BY d.next_attempt_at, d.id LIMIT $3"
            ))
            .bind(now)
            .bind(channel_id)
            .bind(n)
            .fetch_all(&mut *tx)
            .await?;
            for id in picked {
                // taken only if still free: another replica may have claimed it meanwhile
                let taken: Option<i64> = sqlx::query_scalar(
                    "UPDATE alert_deliveries SET claimed_until = $1, claim_token = $2, attempts = attempts + 1 \
                     WHERE id = $3 AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < $4) \
                     RETURNING id",
                )
                .bind(now + lease_ms)
                .bind(token)
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                ids.extend(taken);
            }
        }
        let mut claimed = Vec::with_capacity(ids.len());
        let detail = format!(
            "SELECT d.id AS delivery_id, d.message_id, d.attempts, e.payload, {} \
             FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id \
             JOIN alert_channels c ON c.id = d.channel_id WHERE d.id = $1",
            CHANNEL_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
        );
        for id in ids {
            let r = sqlx::query(&detail).bind(id).fetch_one(&mut *tx).await?;
            claimed.push(ClaimedDelivery {
                id: r.try_get("delivery_id")?,
                message_id: r.try_get("message_id")?,
                attempts: r.try_get("attempts")?,
                payload: r.try_get("payload")?,
                channel: AlertChannelRow::from_row(&r)?,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records an attempt made under `token`, and what it means for the channel. Nothing is
    /// written if the claim was lost (it expired and another replica took the delivery).
    pub async fn finish_attempt(
        &self,
        delivery: &ClaimedDelivery,
        token: &str,
        a: &AttemptRecord,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let (status, next_attempt_at, delivered_at) = match a.result {
            AttemptResult::Delivered => (DeliveryStatus::Delivered, now, Some(now)),
            AttemptResult::RetryAt(at) => (DeliveryStatus::Pending, at, None),
            AttemptResult::Failed => (DeliveryStatus::Failed, now, None),
        };
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE alert_deliveries SET status = $1, next_attempt_at = $2, delivered_at = $3, last_status = $4, \
                    last_error = $5, last_latency_ms = $6, last_attempt_at = $7, claimed_until = NULL, \
                    claim_token = NULL \
             WHERE id = $8 AND claim_token = $9",
        )
        .bind(status.as_str())
        .bind(next_attempt_at)
        .bind(delivered_at)
        .bind(a.http_status)
        .bind(&a.error)
        .bind(a.latency_ms)
        .bind(now)
        .bind(delivery.id)
        .bind(token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        let channel_id = delivery.channel.id;
        // The failure streak: cleared by a success, started by the first failure after one.
        let failed = a.result != AttemptResult::Delivered;
        sqlx::query(
            "UPDATE alert_channels SET failing_since = CASE WHEN $1 = 1 THEN COALESCE(failing_since, $2) END \
             WHERE id = $3",
        )
        .bind(failed as i64)
        .bind(now)
        .bind(channel_id)
        .execute(&mut *tx)
        .await?;
        if let Some(reason) = &a.disable_channel {
            sqlx::query(
                "UPDATE alert_channels SET enabled = 0, disabled_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND enabled = 1",
            )
            .bind(reason)
            .bind(now)
            .bind(channel_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Attempts claimed at once for one channel at most, across replicas.
pub const IN_FLIGHT_PER_CHANNEL: i64 = 2;

/// A channel with deliveries due, and how many more attempts it may have in flight.
#[derive(Debug, Clone, Copy)]
struct DueChannel {
    channel_id: i64,
    project_id: i64,
    free: i64,
}

/// Shares `limit` slots among channels with deliveries due (given oldest due first): one slot
/// at a time, projects in turn (in the order of their oldest due delivery), and within a
/// project its channels in turn, each up to its `free`. Returns (channel, slots) for the
/// channels that got any.
fn share_slots(due: &[DueChannel], limit: i64) -> Vec<(i64, i64)> {
    let mut projects: Vec<(i64, Vec<DueChannel>)> = Vec::new();
    for c in due.iter().filter(|c| c.free > 0) {
        match projects.iter_mut().find(|(p, _)| *p == c.project_id) {
            Some((_, channels)) => channels.push(*c),
            None => projects.push((c.project_id, vec![*c])),
        }
    }
    let mut given: Vec<(i64, i64)> = Vec::new();
    let mut turn_in_project = vec![0usize; projects.len()];
    let mut left = limit;
    loop {
        let mut gave_any = false;
        for (p, (_, channels)) in projects.iter_mut().enumerate() {
            if left == 0 {
                return given;
            }
            // the project's next channel that still has room
            for _ in 0..channels.len() {
                let at = turn_in_project[p] % channels.len();
                let c = &mut channels[at];
                turn_in_project[p] += 1;
                if c.free > 0 {
                    c.free -= 1;
                    left -= 1;
                    gave_any = true;
                    match given.iter_mut().find(|(id, _)| *id == c.channel_id) {
                        Some((_, n)) => *n += 1,
                        None => given.push((c.channel_id, 1)),
                    }
                    break;
                }
            }
        }
        if !gave_any {
            return given;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(channel_id: i64, project_id: i64, free: i64) -> DueChannel {
        DueChannel { channel_id, project_id, free }
    }

    #[test]
    fn projects_take_turns_and_a_channel_never_exceeds_its_room() {
        // project 1 has a backlog on channel 10 (room for 2) and on channel 11; project 2 one channel
        let channels = [due(10, 1, 2), due(11, 1, 2), due(20, 2, 2)];
        assert_eq!(share_slots(&channels, 1), [(10, 1)]);
        assert_eq!(share_slots(&channels, 2), [(10, 1), (20, 1)]);
        let mut all = share_slots(&channels, 8);
        all.sort();
        assert_eq!(all, [(10, 2), (11, 2), (20, 2)], "each up to its room, no more");
        // a channel already at its limit gets nothing; the others still do
        assert_eq!(share_slots(&[due(10, 1, 0), due(20, 2, 1)], 8), [(20, 1)]);
        assert!(share_slots(&[], 8).is_empty());
    }
}
