//! Scores one prompt's embedded samples in arrival order, inside one transaction holding the
//! prompt's row lock: engine state, sample scores, drift events and the prompt's status and
//! active version are committed together, so nothing is scored twice or lost on a crash.

use std::collections::HashMap;

use crate::domain::{BaselineStatus, DriftKind, PromptStatus, PromptVersion};
use crate::drift::{self, Baseline, Thresholds};
use crate::store::{BaselineUpdate, NewDriftEvent, Store, StoreResult};

/// Most samples scored in one transaction (a long backlog is scored in several).
const MAX_SAMPLES_PER_TX: i64 = 500;

struct Working {
    baseline: Baseline,
    model_id: Option<String>,
    semantic_score: Option<f64>,
    length_score: Option<f64>,
    touched: bool,
}

/// Returns how many samples were scored.
pub async fn score_prompt(store: &Store, prompt_id: i64) -> StoreResult<usize> {
    let Some(mut tx) = store.begin_scoring(prompt_id).await? else {
        return Ok(0);
    };
    let samples = tx.unscored_samples(MAX_SAMPLES_PER_TX).await?;
    if samples.first().is_none_or(|s| s.vector.is_none()) {
        return Ok(0); // the oldest still waits for its embedding; keep arrival order
    }
    let mut working: HashMap<PromptVersion, Working> = HashMap::new();
    for (version, stored) in tx.baselines().await? {
        let baseline = serde_json::from_str(&stored.state).unwrap_or_else(|e| {
            tracing::error!(prompt_id, %version, error = %e, "unreadable baseline state; learning again");
            Baseline::new()
        });
        working.insert(
            version,
            Working { baseline, model_id: stored.model_id, semantic_score: None, length_score: None, touched: false },
        );
    }

    let p = &tx.prompt;
    let thresholds = Thresholds {
        min_baseline_samples: p.min_baseline_samples.max(2) as usize,
        drift_threshold: p.drift_threshold,
        length_drift_threshold: p.length_drift_threshold,
    };
    let (auto_switch, original_status, original_active) = (p.auto_switch_enabled, p.status, p.active_prompt);
    let mut status = original_status;
    let mut active = original_active;
    let mut scored = 0;

    for sample in &samples {
        let Some(vector) = &sample.vector else { break };
        let w = working.entry(sample.version).or_insert_with(|| Working {
            baseline: Baseline::new(),
            model_id: sample.model_id.clone(),
            semantic_score: None,
            length_score: None,
            touched: false,
        });
        if w.model_id != sample.model_id {
            // Never mix vectors of two models in one baseline: a new model starts learning anew.
            tracing::warn!(prompt_id, version = %sample.version, old = ?w.model_id, new = ?sample.model_id,
                "embedding model changed; the baseline starts learning again");
            w.baseline = Baseline::new();
            w.model_id = sample.model_id.clone();
        }
        w.touched = true;
        let outcome = w.baseline.observe(vector, sample.response_length.max(0) as usize, &thresholds);
        if outcome.semantic_score.is_some() {
            w.semantic_score = outcome.semantic_score;
            w.length_score = outcome.length_score;
        }
        tx.finish_sample(sample.id, outcome.similarity, outcome.semantic_score, outcome.length_score).await?;
        for signal in &outcome.signals {
            status = PromptStatus::Drifted;
            // Switch only when the active version "a" is the one drifting.
            let switch = auto_switch && active == PromptVersion::A && sample.version == PromptVersion::A;
            if switch {
                active = PromptVersion::B;
            }
            tracing::info!(prompt_id, version = %sample.version, kind = signal.kind.as_str(), score = signal.score,
                threshold = signal.threshold, sample_id = sample.id, switched = switch, "drift detected");
            tx.insert_event(&NewDriftEvent {
                version: sample.version,
                kind: drift_kind(signal.kind),
                score: signal.score,
                threshold: signal.threshold,
                window_size: signal.window_size as i64,
                sample_id: sample.id,
                switched_to: switch.then_some(PromptVersion::B),
            })
            .await?;
        }
        scored += 1;
    }

    for (version, w) in working.iter().filter(|(_, w)| w.touched) {
        let state = serde_json::to_string(&w.baseline).expect("baseline state serialises");
        tx.save_baseline(&BaselineUpdate {
            version: *version,
            status: baseline_status(w.baseline.status()),
            sample_count: w.baseline.sample_count() as i64,
            model_id: w.model_id.as_deref(),
            semantic_score: w.semantic_score,
            length_score: w.length_score,
            state,
        })
        .await?;
    }
    if status != original_status || active != original_active {
        tx.update_prompt(status, active).await?;
    }
    tx.commit().await?;
    Ok(scored)
}

/// The engine's names for what it found, as the store records them (`drift/` imports nothing
/// from the crate, so the mapping lives here).
fn drift_kind(kind: drift::DriftKind) -> DriftKind {
    match kind {
        drift::DriftKind::Semantic => DriftKind::Semantic,
        drift::DriftKind::Length => DriftKind::Length,
    }
}

fn baseline_status(status: drift::BaselineStatus) -> BaselineStatus {
    match status {
        drift::BaselineStatus::Learning => BaselineStatus::Learning,
        drift::BaselineStatus::Ready => BaselineStatus::Ready,
    }
}
