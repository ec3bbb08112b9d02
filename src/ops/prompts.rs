//! Prompts: list, detail, settings, baseline reset, drift events, samples.
//! Names in paths are percent-decoded by axum, so any Unicode name works (`/` as `%2F`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{BaselineStatus, DriftKind, PromptStatus, PromptVersion, SampleState};
use crate::drift::budget::{MAX_BUDGET, MIN_BUDGET};
use crate::store::KeyOwner;
use crate::store::{BaselineRow, DriftEventRow, PromptPatch, PromptRow, SampleCounts, SampleRow};
use crate::validate::limits::{MAX_BASELINE_SAMPLES, MAX_LENGTH_DRIFT_THRESHOLD, MIN_BASELINE_SAMPLES};
use crate::validate::{schemas, Fields, FromJson, Problems};
use crate::web::error::{ApiError, ApiResult};
use crate::web::query::{FromQuery, QueryFields};
use crate::web::AppState;

/// One version's baseline (`learning` with no samples before its first one).
#[derive(Debug, Serialize, ToSchema)]
pub struct BaselineView {
    pub baseline_status: BaselineStatus,
    pub baseline_sample_count: i64,
    /// The embedding model its vectors came from.
    pub model_id: Option<String>,
    /// The latest semantic score (1.0 = as close to the baseline as the baseline itself).
    pub semantic_score: Option<f64>,
    /// The latest length score (baseline standard deviations; + longer, - shorter).
    pub length_score: Option<f64>,
    /// The distribution test's latest evidence, `-log10 p` (higher = the recent responses are
    /// less likely to come from the reference's distribution).
    pub distribution_score: Option<f64>,
    /// Share of refusals among the latest 50 scored responses, and in the reference.
    pub refusal_rate: Option<f64>,
    pub reference_refusal_rate: Option<f64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionBaselines {
    pub a: BaselineView,
    pub b: BaselineView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatestScores {
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriftEventView {
    pub id: i64,
    pub version: PromptVersion,
    pub kind: DriftKind,
    pub score: f64,
    pub threshold: f64,
    pub window_size: i64,
    /// The sample whose arrival fired the detector.
    pub sample_id: i64,
    /// `b` when this event switched the active version.
    pub switched_to: Option<PromptVersion>,
    /// What changed, as the engine saw it when the detector fired. Semantic: the recent
    /// responses farthest from the baseline centroid (`farthest_recent`), the baseline responses
    /// closest to it (`closest_baseline`), and the terms whose share of responses rose and fell
    /// most (`terms_rose`, `terms_fell`); no text or terms when the project's
    /// `capture_content` is off. Length: `baseline_lengths` and `recent_lengths` quantiles.
    /// Distribution (`score` and `threshold` are evidence, `-log10 p`): the recent responses
    /// least like the reference (`least_like_reference`), the reference responses least like
    /// the recent ones (`reference_least_like_recent`), each with its mean kernel similarity
    /// to the other side, and `terms_rose` / `terms_fell`. Refusal (`score` and `threshold`
    /// are evidence too): `reference_rate`, `recent_rate` over `recent_window` responses, and
    /// `recent_refusals`. Null for events recorded before explanations existed.
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<Value>,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// A prompt with its config, both versions' baselines and its open drift.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptView {
    pub name: String,
    pub active_prompt: PromptVersion,
    pub status: PromptStatus,
    /// The active version's baseline.
    pub baseline_status: BaselineStatus,
    pub baseline_sample_count: i64,
    pub min_baseline_samples: i64,
    pub drift_threshold: f64,
    pub length_drift_threshold: f64,
    pub auto_switch_enabled: bool,
    /// Expected false alarms of the distribution and refusal detectors per 100,000 stable
    /// samples of a version.
    pub false_alarm_budget: f64,
    /// Share of the prompt's recent samples kept for scoring: 1 = every sample is scored;
    /// below 1 while the worker samples an overload (the others are stored as `skipped`).
    pub sampling_rate: f64,
    pub versions: VersionBaselines,
    pub latest_scores: LatestScores,
    /// The newest drift event while `status` is `drifted`, else null.
    pub open_drift: Option<DriftEventView>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromptList {
    pub prompts: Vec<PromptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SampleCountsView {
    pub total: i64,
    /// Waiting for their embedding or their score.
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    /// Stored but left out of scoring while the worker sampled an overload; never scored.
    pub skipped: i64,
}

/// The single-prompt view: the prompt and its sample counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptDetail {
    #[serde(flatten)]
    pub prompt: PromptView,
    pub samples: SampleCountsView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriftEventPage {
    /// Oldest first.
    pub events: Vec<DriftEventView>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SampleView {
    pub id: i64,
    pub prompt_version: PromptVersion,
    pub input_text: Option<String>,
    pub response_text: String,
    pub model: Option<String>,
    /// Characters.
    pub response_length: i64,
    pub received_at: i64,
    pub state: SampleState,
    /// Cosine similarity to the baseline centroid.
    pub similarity: Option<f64>,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    /// The distribution test's evidence, on the samples where it looked (every 5th).
    pub distribution_score: Option<f64>,
    /// Whether the refusal recogniser took the response for a refusal (null before scoring).
    pub refusal: Option<bool>,
    /// Share of refusals among the latest 50 scored responses when this one was scored.
    pub refusal_rate: Option<f64>,
    pub processed_at: Option<i64>,
    /// Why embedding failed, for `failed` samples.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SamplePage {
    /// Newest first.
    pub samples: Vec<SampleView>,
    pub next_before: Option<i64>,
}

/// Settings to change (at least one); absent ones keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct PromptSettingsPatch {
    /// Semantic drift fires below this ratio.
    #[schema(schema_with = schemas::ratio)]
    pub drift_threshold: Option<f64>,
    /// Length drift fires when |length score| exceeds this.
    #[schema(schema_with = schemas::length_threshold)]
    pub length_drift_threshold: Option<f64>,
    #[schema(schema_with = schemas::min_baseline_samples)]
    pub min_baseline_samples: Option<i64>,
    #[schema(nullable = false)]
    pub auto_switch_enabled: Option<bool>,
    /// Expected false alarms of the distribution and refusal detectors per 100,000 stable
    /// samples of a version (default 1).
    #[schema(schema_with = schemas::false_alarm_budget)]
    pub false_alarm_budget: Option<f64>,
    #[schema(nullable = false)]
    pub active_prompt: Option<PromptVersion>,
    #[schema(nullable = false)]
    pub status: Option<PromptStatus>,
}

const PATCH_FIELDS: &[&str] = &[
    "drift_threshold",
    "length_drift_threshold",
    "min_baseline_samples",
    "auto_switch_enabled",
    "false_alarm_budget",
    "active_prompt",
    "status",
];

/// One of an enum's names, or a problem listing them.
fn enum_field<T>(f: &Fields, name: &str, all: &[T], problems: &mut Problems) -> Option<T>
where
    T: std::str::FromStr + Copy + std::fmt::Display,
{
    let allowed: Vec<String> = all.iter().map(|v| format!("\"{v}\"")).collect();
    match f.get(name)? {
        Value::String(s) => {
            let parsed = s.parse().ok();
            if parsed.is_none() {
                problems.push(f.path(name), format!("must be {}", allowed.join(" or ")));
            }
            parsed
        }
        _ => {
            problems.push(f.path(name), format!("must be {}", allowed.join(" or ")));
            None
        }
    }
}

impl FromJson for PromptSettingsPatch {
    const WHAT: &'static str = "prompt settings";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(PATCH_FIELDS, "a setting", problems);
        if f.object().is_empty() {
            problems.push("body", format!("names no setting to change (known: {})", PATCH_FIELDS.join(", ")));
        }
        for (key, _) in f.object().iter().filter(|(k, v)| v.is_null() && PATCH_FIELDS.contains(&k.as_str())) {
            problems.push(key.clone(), "must not be null (leave a setting out to keep it)");
        }
        let length_drift_threshold =
            f.optional_number("length_drift_threshold", 0.0, MAX_LENGTH_DRIFT_THRESHOLD, problems);
        if length_drift_threshold == Some(0.0) {
            problems.push("length_drift_threshold", "must be above 0");
        }
        Some(PromptSettingsPatch {
            drift_threshold: f.optional_number("drift_threshold", 0.0, 1.0, problems),
            length_drift_threshold,
            min_baseline_samples: f.optional_int(
                "min_baseline_samples",
                MIN_BASELINE_SAMPLES,
                MAX_BASELINE_SAMPLES,
                problems,
            ),
            auto_switch_enabled: f.optional_bool("auto_switch_enabled", problems),
            false_alarm_budget: f.optional_number("false_alarm_budget", MIN_BUDGET, MAX_BUDGET, problems),
            active_prompt: enum_field(&f, "active_prompt", PromptVersion::ALL, problems),
            status: enum_field(&f, "status", PromptStatus::ALL, problems),
        })
    }
}

async fn find_prompt(state: &AppState, project_id: i64, name: &str) -> ApiResult<PromptRow> {
    state
        .store
        .prompt_by_name(project_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no prompt named `{name}` in this project")))
}

impl From<Option<&BaselineRow>> for BaselineView {
    fn from(b: Option<&BaselineRow>) -> Self {
        match b {
            Some(b) => BaselineView {
                baseline_status: b.status,
                baseline_sample_count: b.sample_count,
                model_id: b.model_id.clone(),
                semantic_score: b.semantic_score,
                length_score: b.length_score,
                distribution_score: b.distribution_score,
                refusal_rate: b.refusal_rate,
                reference_refusal_rate: b.reference_refusal_rate,
                updated_at: Some(b.updated_at),
            },
            None => BaselineView {
                baseline_status: BaselineStatus::Learning,
                baseline_sample_count: 0,
                model_id: None,
                semantic_score: None,
                length_score: None,
                distribution_score: None,
                refusal_rate: None,
                reference_refusal_rate: None,
                updated_at: None,
            },
        }
    }
}

impl From<&DriftEventRow> for DriftEventView {
    fn from(e: &DriftEventRow) -> Self {
        DriftEventView {
            id: e.id,
            version: e.version,
            kind: e.kind,
            score: e.score,
            threshold: e.threshold,
            window_size: e.window_size,
            sample_id: e.sample_id,
            switched_to: e.switched_to,
            // Stored by this server as JSON; an unreadable one is served as absent.
            explanation: e.explanation.as_deref().and_then(|x| serde_json::from_str(x).ok()),
            created_at: e.created_at,
        }
    }
}

impl From<&SampleRow> for SampleView {
    fn from(s: &SampleRow) -> Self {
        SampleView {
            id: s.id,
            prompt_version: s.prompt_version,
            input_text: s.input_text.clone(),
            response_text: s.response_text.clone(),
            model: s.model.clone(),
            response_length: s.response_length,
            received_at: s.received_at,
            state: s.state,
            similarity: s.similarity,
            semantic_score: s.semantic_score,
            length_score: s.length_score,
            distribution_score: s.distribution_score,
            refusal: s.refusal,
            refusal_rate: s.refusal_rate,
            processed_at: s.processed_at,
            error: s.error.clone(),
        }
    }
}

/// A prompt with its config, both versions' baselines and its open drift (if it is drifted).
fn prompt_view(p: &PromptRow, baselines: &[&BaselineRow], latest_event: Option<&DriftEventRow>) -> PromptView {
    let of = |v: PromptVersion| baselines.iter().find(|b| b.version == v).copied();
    let active = of(p.active_prompt);
    PromptView {
        name: p.name.clone(),
        active_prompt: p.active_prompt,
        status: p.status,
        baseline_status: active.map_or(BaselineStatus::Learning, |b| b.status),
        baseline_sample_count: active.map_or(0, |b| b.sample_count),
        min_baseline_samples: p.min_baseline_samples,
        drift_threshold: p.drift_threshold,
        length_drift_threshold: p.length_drift_threshold,
        auto_switch_enabled: p.auto_switch_enabled,
        false_alarm_budget: p.false_alarm_budget,
        sampling_rate: p.sampling_rate,
        versions: VersionBaselines { a: of(PromptVersion::A).into(), b: of(PromptVersion::B).into() },
        latest_scores: LatestScores {
            semantic_score: active.and_then(|b| b.semantic_score),
            length_score: active.and_then(|b| b.length_score),
        },
        open_drift: latest_event.filter(|_| p.status == PromptStatus::Drifted).map(DriftEventView::from),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// Every prompt of the key's project, by name.
pub async fn list(state: &AppState, owner: &KeyOwner) -> ApiResult<PromptList> {
    let prompts = state.store.prompts(owner.project_id).await?;
    let baselines = state.store.baselines(owner.project_id, None).await?;
    let events = state.store.latest_drift_events(owner.project_id).await?;
    let mut by_prompt: HashMap<i64, Vec<&BaselineRow>> = HashMap::new();
    for b in &baselines {
        by_prompt.entry(b.prompt_id).or_default().push(b);
    }
    let prompts = prompts
        .iter()
        .map(|p| {
            let own = by_prompt.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
            prompt_view(p, own, events.iter().find(|e| e.prompt_id == p.id))
        })
        .collect();
    Ok(PromptList { prompts })
}

/// One prompt, with its sample counts.
pub async fn detail(state: &AppState, owner: &KeyOwner, name: String) -> ApiResult<PromptDetail> {
    prompt_detail(state, owner.project_id, &name).await
}

/// The single-prompt view. The sample counts are read *first*: each scoring transaction marks
/// samples done together with the prompt and baseline it changed, so reading the prompt and its
/// baselines afterwards guarantees they include every sample counted as done (a client waiting
/// for `pending == 0` then sees the state that processing produced).
async fn prompt_detail(state: &AppState, project_id: i64, name: &str) -> ApiResult<PromptDetail> {
    let id = find_prompt(state, project_id, name).await?.id;
    let SampleCounts { total, pending, done, failed, skipped } = state.store.sample_counts(id).await?;
    let p = find_prompt(state, project_id, name).await?;
    let baselines = state.store.baselines(project_id, Some(p.id)).await?;
    let latest = state.store.drift_events(p.id, 1, 0).await?;
    let prompt = prompt_view(&p, &baselines.iter().collect::<Vec<_>>(), latest.first());
    Ok(PromptDetail { prompt, samples: SampleCountsView { total, pending, done, failed, skipped } })
}

/// Changes a prompt's settings; every problem is listed in one 422.
pub async fn patch(
    state: &AppState,
    owner: &KeyOwner,
    name: String,
    patch: PromptSettingsPatch,
) -> ApiResult<PromptDetail> {
    let p = find_prompt(state, owner.project_id, &name).await?;
    let change = PromptPatch {
        drift_threshold: patch.drift_threshold,
        length_drift_threshold: patch.length_drift_threshold,
        min_baseline_samples: patch.min_baseline_samples,
        auto_switch_enabled: patch.auto_switch_enabled,
        false_alarm_budget: patch.false_alarm_budget,
        active_prompt: patch.active_prompt,
        status: patch.status,
    };
    state.store.update_prompt_settings(p.id, &change).await?;
    prompt_detail(state, owner.project_id, &name).await
}

/// Makes the active version learn its baseline again from its next samples, and sets the
/// prompt's status back to `active`.
pub async fn reset_baseline(state: &AppState, owner: &KeyOwner, name: String) -> ApiResult<PromptDetail> {
    let p = find_prompt(state, owner.project_id, &name).await?;
    state.store.reset_baseline(p.id, p.active_prompt).await?;
    prompt_detail(state, owner.project_id, &name).await
}

/// Keyset paging of a list ordered by id, newest first.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size.
    #[param(schema_with = schemas::page_limit, required = false)]
    pub limit: i64,
    /// The `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
}

impl FromQuery for Page {
    fn read(q: &mut QueryFields) -> Self {
        Page { limit: q.page_limit(), before: q.int("before", 1, i64::MAX) }
    }
}

/// A prompt's drift events with their scores, oldest first within the page.
pub async fn drift_events(
    state: &AppState,
    owner: &KeyOwner,
    name: String,
    Page { limit, before }: Page,
) -> ApiResult<DriftEventPage> {
    let p = find_prompt(state, owner.project_id, &name).await?;
    let mut events = state.store.drift_events(p.id, limit, before.unwrap_or(0)).await?;
    let next_before = (events.len() as i64 == limit).then(|| events.last().map(|e| e.id)).flatten();
    events.reverse(); // oldest first reads like a timeline
    Ok(DriftEventPage { events: events.iter().map(DriftEventView::from).collect(), next_before })
}

/// A prompt's samples with their state and scores, newest first.
pub async fn samples(
    state: &AppState,
    owner: &KeyOwner,
    name: String,
    Page { limit, before }: Page,
) -> ApiResult<SamplePage> {
    let p = find_prompt(state, owner.project_id, &name).await?;
    let samples = state.store.samples(p.id, limit, before.unwrap_or(0)).await?;
    let next_before = (samples.len() as i64 == limit).then(|| samples.last().map(|s| s.id)).flatten();
    Ok(SamplePage { samples: samples.iter().map(SampleView::from).collect(), next_before })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(body: Value) -> Vec<String> {
        match PromptSettingsPatch::from_json(&body) {
            Ok(_) => vec![],
            Err(e) => e.problems.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn lists_every_problem() {
        assert!(paths(json!({"drift_threshold": 0.5, "active_prompt": "b"})).is_empty());
        assert_eq!(
            paths(json!({"drift_threshold": 2, "min_baseline_samples": 1e300, "active_prompt": "c", "x": 1})),
            ["x", "drift_threshold", "min_baseline_samples", "active_prompt"]
        );
        assert_eq!(paths(json!({})), ["body"]);
        assert_eq!(paths(json!({"status": null})), ["status"]);
        assert_eq!(paths(json!({"length_drift_threshold": 0})), ["length_drift_threshold"]);
    }
}
