//! What changed, computed when a detector fires (so once per drift episode, never per sample)
//! inside the scoring transaction, from the engine's state and the prompt's stored samples.
//! - semantic: the recent responses farthest from the baseline centroid, the baseline responses
//!   closest to it, and the terms whose share of responses rose and fell most;
//! - length: baseline and recent length quantiles;
//! - distribution: the recent responses least like the reference and the reference responses
//!   least like the recent ones (each by its mean kernel similarity to the other side, the
//!   test's own kernel), and the terms whose share rose and fell most;
//! - refusal: the reference and recent refusal rates and the latest recent refusals.
//!
//! With the project's `capture_content` off, responses are quoted by id only and no terms are
//! listed (terms are fragments of the content).

use serde_json::{json, Value};

use crate::domain::PromptVersion;
use crate::drift::explain::{closest, farthest, length_quantiles, term_shifts, Candidate};
use crate::drift::refusal::is_refusal;
use crate::drift::{distribution, rate, Baseline, DriftKind, WINDOW};
use crate::store::{ExplainedSample, ExplainedSet, ScoringTx, StoreResult};

/// Responses quoted on each side.
const QUOTED: usize = 3;
/// Terms listed as rising and as falling.
const TERMS: usize = 5;
/// Characters of a quoted response.
const QUOTE_CHARS: usize = 280;
/// Baseline responses the closest ones and the term shares are taken from.
const BASELINE_SAMPLES: i64 = 200;

pub async fn explain(
    tx: &mut ScoringTx<'_>,
    baseline: &Baseline,
    version: PromptVersion,
    trigger_sample_id: i64,
    kind: DriftKind,
) -> StoreResult<Value> {
    match kind {
        DriftKind::Length => Ok(json!({
            "kind": "length",
            "baseline_lengths": length_quantiles(&baseline.reference_lengths()),
            "recent_lengths": length_quantiles(&baseline.window_lengths()),
        })),
        DriftKind::Semantic => semantic(tx, baseline, version, trigger_sample_id).await,
        DriftKind::Distribution => distribution(tx, baseline, version, trigger_sample_id).await,
        DriftKind::Refusal => refusal(tx, baseline, version, trigger_sample_id).await,
    }
}

async fn distribution(
    tx: &mut ScoringTx<'_>,
    baseline: &Baseline,
    version: PromptVersion,
    trigger_sample_id: i64,
) -> StoreResult<Value> {
    let with_text = tx.project().await?.capture_content;
    let recent =
        tx.samples_to_explain(ExplainedSet::Window, version, trigger_sample_id, distribution::WINDOW as i64).await?;
    let learnt = tx.samples_to_explain(ExplainedSet::Learnt, version, trigger_sample_id, BASELINE_SAMPLES).await?;
    let kernel = baseline.distribution_kernel();
    // Mean kernel similarity of each sample to the other side: low = unlike the other side.
    let likeness = |s: &ExplainedSample, others: &[ExplainedSample]| -> f64 {
        let Some(v) = s.vector.as_deref() else { return f64::NAN };
        let values: Vec<f64> =
            others.iter().filter_map(|o| o.vector.as_deref()).map(|o| kernel.similarity(v, o)).collect();
        if values.is_empty() {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    };
    let candidates = |side: &[ExplainedSample], other: &[ExplainedSample]| -> Vec<(i64, f64)> {
        side.iter().map(|s| (s.id, likeness(s, other))).collect()
    };
    let (recent_likeness, reference_likeness) = (candidates(&recent, &learnt), candidates(&learnt, &recent));
    let quote = |side: &[ExplainedSample], likeness: &[(i64, f64)]| {
        let c: Vec<Candidate> = side
            .iter()
            .zip(likeness)
            .map(|(s, (id, l))| Candidate { sample_id: *id, similarity: *l, text: &s.text })
            .collect();
        farthest(&c, QUOTED, with_text, QUOTE_CHARS)
    };
    let mut explanation = json!({
        "kind": "distribution",
        "content_captured": with_text,
        "least_like_reference": quote(&recent, &recent_likeness),
        "reference_least_like_recent": quote(&learnt, &reference_likeness),
    });
    if with_text {
        add_term_shifts(&mut explanation, &learnt, &recent);
    }
    Ok(explanation)
}

/// The terms whose share of responses rose and fell most from `baseline` to `recent`.
fn add_term_shifts(explanation: &mut Value, baseline: &[ExplainedSample], recent: &[ExplainedSample]) {
    let baseline_texts: Vec<&str> = baseline.iter().map(|s| s.text.as_str()).collect();
    let recent_texts: Vec<&str> = recent.iter().map(|s| s.text.as_str()).collect();
    let (rose, fell) = term_shifts(&baseline_texts, &recent_texts, TERMS);
    explanation["terms_rose"] = json!(rose);
    explanation["terms_fell"] = json!(fell);
}

async fn refusal(
    tx: &mut ScoringTx<'_>,
    baseline: &Baseline,
    version: PromptVersion,
    trigger_sample_id: i64,
) -> StoreResult<Value> {
    let with_text = tx.project().await?.capture_content;
    let recent =
        tx.samples_to_explain(ExplainedSet::Window, version, trigger_sample_id, rate::LONGEST_WINDOW as i64).await?;
    let examples: Vec<Value> = recent
        .iter()
        .filter(|s| is_refusal(&s.text))
        .take(QUOTED)
        .map(|s| {
            let mut quoted = json!({"sample_id": s.id});
            if with_text {
                quoted["text"] = json!(crate::drift::explain::cut(&s.text, QUOTE_CHARS));
            }
            quoted
        })
        .collect();
    let window = rate::SHOWN_WINDOW;
    Ok(json!({
        "kind": "refusal",
        "content_captured": with_text,
        "reference_rate": baseline.reference_refusal_rate(),
        "recent_rate": baseline.recent_refusal_rate(window),
        "recent_window": window,
        "recent_refusals": examples,
    }))
}

async fn semantic(
    tx: &mut ScoringTx<'_>,
    baseline: &Baseline,
    version: PromptVersion,
    trigger_sample_id: i64,
) -> StoreResult<Value> {
    let with_text = tx.project().await?.capture_content;
    let recent = tx.samples_to_explain(ExplainedSet::Window, version, trigger_sample_id, WINDOW as i64).await?;
    let learnt = tx.samples_to_explain(ExplainedSet::Learnt, version, trigger_sample_id, BASELINE_SAMPLES).await?;
    // Learning samples were scored before there was a centroid: measure them against it now.
    let learnt_similarity =
        |s: &ExplainedSample| s.vector.as_deref().and_then(|v| baseline.similarity_to_centroid(v)).unwrap_or(f64::NAN);
    let recent_candidates: Vec<Candidate> = recent
        .iter()
        .map(|s| Candidate { sample_id: s.id, similarity: s.similarity.unwrap_or(f64::NAN), text: &s.text })
        .collect();
    let baseline_candidates: Vec<Candidate> =
        learnt.iter().map(|s| Candidate { sample_id: s.id, similarity: learnt_similarity(s), text: &s.text }).collect();
    let mut explanation = json!({
        "kind": "semantic",
        "content_captured": with_text,
        "farthest_recent": farthest(&recent_candidates, QUOTED, with_text, QUOTE_CHARS),
        "closest_baseline": closest(&baseline_candidates, QUOTED, with_text, QUOTE_CHARS),
    });
    if with_text {
        add_term_shifts(&mut explanation, &learnt, &recent);
    }
    Ok(explanation)
}
