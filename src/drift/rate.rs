//! A rate test: has the share of responses with some property (a refusal) risen above the
//! reference's share?
//!
//! Definition (also in the README):
//! - Reference: counts `(k0 of n0)` over the warm-up samples and the samples the baseline
//!   absorbs, up to [`REFERENCE`], then frozen. Recent: the flags of the last up to [`LONGEST_WINDOW`]
//!   samples not counted in the reference (the two never share a sample).
//! - At every sample, for each window length in [`WINDOWS`] that the recent flags fill, a
//!   one-sided Fisher exact test of `k of m` recent against `k0 of n0`: the probability, when
//!   both come from one rate, that the window holds at least `k` of the `k0 + k` flagged
//!   samples (hypergeometric tail). It is exact whatever the reference rate, zero included,
//!   and accounts for the reference being a sample too.
//! - Evidence = `-log10` of the smallest p-value of the look; the budget divides by the number
//!   of windows tested (see `budget.rs`).
//! - Short windows catch a sudden jump quickly, the long one a creep of a few percent.

use statrs::function::gamma::ln_gamma;
use std::collections::VecDeque;

/// Window lengths tested at each sample.
pub const WINDOWS: [usize; 3] = [20, 50, 100];
pub const LONGEST_WINDOW: usize = 100;
/// Reference samples counted at most, as many as the semantic reference keeps: then it is
/// frozen, so a slow creep of refusals that starts later is never learnt as normal, and the
/// recent windows fill with samples it does not hold. Its size bounds the test's power: with
/// 100 samples at a 1 % refusal rate, 16 refusals in the last 100 give p = 8e-5, short of what
/// the default budget asks (1.7e-6); with 200, p = 8e-7 (BENCHMARKS.md).
pub const REFERENCE: u64 = 200;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateTest {
    /// Reference samples counted and how many were flagged.
    pub(super) reference_n: u64,
    pub(super) reference_k: u64,
    /// (sample sequence number, flagged), oldest first.
    pub(super) recent: VecDeque<(u64, bool)>,
    /// Evidence of the latest look.
    pub(super) evidence: f64,
}

/// What one look saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLook {
    pub evidence: f64,
    /// Recent rate over the window that gave the evidence, and that window's length.
    pub recent_rate: f64,
    pub window_size: usize,
    /// Windows that were tested (the budget's divisor).
    pub windows_tested: usize,
}

impl RateTest {
    pub fn reference_rate(&self) -> Option<f64> {
        (self.reference_n > 0).then(|| self.reference_k as f64 / self.reference_n as f64)
    }

    /// Share of flagged samples among the last `n` recent ones (fewer when fewer are there).
    pub fn recent_rate(&self, n: usize) -> Option<f64> {
        let take = self.recent.len().min(n);
        (take > 0).then(|| self.recent.iter().rev().take(take).filter(|(_, f)| *f).count() as f64 / take as f64)
    }

    /// Counts a warm-up or absorbed sample in the reference while it has room; a sample
    /// counted there leaves the recent flags. Returns whether it was counted.
    pub fn offer_reference(&mut self, seq: u64, flagged: bool) -> bool {
        if self.reference_n >= REFERENCE {
            return false;
        }
        self.reference_n += 1;
        self.reference_k += flagged as u64;
        self.recent.retain(|(s, _)| *s != seq);
        true
    }

    /// Records a new sample and tests every window it fills (none before the reference has
    /// as many samples as the shortest window).
    pub fn observe(&mut self, seq: u64, flagged: bool) -> Option<RateLook> {
        self.recent.push_back((seq, flagged));
        if self.recent.len() > LONGEST_WINDOW {
            self.recent.pop_front();
        }
        if self.reference_n < WINDOWS[0] as u64 {
            return None;
        }
        let mut best: Option<RateLook> = None;
        let mut tested = 0;
        for &m in WINDOWS.iter().filter(|&&m| m <= self.recent.len()) {
            tested += 1;
            let k = self.recent.iter().rev().take(m).filter(|(_, f)| *f).count() as u64;
            let p = fisher_upper_tail(k, m as u64, self.reference_k, self.reference_n);
            let evidence = if p > 0.0 { -p.log10() } else { 300.0 };
            if best.is_none_or(|b| evidence > b.evidence) {
                best = Some(RateLook { evidence, recent_rate: k as f64 / m as f64, window_size: m, windows_tested: 0 });
            }
        }
        let look = best.map(|b| RateLook { windows_tested: tested, ..b })?;
        self.evidence = look.evidence;
        Some(look)
    }
}

/// P(X >= k) for X hypergeometric: `m` draws (the window) from `m + n0` samples of which
/// `k + k0` are flagged. 1 when `k` is not above what the reference rate would give.
pub fn fisher_upper_tail(k: u64, m: u64, k0: u64, n0: u64) -> f64 {
    let total = m + n0;
    let flagged = k + k0;
    if k == 0 || (k as f64) / (m as f64) <= (k0 as f64) / (n0.max(1) as f64) {
        return 1.0;
    }
    let ln_choose =
        |n: u64, r: u64| ln_gamma(n as f64 + 1.0) - ln_gamma(r as f64 + 1.0) - ln_gamma((n - r) as f64 + 1.0);
    let ln_all = ln_choose(total, m);
    let mut p = 0.0;
    for x in k..=flagged.min(m) {
        // x flagged in the window, the rest of the flagged ones in the reference.
        if flagged - x > n0 {
            continue;
        }
        p += (ln_choose(flagged, x) + ln_choose(total - flagged, m - x) - ln_all).exp();
    }
    p.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fisher_tail_matches_hand_computed_values() {
        // 8 of 20 flagged against 0 of 100: C(20,8)/C(120,8).
        let expected = (0..8).map(|i| (20.0 - i as f64) / (120.0 - i as f64)).product::<f64>();
        let p = fisher_upper_tail(8, 20, 0, 100);
        assert!((p - expected).abs() / expected < 1e-9, "{p} vs {expected}");
        // Not above the reference rate: no evidence at all.
        assert_eq!(fisher_upper_tail(2, 20, 10, 100), 1.0);
        assert_eq!(fisher_upper_tail(0, 20, 0, 100), 1.0);
        // Every sample flagged on both sides.
        assert!(fisher_upper_tail(20, 20, 100, 100) >= 1.0 - 1e-9);
    }

    #[test]
    fn the_tail_is_a_probability_of_the_right_size() {
        // 1 flagged of 4 in total, 2 drawn: P(X >= 1) = 1 - C(3,2)/C(4,2) = 1/2.
        assert!((fisher_upper_tail(1, 2, 0, 2) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_reference_sample_leaves_the_recent_flags() {
        let mut test = RateTest::default();
        test.observe(1, true);
        test.observe(2, false);
        assert!(test.offer_reference(1, true));
        assert_eq!(test.recent.len(), 1);
        assert_eq!((test.reference_n, test.reference_k), (1, 1));
    }

    #[test]
    fn a_jump_in_the_rate_gives_evidence_a_steady_rate_none() {
        let mut test = RateTest::default();
        for seq in 0..200u64 {
            test.offer_reference(seq, seq % 10 == 0); // 10 %
        }
        let mut steady = 0.0f64;
        for seq in 200..400u64 {
            if let Some(look) = test.observe(seq, seq % 10 == 0) {
                steady = steady.max(look.evidence);
            }
        }
        assert!(steady < 2.0, "steady {steady}");
        let mut jump = 0.0f64;
        for seq in 400..440u64 {
            if let Some(look) = test.observe(seq, seq % 2 == 0) {
                jump = jump.max(look.evidence);
            }
        }
        assert!(jump > 6.0, "jump {jump}");
    }
}
