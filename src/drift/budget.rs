//! The false-alarm budget: how often, at most, a prompt version's statistical detectors may
//! fire on a stable stream, and what that means for each look.
//!
//! A user sets `false_alarm_budget`: expected false alarms per [`PER_SAMPLES`] stable samples
//! of a prompt version (default [`DEFAULT_BUDGET`]). The distribution and the refusal-rate
//! tests share it equally. Each look spends a fixed part of its detector's share, sized so that
//! the looks of one sample add up to the sample's part:
//! - the distribution test looks once every `distribution::STEP` samples, so a look may spend
//!   `STEP` samples' worth;
//! - the refusal test has windows of several lengths, each with its share of the detector's
//!   part, tested every few samples; each test spends that many samples' worth of its share.
//!
//! A look fires when its p-value is at most what it may spend. By the union bound (Bonferroni
//! over detectors, windows and time), the expected number of false alarms over any stretch of
//! stable samples is then at most the budget for that stretch, however strongly consecutive
//! looks are correlated. The bound is conservative: overlapping windows make looks dependent,
//! so real rates are lower; the benchmark measures them.

/// The default budget: expected false alarms per [`PER_SAMPLES`] stable samples.
pub const DEFAULT_BUDGET: f64 = 1.0;
/// The budget's unit: samples.
pub const PER_SAMPLES: f64 = 100_000.0;
/// Accepted budgets (per [`PER_SAMPLES`]).
pub const MIN_BUDGET: f64 = 0.001;
pub const MAX_BUDGET: f64 = 10_000.0;
/// Detectors that share the budget: distribution and refusal rate.
const DETECTORS: f64 = 2.0;

/// Evidence (`-log10 p`) a look needs to fire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    per_sample: f64,
}

impl Budget {
    /// `per_100k` outside [`MIN_BUDGET`, `MAX_BUDGET`] (or not finite) is clamped into it.
    pub fn new(per_100k: f64) -> Budget {
        let clamped = if per_100k.is_finite() { per_100k.clamp(MIN_BUDGET, MAX_BUDGET) } else { DEFAULT_BUDGET };
        Budget { per_sample: clamped / PER_SAMPLES }
    }

    /// Threshold for a distribution look, made every `step` samples.
    pub fn distribution_threshold(&self, step: usize) -> f64 {
        -(self.per_sample / DETECTORS * step as f64).min(1.0).log10()
    }

    /// Threshold for a refusal window's test: the window has `share` of the detector's part and
    /// is tested every `every` samples.
    pub fn rate_threshold(&self, share: f64, every: u64) -> f64 {
        -(self.per_sample / DETECTORS * share * every as f64).min(1.0).log10()
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(DEFAULT_BUDGET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_spends_what_the_docs_say() {
        let b = Budget::default();
        // 1 per 100,000 samples, halved between two detectors, 5 samples per look: 2.5e-5.
        assert!((b.distribution_threshold(5) - 4.60206).abs() < 1e-4);
        // A window with 0.4 of the refusal part, tested every 20 samples: 1e-5 / 2 * 0.4 * 20.
        assert!((b.rate_threshold(0.4, 20) - 4.39794).abs() < 1e-4);
    }

    #[test]
    fn a_larger_budget_lowers_the_bar_within_limits() {
        assert!(Budget::new(100.0).distribution_threshold(5) < Budget::new(1.0).distribution_threshold(5));
        assert_eq!(Budget::new(1e9), Budget::new(MAX_BUDGET));
        assert_eq!(Budget::new(-1.0), Budget::new(MIN_BUDGET));
        assert_eq!(Budget::new(f64::NAN), Budget::default());
    }
}
