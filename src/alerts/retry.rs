//! When a failed delivery is tried again: exponential backoff with jitter, or the receiver's
//! own `Retry-After` on 429/503.

use std::time::Duration;

use rand::Rng;

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(6 * 3600);
/// Each wait is this many times the one before.
const GROWTH: f64 = 3.0;
/// Waits vary by +-20% so receivers that come back are not hit by every sender at once.
const JITTER: f64 = 0.2;

/// The wait after the `attempts`-th failed attempt (1-based): `base`, 3x`base`, 9x`base`, ...
/// capped at [`MAX_DELAY`], with jitter. With the default 5 s base and 12 attempts the
/// schedule spans about 22 hours: 5 s, 15 s, 45 s, 2 min, 7 min, 20 min, 1 h, 3 h, then 6 h.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exponent = (attempts.max(1) - 1).min(40) as i32;
    let nominal = (base.as_secs_f64() * GROWTH.powi(exponent)).min(MAX_DELAY.as_secs_f64());
    let factor = rand::thread_rng().gen_range(1.0 - JITTER..=1.0 + JITTER);
    Duration::from_secs_f64(nominal * factor)
}

/// The schedule without jitter, for documentation and tests: the waits after each failure.
pub fn nominal_schedule(base: Duration, max_attempts: i64) -> Vec<Duration> {
    (1..max_attempts)
        .map(|n| {
            let exponent = (n - 1).min(40) as i32;
            Duration::from_secs_f64((base.as_secs_f64() * GROWTH.powi(exponent)).min(MAX_DELAY.as_secs_f64()))
        })
        .collect()
}

/// A `Retry-After` value: delay-seconds or an HTTP date. None when unreadable; at most a day.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?.timestamp_millis();
        Duration::from_millis(at.saturating_sub(now_ms).max(0) as u64)
    };
    Some(delay.min(Duration::from_secs(24 * 3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_spans_about_a_day() {
        let schedule = nominal_schedule(Duration::from_secs(5), 12);
        assert_eq!(schedule.len(), 11);
        assert_eq!(schedule[0], Duration::from_secs(5));
        assert_eq!(schedule[1], Duration::from_secs(15));
        assert_eq!(*schedule.last().unwrap(), MAX_DELAY);
        let total: Duration = schedule.iter().sum();
        assert!((20 * 3600..26 * 3600).contains(&total.as_secs()), "{total:?}");
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for attempts in 1..20 {
            let d = backoff(Duration::from_secs(5), attempts).as_secs_f64();
            let nominal = (5.0 * 3f64.powi(attempts as i32 - 1)).min(MAX_DELAY.as_secs_f64());
            assert!(d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9, "{attempts}: {d}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(Duration::ZERO));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT").unwrap().timestamp_millis();
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("999999999", 0), Some(Duration::from_secs(24 * 3600)));
    }
}
