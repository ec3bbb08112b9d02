//! The drift engine: plain Rust, no I/O. One [`Baseline`] per prompt *and* prompt version
//! learns a reference from its first samples and then scores every new sample against it.
//!
//! Definitions (also in the README):
//! - Each sample is an L2-normalised embedding `x` and a response length `L` (characters).
//!   Lengths are compared as `ln(1 + L)`, so "twice as long" is the same step at any size.
//! - Reference: the first `min_baseline_samples` samples (then `ready`), and after that every
//!   sample that has left the recent-window without drift being flagged, until it holds
//!   [`MAX_REFERENCE`] samples; then it is frozen. A sample that is in the window while drift is
//!   flagged is never absorbed.
//! - Calibration: each reference sample's cosine similarity to the centroid of the *other*
//!   reference samples (exact leave-one-out for the first ones, then the centroid at the time it
//!   is absorbed); their mean `m_ref` and standard deviation `s_ref` describe how close this
//!   prompt's answers normally are to their own centre.
//! - Window: the last [`WINDOW`] samples; each has its similarity to the reference centroid.
//! - Semantic score = `mean window similarity / m_ref` (1.0 = as close as the baseline itself,
//!   lower = further away). Semantic drift fires when the score is below `drift_threshold` *and*
//!   the drop is clear of the baseline's own noise:
//!   `(mean window similarity - m_ref) / (s_ref / sqrt(WINDOW)) <= SEMANTIC_T_LIMIT`.
//! - Length score = `(mean window ln-length - reference mean ln-length) / reference sd`, a
//!   z-score in baseline standard deviations; length drift fires when `|score| >
//!   length_drift_threshold`.
//! - An episode: a detector fires once, then stays quiet until its condition has been clear for
//!   a whole window; so one event per episode, never one per sample.

mod stats;

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

pub use stats::RunningStats;

/// Samples in the recent window the detectors look at.
pub const WINDOW: usize = 20;
/// The reference stops growing (and is frozen) at this many samples.
pub const MAX_REFERENCE: usize = 200;
/// How far (in standard errors of the window mean) the window's similarity must fall below
/// the baseline's before a low ratio counts as drift.
pub const SEMANTIC_T_LIMIT: f64 = -4.0;
/// Length spread below this (in ln units, about 5 %) is treated as this, so a baseline of
/// identical lengths does not turn a one-character change into drift.
const MIN_LOG_LENGTH_SD: f64 = 0.05;
/// Similarity spread floor, for the same reason.
const MIN_SIMILARITY_SD: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub min_baseline_samples: usize,
    pub drift_threshold: f64,
    pub length_drift_threshold: f64,
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
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Semantic => "semantic",
            DriftKind::Length => "length",
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
    pub signals: Vec<DriftSignal>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WindowEntry {
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

impl Episode {
    /// Feeds one evaluation; true when this one opens a new episode.
    fn update(&mut self, firing: bool) -> bool {
        if firing {
            self.clear_run = 0;
            if !self.open {
                self.open = true;
                return true;
            }
        } else if self.open {
            self.clear_run += 1;
            if self.clear_run >= WINDOW {
                self.open = false;
                self.clear_run = 0;
            }
        }
        false
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
    log_length: RunningStats,
    window: VecDeque<WindowEntry>,
    semantic: Episode,
    length: Episode,
    frozen: bool,
}

impl Default for Baseline {
    fn default() -> Self {
        Self::new()
    }
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

impl Baseline {
    pub fn new() -> Self {
        Baseline {
            status: BaselineStatus::Learning,
            learning: Vec::new(),
            sum: Vec::new(),
            reference_size: 0,
            similarity: RunningStats::default(),
            log_length: RunningStats::default(),
            window: VecDeque::new(),
            semantic: Episode::default(),
            length: Episode::default(),
            frozen: false,
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

    pub fn drift_open(&self) -> bool {
        self.semantic.open || self.length.open
    }

    /// Observes one sample in arrival order.
    pub fn observe(&mut self, vector: &[f32], response_chars: usize, t: &Thresholds) -> Outcome {
        let log_len = log_length(response_chars);
        if self.status == BaselineStatus::Learning {
            self.learning.push((vector.to_vec(), log_len));
            if self.learning.len() >= t.min_baseline_samples.max(2) {
                self.become_ready();
            }
            return Outcome::default();
        }

        let centroid_norm = norm(&self.sum);
        let similarity = if centroid_norm > 0.0 { dot(vector, &self.sum) / centroid_norm } else { 0.0 };
        let mut outcome = Outcome { similarity: Some(similarity), ..Outcome::default() };

        self.window.push_back(WindowEntry { vector: vector.to_vec(), similarity, log_length: log_len, tainted: false });
        if self.window.len() > WINDOW {
            let oldest = self.window.pop_front().expect("window is not empty");
            if !oldest.tainted && !self.frozen && !self.drift_open() {
                self.absorb(&oldest.vector, oldest.log_length);
            }
        }
        if self.window.len() < WINDOW {
            return outcome;
        }

        let (semantic_score, semantic_t) = self.semantic_scores();
        let length_score = self.length_score();
        outcome.semantic_score = Some(semantic_score);
        outcome.length_score = Some(length_score);

        let semantic_firing = semantic_score < t.drift_threshold && semantic_t <= SEMANTIC_T_LIMIT;
        if self.semantic.update(semantic_firing) {
            outcome.signals.push(DriftSignal {
                kind: DriftKind::Semantic,
                score: semantic_score,
                threshold: t.drift_threshold,
                window_size: WINDOW,
            });
        }
        let length_firing = length_score.abs() > t.length_drift_threshold;
        if self.length.update(length_firing) {
            outcome.signals.push(DriftSignal {
                kind: DriftKind::Length,
                score: length_score,
                threshold: t.length_drift_threshold,
                window_size: WINDOW,
            });
        }
        if self.drift_open() {
            for entry in self.window.iter_mut() {
                entry.tainted = true;
            }
        }
        outcome
    }

    /// (ratio of the window's mean similarity to the reference's, t-like statistic).
    fn semantic_scores(&self) -> (f64, f64) {
        let window_mean = self.window.iter().map(|e| e.similarity).sum::<f64>() / self.window.len() as f64;
        let reference_mean = self.similarity.mean();
        let sd = self.similarity.sd().max(MIN_SIMILARITY_SD);
        let ratio = if reference_mean > 1e-9 { window_mean / reference_mean } else { 1.0 };
        let t = (window_mean - reference_mean) / (sd / (self.window.len() as f64).sqrt());
        (ratio, t)
    }

    fn length_score(&self) -> f64 {
        let window_mean = self.window.iter().map(|e| e.log_length).sum::<f64>() / self.window.len() as f64;
        (window_mean - self.log_length.mean()) / self.log_length.sd().max(MIN_LOG_LENGTH_SD)
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
            self.log_length.push(*log_len);
        }
        self.reference_size = self.learning.len();
        self.sum = sum;
        self.learning = Vec::new();
        self.status = BaselineStatus::Ready;
    }

    fn absorb(&mut self, vector: &[f32], log_len: f64) {
        let n = norm(&self.sum);
        self.similarity.push(if n > 0.0 { dot(vector, &self.sum) / n } else { 0.0 });
        self.log_length.push(log_len);
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
