//! `GET /api/v1/config`: what the DriftBalloon SDK caches for every prompt of the key's project.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{BaselineStatus, PromptStatus, PromptVersion};
use crate::store::PromptConfigRow;
use crate::web::auth::IngestAuth;
use crate::web::error::ApiResult;
use crate::web::AppState;

/// Every prompt's config, by prompt name.
#[derive(Debug, Serialize, ToSchema)]
pub struct SdkConfig {
    pub prompts: BTreeMap<String, SdkPromptConfig>,
    /// How long the SDK may cache this answer.
    pub cache_ttl_seconds: u64,
}

/// One prompt in the SDK's `PromptConfig` shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct SdkPromptConfig {
    /// The version the app should use now (`b` after an auto-switch).
    pub active_prompt: PromptVersion,
    /// The active version's baseline.
    pub baseline_status: BaselineStatus,
    pub baseline_sample_count: i64,
    pub min_baseline_samples: i64,
    pub drift_threshold: f64,
    pub length_drift_threshold: f64,
    pub auto_switch_enabled: bool,
    pub status: PromptStatus,
}

impl From<&PromptConfigRow> for SdkPromptConfig {
    fn from(c: &PromptConfigRow) -> Self {
        let p = &c.prompt;
        SdkPromptConfig {
            active_prompt: p.active_prompt,
            baseline_status: c.baseline_status,
            baseline_sample_count: c.baseline_sample_count,
            min_baseline_samples: p.min_baseline_samples,
            drift_threshold: p.drift_threshold,
            length_drift_threshold: p.length_drift_threshold,
            auto_switch_enabled: p.auto_switch_enabled,
            status: p.status,
        }
    }
}

/// The DriftBalloon SDK's config sync.
#[utoipa::path(
    get, path = "/api/v1/config", tag = "sdk", operation_id = "get_sdk_config",
    responses((status = 200, description = "Every prompt's config", body = SdkConfig))
)]
pub async fn get_config(State(state): State<AppState>, IngestAuth(owner): IngestAuth) -> ApiResult<Json<SdkConfig>> {
    let prompts =
        state.store.prompt_configs(owner.project_id).await?.iter().map(|c| (c.prompt.name.clone(), c.into())).collect();
    Ok(Json(SdkConfig { prompts, cache_ttl_seconds: state.settings.config_cache_ttl_secs }))
}
