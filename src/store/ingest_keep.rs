//! Overload sampling's first stage: a per-prompt probability with which a new sample is queued
//! for scoring at ingest; the others are stored `skipped` straight away.
//!
//! Why: the sampler's passes (`worker::sampling`) pick a uniform subsample of each overloaded
//! prompt's new arrivals and mark the rest `skipped`, which rewrites every one of those rows on
//! the database's writer a second time. At tens of thousands of samples a second that rewrite
//! was a large share of the writer's work (about a fifth of OTLP span ingest on either backend).
//! With a coin at ingest, only about [`worker::sampling`]'s headroom times what the worker can
//! score reaches the passes, and they thin that as before.
//!
//! The coin is independent of content, and so are the passes, so the scored samples are still a
//! content-blind subsample of the stream. The probability lives in this process only: it is set
//! by this process's sampler from its worker's pace, and a replica without a worker queues every
//! sample (its samples are then thinned by whichever sampler sees them).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Keep probabilities below 1, by prompt id; a prompt not listed keeps every sample.
#[derive(Debug, Clone, Default)]
pub struct IngestKeep(Arc<RwLock<HashMap<i64, f64>>>);

impl IngestKeep {
    /// The probability that a new sample of the prompt is queued for scoring.
    pub fn probability(&self, prompt_id: i64) -> f64 {
        self.0.read().unwrap_or_else(PoisonError::into_inner).get(&prompt_id).copied().unwrap_or(1.0)
    }

    /// True when every prompt keeps every sample (the usual case: no overload).
    pub fn keeps_all(&self) -> bool {
        self.0.read().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Sets the prompt's probability; 1 (or more) removes it from the list.
    pub fn set(&self, prompt_id: i64, probability: f64) {
        let mut rates = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if probability >= 1.0 {
            rates.remove(&prompt_id);
        } else {
            rates.insert(prompt_id, probability.max(0.0));
        }
    }

    /// The prompts whose probability is below 1.
    pub fn lowered(&self) -> Vec<i64> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_keeps_everything_until_lowered_and_again_once_raised() {
        let keep = IngestKeep::default();
        assert_eq!(keep.probability(7), 1.0);
        assert!(keep.keeps_all());
        keep.set(7, 0.25);
        assert_eq!(keep.probability(7), 0.25);
        assert_eq!(keep.probability(8), 1.0);
        assert_eq!(keep.lowered(), vec![7]);
        keep.set(7, 1.0);
        assert!(keep.keeps_all());
    }
}
