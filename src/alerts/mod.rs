//! Drift alerts that reach people. Channels (signed webhooks, Slack) are managed over REST;
//! the scoring transaction queues events and their deliveries in an outbox (`store::alerts`);
//! the [`dispatcher`] sends them with retries.
//! - [`events`]: the payloads, one builder per event type;
//! - [`signing`]: Standard Webhooks secrets and signatures;
//! - [`slack`]: the Slack Block Kit message for an event;
//! - [`address`]: which destinations may be sent to (SSRF guard);
//! - [`retry`]: when a failed delivery is tried again.

pub mod address;
pub mod dispatcher;
pub mod events;
pub mod retry;
pub mod signing;
pub mod slack;
