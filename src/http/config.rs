//! `GET /api/v1/config`: what the DriftBalloon SDK caches for every prompt of the key's project.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};

use super::auth::Auth;
use super::error::ApiResult;
use super::AppState;
use crate::store::PromptConfigRow;

pub async fn get_config(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let prompts: Map<String, Value> = state
        .store
        .prompt_configs(owner.project_id)
        .await?
        .into_iter()
        .map(|c| (c.prompt.name.clone(), sdk_prompt_config(&c)))
        .collect();
    Ok(Json(json!({ "prompts": prompts, "cache_ttl_seconds": state.settings.config_cache_ttl_secs })))
}

/// One prompt in the SDK's `PromptConfig` shape.
fn sdk_prompt_config(c: &PromptConfigRow) -> Value {
    let p = &c.prompt;
    json!({
        "active_prompt": p.active_prompt,
        "baseline_status": c.baseline_status,
        "baseline_sample_count": c.baseline_sample_count,
        "min_baseline_samples": p.min_baseline_samples,
        "drift_threshold": p.drift_threshold,
        "length_drift_threshold": p.length_drift_threshold,
        "auto_switch_enabled": p.auto_switch_enabled,
        "status": p.status,
    })
}
