//! A rate test: has the share of responses with some property (a refusal) risen above the
//! reference's share?
//!
//! Definition (also in docs/drift.md, "Refusal drift"):
//! - Reference: counts `(k0 of n0)` over the version's first [`REFERENCE`] samples (the
//!   warm-up, then each sample as it leaves the engine's recent window while this test is calm
//!   and no refusal episode is open), then frozen. A sample that arrives later never counts:
//!   counting lags the window, and a creep that starts just as the reference fills would
//!   otherwise seed it with refusals. Recent: the flags of the last up to [`LONGEST_WINDOW`]
//!   samples not counted in the reference (the two never share a sample).
//! - Each window of [`WINDOWS`] that the recent flags fill is tested every `every` samples of
//!   the version (its length / 5): a one-sided Fisher exact test of `k of m` recent against
//!   `k0 of n0`: the probability, when both come from one rate, that the window holds at least
//!   `k` of the `k0 + k` flagged samples (hypergeometric tail). It is exact whatever the
//!   reference rate, zero included, and accounts for the reference being a sample too.
//! - Evidence = `-log10 p`. Each window has its `share` of the detector's budget and spends
//!   `every` samples' worth of it per test (see `budget.rs`): testing a window of 100 at every
//!   sample would spend the budget on 100 looks that see nearly the same samples, so its line
//!   would sit 1.3 higher in evidence for a look at most 19 samples sooner.
//! - Short windows catch a sudden jump quickly, the long one a creep of a few percent.
//! - An episode opens on a window whose test was due; while it is open, any window with even
//!   mild evidence (p below 1 %, the engine's [`ABSORB_EVIDENCE_BELOW`](super::ABSORB_EVIDENCE_BELOW))
//!   keeps it open, so neither the long window's pauses between tests nor a creep's evidence
//!   hovering about the line can split it in several.

use super::budget::Budget;
use super::ABSORB_EVIDENCE_BELOW as HOLD_EVIDENCE;
use statrs::function::gamma::ln_gamma;
use std::collections::VecDeque;

/// One window of recent samples the test compares with the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateWindow {
    /// Recent samples in the window.
    pub length: usize,
    /// Samples between its tests: a multiple of [`LOOK_EVERY`].
    pub every: u64,
    /// Its part of the detector's budget (the parts add up to 1).
    pub share: f64,
}

/// The windows, shortest first. Chosen by simulating 20 % and 40 % refusal creeps against a
/// reference of 200 at reference rates of 1-2 % (BENCHMARKS.md, "Refusal windows"): the window of 40 catches a
/// 40 % creep within 40 samples, the window of 100 a 20 % creep within 100.
pub const WINDOWS: [RateWindow; 3] = [
    RateWindow { length: 20, every: 4, share: 0.3 },
    RateWindow { length: 40, every: 8, share: 0.3 },
    RateWindow { length: 100, every: 20, share: 0.4 },
];
pub const LONGEST_WINDOW: usize = 100;
/// Samples between looks (the shortest window's `every`).
pub const LOOK_EVERY: u64 = 4;
/// Recent samples over which the dashboard, the API and explanations show the recent rate.
pub const SHOWN_WINDOW: usize = 50;
/// Reference samples counted at most, as many as the semantic reference keeps: then it is
/// frozen, so a slow creep of refusals that starts later is never learnt as normal, and the
/// recent windows fill with samples it does not hold. Its size bounds the test's power: with
/// 100 samples at a 1 % refusal rate, 16 refusals in the last 100 give p = 8e-5; with 200,
/// p = 8e-7 (BENCHMARKS.md, "Refusal windows").
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

/// What one look saw, reported for the window closest to (or furthest above) its line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLook {
    pub evidence: f64,
    /// That window's line (evidence), from the budget.
    pub threshold: f64,
    /// Recent rate over that window, and its length.
    pub recent_rate: f64,
    pub window_size: usize,
    /// A window whose test was due reached its line: an episode may open.
    pub opens: bool,
    /// Some window shows even mild evidence (p below 1 %): an open episode stays open.
    pub holds: bool,
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

    /// Counts a warm-up or absorbed sample in the reference if it is one of the version's
    /// first [`REFERENCE`] samples (`seq` from 0); a sample counted there leaves the recent
    /// flags. Returns whether it was counted.
    pub fn offer_reference(&mut self, seq: u64, flagged: bool) -> bool {
        if self.reference_n >= REFERENCE || seq >= REFERENCE {
            return false;
        }
        self.reference_n += 1;
        self.reference_k += flagged as u64;
        self.recent.retain(|(s, _)| *s != seq);
        true
    }

    /// Records a new sample and, after every [`LOOK_EVERY`]-th sample of the version (`seq`
    /// counts from 0), tests the windows it fills (none before the reference has as many
    /// samples as the shortest window).
    pub fn observe(&mut self, seq: u64, flagged: bool, budget: &Budget) -> Option<RateLook> {
        self.recent.push_back((seq, flagged));
        if self.recent.len() > LONGEST_WINDOW {
            self.recent.pop_front();
        }
        if !(seq + 1).is_multiple_of(LOOK_EVERY) || self.reference_n < WINDOWS[0].length as u64 {
            return None;
        }
        let mut best: Option<RateLook> = None;
        let (mut opens, mut holds) = (false, false);
        for window in WINDOWS.iter().filter(|w| w.length <= self.recent.len()) {
            let m = window.length;
            let k = self.recent.iter().rev().take(m).filter(|(_, f)| *f).count() as u64;
            let p = fisher_upper_tail(k, m as u64, self.reference_k, self.reference_n);
            let evidence = if p > 0.0 { -p.log10() } else { 300.0 };
            let threshold = budget.rate_threshold(window.share, window.every);
            let above = evidence >= threshold;
            holds |= evidence >= HOLD_EVIDENCE;
            opens |= above && (seq + 1).is_multiple_of(window.every);
            if best.is_none_or(|b| evidence - threshold > b.evidence - b.threshold) {
                let recent_rate = k as f64 / m as f64;
                best = Some(RateLook { evidence, threshold, recent_rate, window_size: m, opens: false, holds: false });
            }
        }
        let look = best.map(|b| RateLook { opens, holds, ..b })?;
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
        test.observe(1, true, &Budget::default());
        test.observe(2, false, &Budget::default());
        assert!(test.offer_reference(1, true));
        assert_eq!(test.recent.len(), 1);
        assert_eq!((test.reference_n, test.reference_k), (1, 1));
    }

    #[test]
    fn only_the_first_samples_can_join_the_reference() {
        let mut test = RateTest::default();
        assert!(test.offer_reference(REFERENCE - 1, false));
        assert!(!test.offer_reference(REFERENCE, true));
        assert_eq!((test.reference_n, test.reference_k), (1, 0));
    }

    #[test]
    fn windows_share_the_whole_budget_and_look_on_the_common_step() {
        let total: f64 = WINDOWS.iter().map(|w| w.share).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(WINDOWS.iter().all(|w| w.every % LOOK_EVERY == 0 && w.length <= LONGEST_WINDOW));
    }

    #[test]
    fn a_look_comes_every_few_samples_and_only_due_windows_open() {
        let budget = Budget::default();
        let mut test = RateTest::default();
        for seq in 0..200u64 {
            test.offer_reference(seq, false);
        }
        let looks: Vec<u64> = (200..240u64).filter(|&seq| test.observe(seq, false, &budget).is_some()).collect();
        // The first look needs the window of 20 filled (seq 219, the 220th sample), then every
        // 4th sample.
        assert_eq!(looks, (219..240).step_by(LOOK_EVERY as usize).collect::<Vec<_>>());
        // All refusals from now on: the episode opens on a look (after every 4th sample).
        let mut first_open = None;
        for seq in 240..300u64 {
            if let Some(look) = test.observe(seq, true, &budget) {
                if look.opens && first_open.is_none() {
                    first_open = Some(seq);
                    assert!(look.holds);
                }
            }
        }
        assert!(first_open.is_some_and(|seq| (seq + 1) % 4 == 0), "{first_open:?}");
    }

    #[test]
    fn a_jump_in_the_rate_gives_evidence_a_steady_rate_none() {
        let budget = Budget::default();
        let mut test = RateTest::default();
        for seq in 0..200u64 {
            test.offer_reference(seq, seq % 10 == 0); // 10 %
        }
        let mut steady = 0.0f64;
        for seq in 200..400u64 {
            if let Some(look) = test.observe(seq, seq % 10 == 0, &budget) {
                steady = steady.max(look.evidence);
            }
        }
        assert!(steady < 2.0, "steady {steady}");
        let mut jump = 0.0f64;
        for seq in 400..440u64 {
            if let Some(look) = test.observe(seq, seq % 2 == 0, &budget) {
                jump = jump.max(look.evidence);
            }
        }
        assert!(jump > 6.0, "jump {jump}");
    }
}
