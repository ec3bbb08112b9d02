//! The drift engine: plain Rust, no I/O. One [`Baseline`] per prompt *and* prompt version
//! learns a reference from its first samples and then scores every new sample against it.
//!
//! Definitions (also in docs/drift.md):
//! - Each sample is an L2-normalised embedding `x` and a response length `L` (characters).
//!   Lengths are compared as `ln(1 + L)`, so "twice as long" is the same step at any size.
//! - Reference: the first `min_baseline_samples` samples (then `ready`), and after that every
//!   sample that has left the recent-window without drift being flagged, until it holds
//!   [`MAX_REFERENCE`] samples; then it is frozen. A sample that is in the window while drift is
//!   flagged is never absorbed.
//!   Absorbing also pauses while the recent window looks even mildly unusual (see
//!   [`ABSORB_T_ABOVE`], [`ABSORB_LENGTH_BELOW`]), so a slow drift is not learnt as normal.
//! - Calibration: `m_ref` is the mean cosine similarity of the reference samples to the centroid
//!   of the *other* reference samples, computed exactly from the reference sum `S` and size `n`
//!   (`sum_i x_i.S = |S|^2`, so `m_ref = ((|S|^2 - n) / n) / sqrt(|S|^2 (1 - 2/n) + 1)`);
//!   `s_ref` is the standard deviation of those leave-one-out similarities (exact for the first
//!   samples, then each absorbed sample's similarity to the centroid it joins).
//! - Window: the last [`WINDOW`] samples; each has its similarity to the reference centroid.
//! - Semantic score = `mean window similarity / m_ref` (1.0 = as close to the centre as the
//!   baseline itself, lower = further away). The semantic condition holds when the score is below
//!   `drift_threshold` *and* the drop is clear of the baseline's own noise,
//!   `(mean window similarity - m_ref) / (s_ref / sqrt(WINDOW)) <= SEMANTIC_T_LIMIT`; semantic
//!   drift fires when the condition has held for [`SEMANTIC_PERSISTENCE`] samples in a row.
//! - Length score = `sqrt(2) * Phi^-1(P(a recent response is longer than a reference one))`
//!   (ties count half; Phi^-1 the standard normal quantile). For log-normal lengths of equal
//!   spread this is exactly the shift of the window in baseline standard deviations of
//!   `ln(1 + L)`; unlike a mean it is not swayed by a few very long or short answers. Positive =
//!   longer, negative = shorter; length drift fires when `|score| > length_drift_threshold`.
//! - Distribution and refusal-rate drift: statistical tests with p-values, see
//!   [`distribution`] and [`rate`]; each fires when its evidence (`-log10 p`) reaches what the
//!   prompt's false-alarm budget lets a look spend ([`budget`]). They share the reference's
//!   absorbing rule, and absorbing also pauses while either shows even mild evidence
//!   ([`ABSORB_EVIDENCE_BELOW`]).
//! - An episode: a detector fires once, then stays quiet until its condition has been clear for
//!   a whole window; so one event per episode, never one per sample.

pub mod budget;
mod codec;
pub mod distribution;
pub mod explain;
pub mod rate;
pub mod refusal;
mod stats;

use serde::{Deserialize, Serialize};
use statrs::distribution::ContinuousCDF;
use std::collections::VecDeque;

pub use codec::DecodeError;
pub use stats::RunningStats;

/// Samples in the recent window the detectors look at.
pub const WINDOW: usize = 20;
/// The reference stops growing (and is frozen) at this many samples.
pub const MAX_REFERENCE: usize = 200;
/// How far (in standard errors of the window mean) the window's similarity must fall below
/// the baseline's before a low ratio counts as drift.
pub const SEMANTIC_T_LIMIT: f64 = -4.0;
/// Samples in a row the semantic condition must hold before drift fires: a single dip of a
/// diverse prompt is noise, a real change persists.
pub const SEMANTIC_PERSISTENCE: usize = 3;
/// The reference absorbs a sample only while the window's semantic statistic is above this...
pub const ABSORB_T_ABOVE: f64 = -1.0;
/// ...and the window's |length score| below this.
pub const ABSORB_LENGTH_BELOW: f64 = 1.0;
/// ...and the distribution and refusal tests' evidence below this (p above 1 %). Evidence at
/// or above it also keeps those tests' open episodes open.
pub const ABSORB_EVIDENCE_BELOW: f64 = 2.0;
/// Similarity spread floor, so a baseline of near-identical answers does not turn a tiny
/// wording change into drift.
const MIN_SIMILARITY_SD: f64 = 0.01;
/// P(longer) is clamped to [1 - this, this] so the length score stays finite (|score| <= 4.4).
const MAX_LENGTH_PROBABILITY: f64 = 0.999;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub min_baseline_samples: usize,
    pub drift_threshold: f64,
    pub length_drift_threshold: f64,
    /// The statistical detectors' false-alarm budget.
    pub budget: budget::Budget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineStatus {
    Learning,
    Ready,
}

impl BaselineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineStatus::Learning => "learning",
            BaselineStatus::Ready => "ready",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    Semantic,
    Length,
    Distribution,
    Refusal,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Semantic => "semantic",
            DriftKind::Length => "length",
            DriftKind::Distribution => "distribution",
            DriftKind::Refusal => "refusal",
        }
    }
}

/// A detector fired on this sample.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSignal {
    pub kind: DriftKind,
    pub score: f64,
    pub threshold: f64,
    pub window_size: usize,
}

/// What observing one sample produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Cosine similarity of the sample to the reference centroid (once ready).
    pub similarity: Option<f64>,
    /// Window scores (once the window is full).
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    /// Evidence (`-log10 p`) of the distribution test, on the samples where it looked.
    pub distribution_evidence: Option<f64>,
    /// Share of refusals among the recent samples (once ready).
    pub refusal_rate: Option<f64>,
    /// Detectors that opened an episode on this sample.
    pub signals: Vec<DriftSignal>,
    /// Detectors whose episode closed on this sample (condition clear for a whole window);
    /// `score` is the window's current score.
    pub resolved: Vec<DriftSignal>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WindowEntry {
    /// The sample's place in the version's stream (the distribution and rate tests know their
    /// samples by it).
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    refusal: bool,
    vector: Vec<f32>,
    similarity: f64,
    log_length: f64,
    /// Was in the window while drift was flagged: never absorbed into the reference.
    tainted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Episode {
    open: bool,
    /// Consecutive samples with the condition clear while open.
    clear_run: usize,
}

/// How one evaluation changed an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transition {
    Opened,
    Closed,
    Unchanged,
}

impl Episode {
    /// Feeds one evaluation of one sample.
    fn update(&mut self, firing: bool) -> Transition {
        self.update_by(firing, 1)
    }

    /// Feeds one evaluation that covers `samples` samples (a test that looks every few).
    fn update_by(&mut self, firing: bool, samples: usize) -> Transition {
        if firing {
            self.clear_run = 0;
            if !self.open {
                self.open = true;
                return Transition::Opened;
            }
        } else if self.open {
            self.clear_run += samples;
            if self.clear_run >= WINDOW {
                self.open = false;
                self.clear_run = 0;
                return Transition::Closed;
            }
        }
        Transition::Unchanged
    }
}

/// Everything the engine knows about one (prompt, version). Serialisable so the store can
/// keep it between batches and across restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    status: BaselineStatus,
    /// Samples kept while learning: (vector, ln-length).
    learning: Vec<(Vec<f32>, f64)>,
    /// Sum of the reference vectors (the centroid's direction).
    sum: Vec<f64>,
    reference_size: usize,
    similarity: RunningStats,
    /// ln-lengths of the reference samples (at most MAX_REFERENCE).
    log_lengths: Vec<f64>,
    window: VecDeque<WindowEntry>,
    semantic: Episode,
    length: Episode,
    /// Consecutive samples the semantic condition has held.
    semantic_run: usize,
    /// The window's latest statistics, which decide whether the reference may absorb.
    last_semantic_t: f64,
    last_length_score: f64,
    frozen: bool,
    /// Samples observed, learning ones included (the next sample's sequence number).
    #[serde(default)]
    seen: u64,
    #[serde(skip)]
    distribution: distribution::DistributionTest,
    #[serde(skip)]
    refusals: rate::RateTest,
    #[serde(default)]
    distribution_episode: Episode,
    #[serde(default)]
    refusal_episode: Episode,
}

/// One sample as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub struct SampleInput<'a> {
    pub vector: &'a [f32],
    pub response_chars: usize,
    /// Whether the recogniser ([`refusal::is_refusal`]) took the response for a refusal.
    pub refusal: bool,
}

impl Default for Baseline {
    fn default() -> Self {
        Self::new()
    }
}

fn standard_normal() -> statrs::distribution::Normal {
    statrs::distribution::Normal::new(0.0, 1.0).expect("valid parameters")
}

pub fn log_length(chars: usize) -> f64 {
    (1.0 + chars as f64).ln()
}

fn dot(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

impl Outcome {
    /// Adds another outcome's opened and closed episodes after this one's.
    fn append(&mut self, other: Outcome) {
        self.signals.extend(other.signals);
        self.resolved.extend(other.resolved);
    }

    fn record(&mut self, transition: Transition, signal: DriftSignal) {
        match transition {
            Transition::Opened => self.signals.push(signal),
            Transition::Closed => self.resolved.push(signal),
            Transition::Unchanged => {}
        }
    }
}

impl Baseline {
    pub fn new() -> Self {
        Baseline {
            status: BaselineStatus::Learning,
            learning: Vec::new(),
            sum: Vec::new(),
            reference_size: 0,
            similarity: RunningStats::default(),
            log_lengths: Vec::new(),
            window: VecDeque::new(),
            semantic: Episode::default(),
            length: Episode::default(),
            semantic_run: 0,
            last_semantic_t: 0.0,
            last_length_score: 0.0,
            frozen: false,
            seen: 0,
            distribution: distribution::DistributionTest::default(),
            refusals: rate::RateTest::default(),
            distribution_episode: Episode::default(),
            refusal_episode: Episode::default(),
        }
    }

    pub fn status(&self) -> BaselineStatus {
        self.status
    }

    /// Samples in the baseline: learnt so far while learning, the reference size once ready.
    pub fn sample_count(&self) -> usize {
        match self.status {
            BaselineStatus::Learning => self.learning.len(),
            BaselineStatus::Ready => self.reference_size,
        }
    }

    /// Cosine similarity of a unit vector to the reference centroid (None while learning).
    pub fn similarity_to_centroid(&self, vector: &[f32]) -> Option<f64> {
        let n = norm(&self.sum);
        (self.status == BaselineStatus::Ready && n > 0.0).then(|| dot(vector, &self.sum) / n)
    }

    /// Response lengths (characters) of the reference samples, for explanations.
    pub fn reference_lengths(&self) -> Vec<f64> {
        self.log_lengths.iter().map(|l| l.exp() - 1.0).collect()
    }

    /// Response lengths (characters) of the samples in the recent window, for explanations.
    pub fn window_lengths(&self) -> Vec<f64> {
        self.window.iter().map(|e| e.log_length.exp() - 1.0).collect()
    }

    pub fn drift_open(&self) -> bool {
        self.semantic.open || self.length.open || self.distribution_episode.open || self.refusal_episode.open
    }

    /// The distribution test's kernel, for explanations.
    pub fn distribution_kernel(&self) -> distribution::Kernel {
        self.distribution.kernel()
    }

    /// Share of refusals in the reference (None before there is one).
    pub fn reference_refusal_rate(&self) -> Option<f64> {
        self.refusals.reference_rate()
    }

    /// Share of refusals among the last `n` samples not in the reference.
    pub fn recent_refusal_rate(&self, n: usize) -> Option<f64> {
        self.refusals.recent_rate(n)
    }

    /// Observes one sample in arrival order (a response that is not a refusal).
    pub fn observe(&mut self, vector: &[f32], response_chars: usize, t: &Thresholds) -> Outcome {
        self.observe_sample(SampleInput { vector, response_chars, refusal: false }, t)
    }

    /// Observes one sample in arrival order.
    pub fn observe_sample(&mut self, sample: SampleInput<'_>, t: &Thresholds) -> Outcome {
        let SampleInput { vector, response_chars, refusal } = sample;
        let log_len = log_length(response_chars);
        let seq = self.seen;
        self.seen += 1;
        if self.status == BaselineStatus::Learning {
            // The warm-up samples are the statistical tests' first reference samples too.
            self.distribution.offer_reference(seq, vector);
            self.refusals.offer_reference(seq, refusal);
            self.learning.push((vector.to_vec(), log_len));
            if self.learning.len() >= t.min_baseline_samples.max(2) {
                self.become_ready();
            }
            return Outcome::default();
        }

        let centroid_norm = norm(&self.sum);
        let similarity = if centroid_norm > 0.0 { dot(vector, &self.sum) / centroid_norm } else { 0.0 };
        let mut outcome = Outcome { similarity: Some(similarity), ..Outcome::default() };

        self.window.push_back(WindowEntry {
            seq,
            refusal,
            vector: vector.to_vec(),
            similarity,
            log_length: log_len,
            tainted: false,
        });
        if self.window.len() > WINDOW {
            let oldest = self.window.pop_front().expect("window is not empty");
            let calm = self.last_semantic_t > ABSORB_T_ABOVE
                && self.last_length_score.abs() < ABSORB_LENGTH_BELOW
                && self.distribution.evidence < ABSORB_EVIDENCE_BELOW
                && self.refusals.evidence < ABSORB_EVIDENCE_BELOW;
            if !oldest.tainted && !self.drift_open() && calm {
                if !self.frozen {
                    self.absorb(&oldest.vector, oldest.log_length);
                }
                self.distribution.offer_reference(oldest.seq, &oldest.vector);
            }
            // The refusal reference waits only for its own test: a diverse stream's semantic
            // noise pauses absorbing often, and a reference of 100 instead of 200 halves the
            // test's power (BENCHMARKS.md, "Refusal windows"). Only the version's first samples can join it.
            if !self.refusal_episode.open && self.refusals.evidence < ABSORB_EVIDENCE_BELOW {
                self.refusals.offer_reference(oldest.seq, oldest.refusal);
            }
        }
        // The statistical tests' signals go after the semantic and length ones of the same
        // sample, so a change both kinds see switches versions with the long-standing event.
        let mut statistical = Outcome::default();
        self.observe_statistical(seq, vector, refusal, t, &mut statistical);
        outcome.distribution_evidence = statistical.distribution_evidence;
        outcome.refusal_rate = statistical.refusal_rate;
        if self.window.len() < WINDOW {
            outcome.append(statistical);
            self.taint_window_while_open();
            return outcome;
        }

        let (semantic_score, semantic_t) = self.semantic_scores();
        let length_score = self.length_score();
        outcome.semantic_score = Some(semantic_score);
        outcome.length_score = Some(length_score);

        self.last_semantic_t = semantic_t;
        self.last_length_score = length_score;

        let semantic_condition = semantic_score < t.drift_threshold && semantic_t <= SEMANTIC_T_LIMIT;
        self.semantic_run = if semantic_condition { self.semantic_run + 1 } else { 0 };
        let semantic_firing = self.semantic_run >= SEMANTIC_PERSISTENCE || (self.semantic.open && semantic_condition);
        let semantic = DriftSignal {
            kind: DriftKind::Semantic,
            score: semantic_score,
            threshold: t.drift_threshold,
            window_size: WINDOW,
        };
        outcome.record(self.semantic.update(semantic_firing), semantic);
        let length_firing = length_score.abs() > t.length_drift_threshold;
        let length = DriftSignal {
            kind: DriftKind::Length,
            score: length_score,
            threshold: t.length_drift_threshold,
            window_size: WINDOW,
        };
        outcome.record(self.length.update(length_firing), length);
        outcome.append(statistical);
        self.taint_window_while_open();
        outcome
    }

    fn taint_window_while_open(&mut self) {
        if self.drift_open() {
            for entry in self.window.iter_mut() {
                entry.tainted = true;
            }
        }
    }

    /// The distribution and refusal-rate tests: a look when one is due, and their episodes.
    fn observe_statistical(&mut self, seq: u64, vector: &[f32], refusal: bool, t: &Thresholds, outcome: &mut Outcome) {
        let distribution_threshold = t.budget.distribution_threshold(distribution::STEP);
        if let Some(look) = self.distribution.observe(seq, vector) {
            outcome.distribution_evidence = Some(look.evidence);
            let signal = DriftSignal {
                kind: DriftKind::Distribution,
                score: look.evidence,
                threshold: distribution_threshold,
                window_size: look.window_size,
            };
            let above = look.evidence >= distribution_threshold;
            let d = &mut self.distribution;
            d.above_run = if above { d.above_run + 1 } else { 0 };
            // Once open, the episode holds while the evidence stays even mildly high, so a
            // drift whose evidence hovers about the line is one episode, not several.
            let holds = look.evidence >= ABSORB_EVIDENCE_BELOW;
            let firing = d.above_run >= distribution::PERSISTENCE || (self.distribution_episode.open && holds);
            outcome.record(self.distribution_episode.update_by(firing, distribution::STEP), signal);
        }
        if let Some(look) = self.refusals.observe(seq, refusal, &t.budget) {
            let signal = DriftSignal {
                kind: DriftKind::Refusal,
                score: look.evidence,
                threshold: look.threshold,
                window_size: look.window_size,
            };
            let firing = look.opens || (self.refusal_episode.open && look.holds);
            outcome.record(self.refusal_episode.update_by(firing, rate::LOOK_EVERY as usize), signal);
        }
        outcome.refusal_rate = self.refusals.recent_rate(rate::SHOWN_WINDOW);
    }

    /// (ratio of the window's mean similarity to the reference's, t-like statistic).
    fn semantic_scores(&self) -> (f64, f64) {
        let window_mean = self.window.iter().map(|e| e.similarity).sum::<f64>() / self.window.len() as f64;
        let reference_mean = self.reference_mean_similarity();
        let sd = self.similarity.sd().max(MIN_SIMILARITY_SD);
        let ratio = if reference_mean > 1e-9 { window_mean / reference_mean } else { 1.0 };
        let t = (window_mean - reference_mean) / (sd / (self.window.len() as f64).sqrt());
        (ratio, t)
    }

    /// Mean leave-one-out similarity of the reference samples to the current centroid, exact
    /// from the sum alone: each `x_i` is unit length and `sum_i x_i.S = |S|^2`.
    fn reference_mean_similarity(&self) -> f64 {
        let n = self.reference_size as f64;
        let s2: f64 = self.sum.iter().map(|x| x * x).sum();
        let denominator = (s2 * (1.0 - 2.0 / n) + 1.0).max(1e-12).sqrt();
        ((s2 - n) / n) / denominator
    }

    fn length_score(&self) -> f64 {
        let mut longer = 0.0;
        for w in &self.window {
            for r in &self.log_lengths {
                longer += if w.log_length > *r {
                    1.0
                } else if w.log_length == *r {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let pairs = (self.window.len() * self.log_lengths.len()).max(1) as f64;
        let p = (longer / pairs).clamp(1.0 - MAX_LENGTH_PROBABILITY, MAX_LENGTH_PROBABILITY);
        std::f64::consts::SQRT_2 * standard_normal().inverse_cdf(p)
    }

    /// The learnt samples become the reference, calibrated by exact leave-one-out similarity.
    fn become_ready(&mut self) {
        let dim = self.learning[0].0.len();
        let mut sum = vec![0.0f64; dim];
        for (v, _) in &self.learning {
            for (s, x) in sum.iter_mut().zip(v) {
                *s += *x as f64;
            }
        }
        let mut others = vec![0.0f64; dim];
        for (v, log_len) in &self.learning {
            for ((o, s), x) in others.iter_mut().zip(&sum).zip(v) {
                *o = s - *x as f64;
            }
            let n = norm(&others);
            self.similarity.push(if n > 0.0 { dot(v, &others) / n } else { 0.0 });
            self.log_lengths.push(*log_len);
        }
        self.reference_size = self.learning.len();
        self.sum = sum;
        self.learning = Vec::new();
        self.status = BaselineStatus::Ready;
    }

    fn absorb(&mut self, vector: &[f32], log_len: f64) {
        let n = norm(&self.sum);
        self.similarity.push(if n > 0.0 { dot(vector, &self.sum) / n } else { 0.0 });
        self.log_lengths.push(log_len);
        for (s, x) in self.sum.iter_mut().zip(vector) {
            *s += *x as f64;
        }
        self.reference_size += 1;
        if self.reference_size >= MAX_REFERENCE {
            self.frozen = true;
        }
    }
}

#[cfg(test)]
mod tests;
