//! Dashboard REST for prompts: list, detail, settings, baseline reset, drift events, samples.
//! Names in paths are percent-decoded by axum, so any Unicode name works (`/` as `%2F`).

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::query::{page_limit, ApiPath, ApiQuery};
use super::AppState;
use crate::store::{BaselineRow, DriftEventRow, PromptPatch, PromptRow, SampleRow};

const MAX_MIN_BASELINE_SAMPLES: i64 = 10_000;

async fn find_prompt(state: &AppState, project_id: i64, name: &str) -> ApiResult<PromptRow> {
    state
        .store
        .prompt_by_name(project_id, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no prompt named `{name}` in this project")))
}

fn baseline_json(b: Option<&BaselineRow>) -> Value {
    match b {
        Some(b) => json!({
            "baseline_status": b.status,
            "baseline_sample_count": b.sample_count,
            "model_id": b.model_id,
            "semantic_score": b.semantic_score,
            "length_score": b.length_score,
            "updated_at": b.updated_at,
        }),
        None => {
            json!({ "baseline_status": "learning", "baseline_sample_count": 0, "model_id": null,
                        "semantic_score": null, "length_score": null, "updated_at": null })
        }
    }
}

fn event_json(e: &DriftEventRow) -> Value {
    json!({
        "id": e.id, "version": e.version, "kind": e.kind, "score": e.score, "threshold": e.threshold,
        "window_size": e.window_size, "sample_id": e.sample_id, "switched_to": e.switched_to,
        "created_at": e.created_at,
    })
}

/// A prompt with its config, both versions' baselines and its open drift (if `status` is drifted).
fn prompt_json(p: &PromptRow, baselines: &[&BaselineRow], latest_event: Option<&DriftEventRow>) -> Value {
    let versions: Map<String, Value> = ["a", "b"]
        .iter()
        .map(|v| (v.to_string(), baseline_json(baselines.iter().find(|b| b.version == *v).copied())))
        .collect();
    let active = baselines.iter().find(|b| b.version == p.active_prompt).copied();
    let open_drift = if p.status == "drifted" { latest_event.map(event_json) } else { None };
    json!({
        "name": p.name,
        "active_prompt": p.active_prompt,
        "status": p.status,
        "baseline_status": active.map(|b| b.status.as_str()).unwrap_or("learning"),
        "baseline_sample_count": active.map(|b| b.sample_count).unwrap_or(0),
        "min_baseline_samples": p.min_baseline_samples,
        "drift_threshold": p.drift_threshold,
        "length_drift_threshold": p.length_drift_threshold,
        "auto_switch_enabled": p.auto_switch_enabled,
        "versions": versions,
        "latest_scores": json!({
            "semantic_score": active.and_then(|b| b.semantic_score),
            "length_score": active.and_then(|b| b.length_score),
        }),
        "open_drift": open_drift,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let prompts = state.store.prompts(owner.project_id).await?;
    let baselines = state.store.baselines(owner.project_id, None).await?;
    let events = state.store.latest_drift_events(owner.project_id).await?;
    let mut by_prompt: HashMap<i64, Vec<&BaselineRow>> = HashMap::new();
    for b in &baselines {
        by_prompt.entry(b.prompt_id).or_default().push(b);
    }
    let list: Vec<Value> = prompts
        .iter()
        .map(|p| {
            let own = by_prompt.get(&p.id).map(Vec::as_slice).unwrap_or(&[]);
            prompt_json(p, own, events.iter().find(|e| e.prompt_id == p.id))
        })
        .collect();
    Ok(Json(json!({ "prompts": list })))
}

pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(detail_json(&state, owner.project_id, &name).await?))
}

/// The single-prompt view. The sample counts are read *first*: each scoring transaction marks
/// samples done together with the prompt and baseline it changed, so reading the prompt and its
/// baselines afterwards guarantees they include every sample counted as done (a client waiting
/// for `pending == 0` then sees the state that processing produced).
async fn detail_json(state: &AppState, project_id: i64, name: &str) -> ApiResult<Value> {
    let id = find_prompt(state, project_id, name).await?.id;
    let counts = state.store.sample_counts(id).await?;
    let p = find_prompt(state, project_id, name).await?;
    let baselines = state.store.baselines(project_id, Some(p.id)).await?;
    let latest = state.store.drift_events(p.id, 1, 0).await?;
    let mut body = prompt_json(&p, &baselines.iter().collect::<Vec<_>>(), latest.first());
    body["samples"] =
        json!({ "total": counts.total, "pending": counts.pending, "done": counts.done, "failed": counts.failed });
    Ok(body)
}

pub async fn patch(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let p = find_prompt(&state, owner.project_id, &name).await?;
    let patch = parse_patch(&body)?;
    state.store.update_prompt_settings(p.id, &patch).await?;
    Ok(Json(detail_json(&state, owner.project_id, &name).await?))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::unprocessable("validation_failed", format!("{field}: {message}"))
        .with_details(json!({ "problems": [{ "field": field, "message": message }] }))
}

/// Validates a PATCH body: only known fields, each within its range.
pub fn parse_patch(body: &Value) -> ApiResult<PromptPatch> {
    let Some(fields) = body.as_object() else {
        return Err(invalid("body", "must be a JSON object of settings to change"));
    };
    if fields.is_empty() {
        return Err(invalid("body", "names no setting to change"));
    }
    let mut patch = PromptPatch::default();
    for (key, value) in fields {
        match key.as_str() {
            "drift_threshold" => match value.as_f64() {
                Some(v) if (0.0..=1.0).contains(&v) => patch.drift_threshold = Some(v),
                _ => return Err(invalid(key, "must be a number from 0 to 1 (a similarity ratio)")),
            },
            "length_drift_threshold" => match value.as_f64() {
                Some(v) if v > 0.0 && v <= 100.0 => patch.length_drift_threshold = Some(v),
                _ => return Err(invalid(key, "must be a number above 0 and at most 100 (standard deviations)")),
            },
            "min_baseline_samples" => match value.as_i64() {
                Some(v) if (2..=MAX_MIN_BASELINE_SAMPLES).contains(&v) => patch.min_baseline_samples = Some(v),
                _ => return Err(invalid(key, "must be a whole number from 2 to 10000")),
            },
            "auto_switch_enabled" => match value.as_bool() {
                Some(v) => patch.auto_switch_enabled = Some(v),
                None => return Err(invalid(key, "must be true or false")),
            },
            "active_prompt" => match value.as_str() {
                Some(v @ ("a" | "b")) => patch.active_prompt = Some(v.to_string()),
                _ => return Err(invalid(key, "must be \"a\" or \"b\"")),
            },
            "status" => match value.as_str() {
                Some(v @ ("active" | "drifted")) => patch.status = Some(v.to_string()),
                _ => return Err(invalid(key, "must be \"active\" or \"drifted\"")),
            },
            other => {
                return Err(invalid(
                    other,
                    "is not a setting; known: drift_threshold, length_drift_threshold, min_baseline_samples, \
                     auto_switch_enabled, active_prompt, status",
                ))
            }
        }
    }
    Ok(patch)
}

pub async fn reset_baseline(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let p = find_prompt(&state, owner.project_id, &name).await?;
    state.store.reset_baseline(p.id, &p.active_prompt).await?;
    Ok(Json(detail_json(&state, owner.project_id, &name).await?))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<String>,
    before: Option<String>,
}

impl Page {
    fn parse(&self) -> ApiResult<(i64, i64)> {
        let before = match &self.before {
            None => 0,
            Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "before must be a whole number from 1 (a next_before value)")
            })?,
        };
        Ok((page_limit(self.limit.as_deref())?, before))
    }
}

pub async fn drift_events(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    let (limit, before) = page.parse()?;
    let p = find_prompt(&state, owner.project_id, &name).await?;
    let mut events = state.store.drift_events(p.id, limit, before).await?;
    let next_before = (events.len() as i64 == limit).then(|| events.last().map(|e| e.id)).flatten();
    events.reverse(); // oldest first reads like a timeline
    Ok(Json(json!({ "events": events.iter().map(event_json).collect::<Vec<_>>(), "next_before": next_before })))
}

fn sample_json(s: &SampleRow) -> Value {
    json!({
        "id": s.id, "prompt_version": s.prompt_version, "input_text": s.input_text, "response_text": s.response_text,
        "model": s.model, "response_length": s.response_length, "received_at": s.received_at, "state": s.state,
        "similarity": s.similarity, "semantic_score": s.semantic_score, "length_score": s.length_score,
        "processed_at": s.processed_at, "error": s.error,
    })
}

pub async fn samples(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<Value>> {
    let (limit, before) = page.parse()?;
    let p = find_prompt(&state, owner.project_id, &name).await?;
    let samples = state.store.samples(p.id, limit, before).await?;
    let next_before = (samples.len() as i64 == limit).then(|| samples.last().map(|s| s.id)).flatten();
    Ok(Json(json!({ "samples": samples.iter().map(sample_json).collect::<Vec<_>>(), "next_before": next_before })))
}
