//! Scores one prompt's embedded samples in arrival order, under a savepoint of the worker's
//! transaction that holds the prompt's row lock: engine state, sample scores, drift events and
//! the prompt's status and active version are committed together, so nothing is scored twice
//! or lost on a crash.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::explain::explain;
use crate::alerts::events::{self, AlertEvent, DetectedDrift, PromptRef, ResolvedDrift};
use crate::domain::{BaselineStatus, DriftKind, PromptStatus, PromptVersion};
use crate::drift::budget::Budget;
use crate::drift::refusal::is_refusal;
use crate::drift::{self, Baseline, DriftSignal, SampleInput, Thresholds};
use crate::store::{
    now_ms, BaselineUpdate, FinishedSample, NewDriftEvent, ScoringGroup, ScoringTx, Store, StoreResult,
};

/// Most samples scored in one transaction (a long backlog is scored in several).
const MAX_SAMPLES_PER_TX: i64 = 500;

struct Working {
    baseline: Baseline,
    model_id: Option<String>,
    semantic_score: Option<f64>,
    length_score: Option<f64>,
    distribution_score: Option<f64>,
    refusal_rate: Option<f64>,
    touched: bool,
}

impl Working {
    fn new(baseline: Baseline, model_id: Option<String>) -> Working {
        Working {
            baseline,
            model_id,
            semantic_score: None,
            length_score: None,
            distribution_score: None,
            refusal_rate: None,
            touched: false,
        }
    }
}

/// Scores one prompt in a transaction of its own; returns how many samples were scored.
pub async fn score_prompt(store: &Store, prompt_id: i64) -> StoreResult<usize> {
    let mut group = store.begin_scoring_group().await?;
    let scored = score_prompt_in(&mut group, prompt_id).await?;
    group.commit().await?;
    Ok(scored)
}

/// Scores one prompt in `group`'s transaction, under a savepoint: on an error nothing of this
/// prompt is kept, and the group's other prompts are not affected. Returns how many samples
/// were scored.
pub async fn score_prompt_in(group: &mut ScoringGroup, prompt_id: i64) -> StoreResult<usize> {
    let started = Instant::now();
    // Time spent explaining drift, logged with the batch (see benches/alerts.rs).
    let mut explaining = Duration::ZERO;
    let Some(mut tx) = group.begin_prompt(prompt_id).await? else {
        return Ok(0);
    };
    let samples = tx.unscored_samples(MAX_SAMPLES_PER_TX).await?;
    if samples.first().is_none_or(|s| s.vector.is_none()) {
        return Ok(0); // the oldest still waits for its embedding; keep arrival order
    }
    let mut working: HashMap<PromptVersion, Working> = HashMap::new();
    for (version, stored) in tx.baselines().await? {
        let baseline = Baseline::from_stored(&stored.state).unwrap_or_else(|e| {
            tracing::error!(prompt_id, %version, error = %e, "unreadable baseline state; learning again");
            Baseline::new()
        });
        working.insert(version, Working::new(baseline, stored.model_id));
    }

    let p = &tx.prompt;
    let thresholds = Thresholds {
        min_baseline_samples: p.min_baseline_samples.max(2) as usize,
        drift_threshold: p.drift_threshold,
        length_drift_threshold: p.length_drift_threshold,
        budget: Budget::new(p.false_alarm_budget),
    };
    let (auto_switch, original_status, original_active) = (p.auto_switch_enabled, p.status, p.active_prompt);
    let prompt_name = p.name.clone();
    let mut status = original_status;
    let mut active = original_active;
    let mut scored = 0;

    for sample in &samples {
        let Some(vector) = &sample.vector else { break };
        let w = working.entry(sample.version).or_insert_with(|| Working::new(Baseline::new(), sample.model_id.clone()));
        if w.model_id != sample.model_id {
            // Never mix vectors of two models in one baseline: a new model starts learning anew.
            tracing::warn!(prompt_id, version = %sample.version, old = ?w.model_id, new = ?sample.model_id,
                "embedding model changed; the baseline starts learning again");
            w.baseline = Baseline::new();
            w.model_id = sample.model_id.clone();
        }
        w.touched = true;
        let was_learning = w.baseline.status() == drift::BaselineStatus::Learning;
        let refusal = is_refusal(&sample.response_text);
        let input = SampleInput { vector, response_chars: sample.response_length.max(0) as usize, refusal };
        let outcome = w.baseline.observe_sample(input, &thresholds);
        if outcome.semantic_score.is_some() {
            w.semantic_score = outcome.semantic_score;
            w.length_score = outcome.length_score;
        }
        w.distribution_score = outcome.distribution_evidence.or(w.distribution_score);
        w.refusal_rate = outcome.refusal_rate.or(w.refusal_rate);
        tx.finish_sample(FinishedSample {
            id: sample.id,
            similarity: outcome.similarity,
            semantic_score: outcome.semantic_score,
            length_score: outcome.length_score,
            distribution_score: outcome.distribution_evidence,
            refusal,
            refusal_rate: outcome.refusal_rate,
        });
        if was_learning && w.baseline.status() == drift::BaselineStatus::Ready {
            let count = w.baseline.sample_count() as i64;
            let project = tx.project().await?.name;
            let event = events::baseline_ready(
                &PromptRef { project: &project, prompt: &prompt_name },
                sample.version,
                count,
                now_ms(),
            );
            queue(&mut tx, &event).await?;
        }
        for signal in &outcome.signals {
            status = PromptStatus::Drifted;
            // Switch only when the active version "a" is the one drifting.
            let switch = auto_switch && active == PromptVersion::A && sample.version == PromptVersion::A;
            if switch {
                active = PromptVersion::B;
            }
            tracing::info!(prompt_id, version = %sample.version, kind = signal.kind.as_str(), score = signal.score,
                threshold = signal.threshold, sample_id = sample.id, switched = switch, "drift detected");
            let explain_started = Instant::now();
            let explanation = explain(&mut tx, &w.baseline, sample.version, sample.id, signal.kind).await?;
            explaining += explain_started.elapsed();
            let detected = DetectedDrift {
                drift_event_id: 0,
                version: sample.version,
                kind: drift_kind(signal.kind),
                score: signal.score,
                threshold: signal.threshold,
                window_size: signal.window_size as i64,
                sample_id: sample.id,
                switched_to: switch.then_some(PromptVersion::B),
                explanation: Some(&explanation),
            };
            let (id, at) = tx.insert_event(&new_drift_event(&detected)).await?;
            let project = tx.project().await?.name;
            let source = PromptRef { project: &project, prompt: &prompt_name };
            let event = events::drift_detected(&source, &DetectedDrift { drift_event_id: id, ..detected }, at);
            queue(&mut tx, &event).await?;
            if switch {
                let event = events::version_switched(&source, PromptVersion::A, PromptVersion::B, id, at);
                queue(&mut tx, &event).await?;
            }
        }
        for signal in &outcome.resolved {
            queue_resolved(&mut tx, sample.version, signal).await?;
        }
        scored += 1;
    }

    for (version, w) in working.iter().filter(|(_, w)| w.touched) {
        let state = w.baseline.to_bytes();
        tx.save_baseline(&BaselineUpdate {
            version: *version,
            status: baseline_status(w.baseline.status()),
            sample_count: w.baseline.sample_count() as i64,
            model_id: w.model_id.as_deref(),
            semantic_score: w.semantic_score,
            length_score: w.length_score,
            distribution_score: w.distribution_score,
            refusal_rate: w.refusal_rate,
            reference_refusal_rate: w.baseline.reference_refusal_rate(),
            state,
        })
        .await?;
    }
    if status != original_status || active != original_active {
        tx.update_prompt(status, active).await?;
    }
    tx.commit().await?;
    tracing::debug!(
        prompt_id,
        scored,
        elapsed_us = started.elapsed().as_micros() as u64,
        explain_us = explaining.as_micros() as u64,
        "scored a batch"
    );
    Ok(scored)
}

fn new_drift_event(d: &DetectedDrift) -> NewDriftEvent {
    NewDriftEvent {
        version: d.version,
        kind: d.kind,
        score: d.score,
        threshold: d.threshold,
        window_size: d.window_size,
        sample_id: d.sample_id,
        switched_to: d.switched_to,
        explanation: d.explanation.map(|e| e.to_string()),
    }
}

async fn queue(tx: &mut ScoringTx<'_>, event: &AlertEvent) -> StoreResult<()> {
    tx.queue_alert(event.event_type, &event.body(), event.created_at).await
}

/// A detector's episode closed: its condition has been clear for a whole window.
async fn queue_resolved(tx: &mut ScoringTx<'_>, version: PromptVersion, signal: &DriftSignal) -> StoreResult<()> {
    let kind = drift_kind(signal.kind);
    let resolved = ResolvedDrift {
        drift_event_id: tx.latest_drift_event_id(version, kind).await?,
        version,
        kind,
        score: signal.score,
        threshold: signal.threshold,
        window_size: signal.window_size as i64,
    };
    let (project, prompt) = (tx.project().await?.name, tx.prompt.name.clone());
    let event = events::drift_resolved(&PromptRef { project: &project, prompt: &prompt }, &resolved, now_ms());
    queue(tx, &event).await
}

/// The engine's names for what it found, as the store records them (`drift/` imports nothing
/// from the crate, so the mapping lives here).
fn drift_kind(kind: drift::DriftKind) -> DriftKind {
    match kind {
        drift::DriftKind::Semantic => DriftKind::Semantic,
        drift::DriftKind::Length => DriftKind::Length,
        drift::DriftKind::Distribution => DriftKind::Distribution,
        drift::DriftKind::Refusal => DriftKind::Refusal,
    }
}

fn baseline_status(status: drift::BaselineStatus) -> BaselineStatus {
    match status {
        drift::BaselineStatus::Learning => BaselineStatus::Learning,
        drift::BaselineStatus::Ready => BaselineStatus::Ready,
    }
}
