//! Times for test data, always relative to the moment the test runs. A calendar date written
//! into a test ages: one day it falls past a retention limit, out of a "last N days" window or
//! behind a cursor, and the test fails with no change to the code (issue 29). Tests take their
//! times from here; a test whose subject is a date itself marks the line `fixed-date:` with
//! the reason, and `scripts/check-test-dates.sh` (run by `make test`) refuses any other.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One recent time per test process (an hour ago, on a whole second), so a test can lay out
/// several spans at fixed offsets from it and compare them exactly.
pub fn base_ms() -> i64 {
    static BASE: OnceLock<i64> = OnceLock::new();
    *BASE.get_or_init(|| (now_ms() - HOUR_MS) / 1000 * 1000)
}

/// [`base_ms`] plus `offset_ms`, in Unix nanoseconds (OTLP protobuf's unit).
pub fn base_nanos(offset_ms: i64) -> u64 {
    (base_ms() + offset_ms) as u64 * 1_000_000
}

/// [`base_nanos`] as OTLP/JSON writes it: a decimal string.
pub fn base_nanos_text(offset_ms: i64) -> String {
    base_nanos(offset_ms).to_string()
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds (`...T10:00:00.000Z`), as the Fallom
/// SDK's `start_time` would carry it.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// [`base_ms`] plus `offset_ms` as RFC 3339.
pub fn base_iso(offset_ms: i64) -> String {
    iso(base_ms() + offset_ms)
}
