//! Prompts: created on first log, carrying the config the SDK reads back.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{get_bool, get_enum, now_ms, Store, StoreResult};
use crate::domain::{BaselineStatus, PromptStatus, PromptVersion};

/// A prompt row with every setting. Queries name the table `p`.
#[derive(Debug, Clone)]
pub struct PromptRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub active_prompt: PromptVersion,
    pub status: PromptStatus,
    pub min_baseline_samples: i64,
    pub drift_threshold: f64,
    pub length_drift_threshold: f64,
    pub auto_switch_enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const PROMPT_COLUMNS: &str = "p.id, p.project_id, p.name, p.active_prompt, p.status, \
     p.min_baseline_samples, p.drift_threshold, p.length_drift_threshold, p.auto_switch_enabled, p.created_at, \
     p.updated_at";

impl PromptRow {
    pub(super) fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(PromptRow {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            name: r.try_get("name")?,
            active_prompt: get_enum(r, "active_prompt")?,
            status: get_enum(r, "status")?,
            min_baseline_samples: r.try_get("min_baseline_samples")?,
            drift_threshold: r.try_get("drift_threshold")?,
            length_drift_threshold: r.try_get("length_drift_threshold")?,
            auto_switch_enabled: get_bool(r, "auto_switch_enabled")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// One prompt as `GET /api/v1/config` reports it: its settings plus the active version's
/// baseline.
#[derive(Debug, Clone)]
pub struct PromptConfigRow {
    pub prompt: PromptRow,
    /// `learning`/`ready` and how many samples are in the baseline.
    pub baseline_status: BaselineStatus,
    pub baseline_sample_count: i64,
}

/// Id and active version of a prompt, as a log arriving now is stored under.
pub(super) struct PromptHandle {
    pub id: i64,
    pub active_prompt: PromptVersion,
}

/// Finds the prompt by name in the transaction, creating it with the SDK's defaults if needed.
pub(super) async fn get_or_create_prompt(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    name: &str,
) -> StoreResult<PromptHandle> {
    const SELECT: &str = "SELECT id, active_prompt FROM prompts WHERE project_id = $1 AND name = $2";
    if let Some(row) = sqlx::query(SELECT).bind(project_id).bind(name).fetch_optional(&mut **tx).await? {
        return Ok(PromptHandle { id: row.try_get("id")?, active_prompt: get_enum(&row, "active_prompt")? });
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO prompts (project_id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (project_id, name) DO NOTHING",
    )
    .bind(project_id)
    .bind(name)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(SELECT).bind(project_id).bind(name).fetch_one(&mut **tx).await?;
    Ok(PromptHandle { id: row.try_get("id")?, active_prompt: get_enum(&row, "active_prompt")? })
}

impl Store {
    /// Every prompt of a project with its config, ordered by name.
    pub async fn prompt_configs(&self, project_id: i64) -> StoreResult<Vec<PromptConfigRow>> {
        let sql = format!(
            "SELECT {PROMPT_COLUMNS}, COALESCE(b.status, 'learning') AS baseline_status, \
                    COALESCE(b.sample_count, 0) AS baseline_sample_count \
             FROM prompts p LEFT JOIN prompt_baselines b ON b.prompt_id = p.id AND b.version = p.active_prompt \
             WHERE p.project_id = $1 ORDER BY p.name"
        );
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(PromptConfigRow {
                    prompt: PromptRow::from_row(r)?,
                    baseline_status: get_enum(r, "baseline_status")?,
                    baseline_sample_count: r.try_get("baseline_sample_count")?,
                })
            })
            .collect()
    }
}
