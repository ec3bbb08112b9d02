//! The alert dispatcher, run inside `serve`: claims due deliveries from the outbox, sends each
//! (signed webhook or Slack message), and records the outcome. It wakes when a commit queues an
//! alert and polls otherwise, so deliveries queued by another replica or left by a crash are
//! found too.
//!
//! Rules: a 2xx answer delivers; 410 Gone fails the delivery and disables the channel; any other
//! answer or a timeout is retried ([`super::retry`], `Retry-After` honoured on 429/503) until
//! the attempts run out, which fails the delivery and disables the channel; a channel failing
//! without a success for `disable_after` is disabled as well. A disabled channel's pending
//! deliveries wait and resume when it is enabled again. Redirects are not followed and
//! destinations are checked against [`super::address`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::address::{check_literal_host, GuardedResolver, Refused};
use super::{retry, signing, slack};
use crate::domain::ChannelKind;
use crate::store::{now_ms, AttemptRecord, AttemptResult, ClaimedDelivery, Store};

#[derive(Debug, Clone)]
pub struct DispatcherSettings {
    pub allow_private_networks: bool,
    pub timeout: Duration,
    pub retry_base: Duration,
    pub max_attempts: i64,
    pub disable_after: Duration,
    pub poll_interval: Duration,
    /// Deliveries attempted at once.
    pub concurrency: usize,
    /// The server's public base URL, for links in Slack messages.
    pub public_url: Option<String>,
}

/// Most characters of a receiver's answer kept as the delivery's error.
const ERROR_BODY_CHARS: usize = 300;

pub fn spawn(store: Store, settings: DispatcherSettings, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match http_client(&settings) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the alert HTTP client; alerts will not be sent");
                return;
            }
        };
        let settings = Arc::new(settings);
        // A claim outlives the attempt it is for, so no other replica takes the delivery
        // while this one is still waiting for the receiver.
        let lease_ms = (settings.timeout + Duration::from_secs(30)).as_millis() as i64;
        let token = claim_token();
        let wake = store.outbox_notify().clone();
        // Attempts run side by side, claimed fairly (projects in turn, at most two per channel:
        // see `Store::claim_due_deliveries`), so a slow receiver holds two slots at most.
        let mut in_flight = JoinSet::new();
        while !*shutdown.borrow() {
            let free = settings.concurrency.saturating_sub(in_flight.len());
            let claimed = if free > 0 { claim(&store, free, lease_ms, &token).await } else { Vec::new() };
            let claimed_any = !claimed.is_empty();
            for delivery in claimed {
                let (store, client, settings, token) = (store.clone(), client.clone(), settings.clone(), token.clone());
                in_flight.spawn(async move {
                    let record = attempt(&client, &settings, &delivery).await;
                    log_attempt(&delivery, &record);
                    if let Err(e) = store.finish_attempt(&delivery, &token, &record).await {
                        // The claim expires and the delivery is attempted again.
                        tracing::warn!(error = %e, delivery = delivery.id, "could not record an alert attempt");
                    }
                });
            }
            if claimed_any && in_flight.len() < settings.concurrency {
                continue; // there may be more due right now
            }
            tokio::select! {
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Attempts in flight finish (or time out); one cut short is claimed again later.
        while in_flight.join_next().await.is_some() {}
        tracing::info!("alert dispatcher stopped");
    })
}

/// Due deliveries, claimed for this process. A cheap read first, so an idle dispatcher does
/// not take SQLite's write lock on every poll.
async fn claim(store: &Store, limit: usize, lease_ms: i64, token: &str) -> Vec<ClaimedDelivery> {
    let claimed = match store.has_due_deliveries().await {
        Ok(false) => return Vec::new(),
        Ok(true) => store.claim_due_deliveries(limit as i64, lease_ms, token).await,
        Err(e) => Err(e),
    };
    claimed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not claim alert deliveries; retrying");
        Vec::new()
    })
}

fn claim_token() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn http_client(settings: &DispatcherSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        // A proxy would resolve names itself, out of the resolver's sight.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { allow_private: settings.allow_private_networks }))
        .user_agent(concat!("driftballoon/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The request body and headers for a channel.
fn request_for(delivery: &ClaimedDelivery, settings: &DispatcherSettings) -> (Vec<u8>, HeaderMap) {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match delivery.channel.kind {
        ChannelKind::Webhook => {
            let body = delivery.payload.clone().into_bytes();
            let timestamp = now_ms() / 1000;
            let secrets = delivery.channel.signing_secrets(now_ms());
            let signature = signing::signature_header(&secrets, &delivery.message_id, timestamp, &body);
            for (name, value) in [
                ("webhook-id", delivery.message_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            }
            (body, headers)
        }
        ChannelKind::Slack => {
            let event: serde_json::Value = serde_json::from_str(&delivery.payload).unwrap_or_default();
            let message = slack::message(&event, settings.public_url.as_deref());
            (message.to_string().into_bytes(), headers)
        }
    }
}

async fn attempt(client: &reqwest::Client, settings: &DispatcherSettings, delivery: &ClaimedDelivery) -> AttemptRecord {
    let started = Instant::now();
    let refused = |reason: String| AttemptRecord {
        http_status: None,
        error: Some(reason.clone()),
        latency_ms: started.elapsed().as_millis() as i64,
        result: AttemptResult::Failed,
        disable_channel: Some(format!("destination refused: {reason}")),
    };
    let url = match reqwest::Url::parse(&delivery.channel.url) {
        Ok(u) => u,
        Err(e) => return refused(format!("invalid URL: {e}")),
    };
    if let Err(Refused(reason)) = check_literal_host(&url, settings.allow_private_networks) {
        return refused(reason);
    }
    let (body, headers) = request_for(delivery, settings);
    let sent = client.post(url).headers(headers).body(body).send().await;
    let latency_ms = started.elapsed().as_millis() as i64;
    match sent {
        Ok(response) => {
            let status = response.status();
            let retry_after = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_string);
            let text = if status.is_success() { String::new() } else { error_answer_start(response).await };
            judge_answer(settings, delivery, status, retry_after.as_deref(), &text, latency_ms)
        }
        Err(e) => {
            if let Some(Refused(reason)) = find_refusal(&e) {
                return refused(reason);
            }
            let error = if e.is_timeout() {
                format!("no answer within {} ms", settings.timeout.as_millis())
            } else {
                error_chain(&e)
            };
            failure(settings, delivery, None, error, None, latency_ms)
        }
    }
}

/// Bytes of a receiver's error answer read at most: the record keeps only its first
/// [`ERROR_BODY_CHARS`] characters, and a receiver answering with a huge body must not cost
/// the server its size in memory (a 128 MiB answer once raised RSS by 332 MiB).
const ERROR_BODY_READ_BYTES: usize = 4096;

/// The start of an error answer, read chunk by chunk up to [`ERROR_BODY_READ_BYTES`]; the rest
/// is never read (the connection is dropped with the response).
async fn error_answer_start(mut response: reqwest::Response) -> String {
    let mut start = Vec::with_capacity(ERROR_BODY_READ_BYTES);
    while start.len() < ERROR_BODY_READ_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_READ_BYTES - start.len();
                start.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&start).into_owned()
}

fn judge_answer(
    settings: &DispatcherSettings,
    delivery: &ClaimedDelivery,
    status: StatusCode,
    retry_after: Option<&str>,
    body: &str,
    latency_ms: i64,
) -> AttemptRecord {
    let http_status = Some(status.as_u16() as i64);
    if status.is_success() {
        return AttemptRecord {
            http_status,
            error: None,
            latency_ms,
            result: AttemptResult::Delivered,
            disable_channel: None,
        };
    }
    let shown: String = body.chars().take(ERROR_BODY_CHARS).collect();
    let error = format!("HTTP {}{}{shown}", status.as_u16(), if shown.is_empty() { "" } else { ": " });
    if status == StatusCode::GONE {
        return AttemptRecord {
            http_status,
            error: Some(error),
            latency_ms,
            result: AttemptResult::Failed,
            disable_channel: Some("the receiver answered 410 Gone".to_string()),
        };
    }
    let honoured = matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
        .then(|| retry_after.and_then(|v| retry::parse_retry_after(v, now_ms())))
        .flatten();
    failure(settings, delivery, http_status, error, honoured, latency_ms)
}

/// A failed attempt: retried while attempts remain, else given up with the channel disabled.
fn failure(
    settings: &DispatcherSettings,
    delivery: &ClaimedDelivery,
    http_status: Option<i64>,
    error: String,
    retry_after: Option<Duration>,
    latency_ms: i64,
) -> AttemptRecord {
    let now = now_ms();
    if delivery.attempts >= settings.max_attempts {
        let reason = format!("gave up on a delivery after {} attempts; last error: {error}", delivery.attempts);
        return AttemptRecord {
            http_status,
            error: Some(error),
            latency_ms,
            result: AttemptResult::Failed,
            disable_channel: Some(reason),
        };
    }
    let wait = retry_after.unwrap_or_else(|| retry::backoff(settings.retry_base, delivery.attempts));
    let failing_for = delivery.channel.failing_since.map(|since| now - since).unwrap_or(0);
    let disable_channel = (failing_for >= settings.disable_after.as_millis() as i64)
        .then(|| format!("failing without a success for {} s; last error: {error}", failing_for / 1000));
    AttemptRecord {
        http_status,
        error: Some(error),
        latency_ms,
        result: AttemptResult::RetryAt(now + wait.as_millis() as i64),
        disable_channel,
    }
}

fn find_refusal(e: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = err.source();
    }
    None
}

/// An error with its causes ("cannot connect: ...: Connection refused"), without the URL that
/// reqwest's own message names: a Slack webhook URL is itself a secret.
fn error_chain(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "bad answer"
    } else {
        "request failed"
    };
    let mut parts = vec![kind.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn log_attempt(delivery: &ClaimedDelivery, record: &AttemptRecord) {
    let channel = delivery.channel.id;
    crate::observe::alert_delivery(match record.result {
        AttemptResult::Delivered => "delivered",
        AttemptResult::Failed => "failed",
        AttemptResult::RetryAt(_) => "retry",
    });
    match record.result {
        AttemptResult::Delivered => tracing::info!(
            channel,
            delivery = delivery.id,
            attempt = delivery.attempts,
            latency_ms = record.latency_ms,
            "alert delivered"
        ),
        _ => tracing::info!(
            channel,
            delivery = delivery.id,
            attempt = delivery.attempts,
            error = record.error.as_deref().unwrap_or(""),
            "alert attempt failed"
        ),
    }
    if let Some(reason) = &record.disable_channel {
        tracing::warn!(channel, %reason, "alert channel disabled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AlertChannelRow;

    fn settings() -> DispatcherSettings {
        DispatcherSettings {
            allow_private_networks: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            max_attempts: 12,
            disable_after: Duration::from_secs(86_400),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            public_url: None,
        }
    }

    fn delivery(attempts: i64, failing_since: Option<i64>) -> ClaimedDelivery {
        ClaimedDelivery {
            id: 1,
            message_id: "msg_1".into(),
            attempts,
            payload: "{}".into(),
            channel: AlertChannelRow {
                id: 1,
                project_id: 1,
                kind: ChannelKind::Webhook,
                url: "https://example.com/hook".into(),
                secret: Some(signing::new_secret()),
                previous_secret: None,
                previous_secret_expires_at: None,
                event_types: None,
                prompt_names: None,
                enabled: true,
                disabled_reason: None,
                failing_since,
                created_at: 0,
                updated_at: 0,
            },
        }
    }

    fn judge(status: u16, retry_after: Option<&str>, d: &ClaimedDelivery) -> AttemptRecord {
        judge_answer(&settings(), d, StatusCode::from_u16(status).unwrap(), retry_after, "nope", 12)
    }

    fn wait_ms(record: &AttemptRecord) -> i64 {
        match record.result {
            AttemptResult::RetryAt(at) => at - now_ms(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn success_delivers_and_gone_disables() {
        let ok = judge(204, None, &delivery(1, None));
        assert_eq!((ok.result, ok.error, ok.disable_channel), (AttemptResult::Delivered, None, None));
        let gone = judge(410, None, &delivery(1, None));
        assert_eq!(gone.result, AttemptResult::Failed);
        assert!(gone.disable_channel.unwrap().contains("410"));
        assert_eq!(gone.error.as_deref(), Some("HTTP 410: nope"));
    }

    #[test]
    fn failures_back_off_or_follow_retry_after() {
        let wait = wait_ms(&judge(500, Some("60"), &delivery(3, None)));
        // the third failure waits 45 s +-20%; Retry-After only counts on 429 and 503
        assert!((35_000..=55_000).contains(&wait), "{wait}");
        let wait = wait_ms(&judge(429, Some("60"), &delivery(3, None)));
        assert!((59_000..=60_000).contains(&wait), "{wait}");
        let wait = wait_ms(&judge(503, Some("soon"), &delivery(1, None)));
        assert!((3_900..=6_100).contains(&wait), "unreadable Retry-After falls back to backoff: {wait}");
    }

    #[test]
    fn a_channel_failing_too_long_or_out_of_attempts_is_disabled() {
        let last = judge(500, None, &delivery(12, None));
        assert_eq!(last.result, AttemptResult::Failed);
        assert!(last.disable_channel.unwrap().contains("after 12 attempts"));
        let recent = judge(500, None, &delivery(2, Some(now_ms() - 3_600_000)));
        assert!(recent.disable_channel.is_none());
        let stale = judge(500, None, &delivery(5, Some(now_ms() - 90_000_000)));
        // still retried (nothing is dropped), but the channel stops until a person enables it
        assert!(matches!(stale.result, AttemptResult::RetryAt(_)));
        assert!(stale.disable_channel.unwrap().contains("failing without a success"));
    }
}
