//! The closed sets of values the server stores and serves: a prompt's version and status, a
//! sample's processing state, a span's status. Each is stored as its lowercase (or, for span
//! status, uppercase) name so both backends read it the same way, and served as that name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Defines a string-valued enum with its wire names, `as_str`, `Display` and `FromStr`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        // Written by hand: utoipa's derive does not see `serde(rename)` made by a macro.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let schema = utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]));
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(schema.build()))
            }
        }

        impl ToSchema for $name {}

        /// The first value listed (what a new row starts as).
        impl Default for $name {
            fn default() -> Self {
                $name::ALL[0]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownName { kind: stringify!($name), name: other.to_string() }),
                }
            }
        }
    };
}

/// A stored or sent name that is not one of an enum's values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{name}` is not a valid {kind}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

named_enum! {
    /// A prompt's version as the DriftBalloon SDK knows it: the primary `a` and the fallback `b`.
    PromptVersion { A = "a", B = "b" }
}

named_enum! {
    /// A baseline's state: `learning` until `min_baseline_samples` samples are in, then `ready`.
    BaselineStatus { Learning = "learning", Ready = "ready" }
}

named_enum! {
    /// `drifted` once a detector fired (until a person sets it back or resets the baseline).
    PromptStatus { Active = "active", Drifted = "drifted" }
}

named_enum! {
    /// A sample's way through the worker: `pending` (waiting for its embedding) -> `embedded`
    /// (waiting to be scored in arrival order) -> `done`; `failed` = could not be embedded;
    /// `skipped` = stored but left out of scoring while the worker was overloaded (never scored).
    SampleState { Pending = "pending", Embedded = "embedded", Done = "done", Failed = "failed", Skipped = "skipped" }
}

named_enum! {
    /// A span's status: Fallom sends `OK`/`ERROR`; `UNSET` is OpenTelemetry's default.
    SpanStatus { Ok = "OK", Error = "ERROR", Unset = "UNSET" }
}

named_enum! {
    /// The wire format a span arrived in.
    SpanSource { Fallom = "fallom", Otlp = "otlp" }
}

named_enum! {
    /// A model-config targeting condition's operator, as the Fallom SDK understands it.
    TargetingOperator {
        Eq = "eq", Neq = "neq", In = "in", Nin = "nin", Contains = "contains", StartsWith = "startsWith",
        EndsWith = "endsWith",
    }
}

named_enum! {
    /// What a drift event is about.
    DriftKind {
        Semantic = "semantic", Length = "length", Distribution = "distribution", Refusal = "refusal",
    }
}

named_enum! {
    /// Where an alert channel sends: any URL signed per Standard Webhooks, or a Slack
    /// incoming webhook.
    ChannelKind { Webhook = "webhook", Slack = "slack" }
}

named_enum! {
    /// What an alert is about; `test` is sent on request to check a channel.
    AlertEventType {
        DriftDetected = "drift.detected", DriftResolved = "drift.resolved",
        VersionSwitched = "prompt.version_switched", BaselineReady = "baseline.ready", Test = "test",
    }
}

named_enum! {
    /// What an API key may do. `admin`: everything. `ingest`: what SDKs and exporters need:
    /// send logs, traces, log records, sessions and metrics, and read their configs and prompts.
    KeyScope { Admin = "admin", Ingest = "ingest" }
}

named_enum! {
    /// An alert delivery: `pending` until it is `delivered`, or `failed` (gave up, or the
    /// receiver answered 410 Gone).
    DeliveryStatus { Pending = "pending", Delivered = "delivered", Failed = "failed" }
}

/// Milliseconds since the Unix epoch: the time every stored row carries.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for v in SampleState::ALL {
            assert_eq!(v.as_str().parse::<SampleState>().unwrap(), *v);
        }
        assert_eq!(serde_json::to_string(&SpanStatus::Error).unwrap(), "\"ERROR\"");
        assert!("c".parse::<PromptVersion>().is_err());
    }
}
