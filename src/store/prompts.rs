//! Prompts: created on first log, carrying the config the SDK reads back and the settings a
//! dashboard changes. Everything that reads or changes a prompt row is here, so the one column
//! list ([`PROMPT_COLUMNS`]) and its decoder serve every query; resetting a baseline lives here
//! too because it is a prompt-level action (it also marks the prompt active again).

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{get_bool, get_enum, now_ms, values_placeholders, Backend, Params, Store, StoreResult};
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
    /// Expected false alarms of the statistical detectors per 100,000 stable samples.
    pub false_alarm_budget: f64,
    /// Share of the prompt's recent samples kept for scoring: below 1 while the worker samples
    /// an overload (see `worker::sampling`), else 1.
    pub sampling_rate: f64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const PROMPT_COLUMNS: &str = "p.id, p.project_id, p.name, p.active_prompt, p.status, \
     p.min_baseline_samples, p.drift_threshold, p.length_drift_threshold, p.auto_switch_enabled, p.false_alarm_budget, \
     p.sampling_rate, p.created_at, p.updated_at";

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
            false_alarm_budget: r.try_get("false_alarm_budget")?,
            sampling_rate: r.try_get("sampling_rate")?,
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

/// Settings a dashboard may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PromptPatch {
    pub drift_threshold: Option<f64>,
    pub length_drift_threshold: Option<f64>,
    pub min_baseline_samples: Option<i64>,
    pub auto_switch_enabled: Option<bool>,
    pub false_alarm_budget: Option<f64>,
    pub active_prompt: Option<PromptVersion>,
    pub status: Option<PromptStatus>,
}

/// Id and active version of a prompt, as a log arriving now is stored under.
pub(super) struct PromptHandle {
    pub id: i64,
    pub active_prompt: PromptVersion,
}

/// Names per lookup or insert statement, well under both backends' parameter limits.
const NAMES_PER_STATEMENT: usize = 500;

/// Finds the named prompts in the transaction, creating the missing ones with the SDK's
/// defaults. One lookup for all of them (a batch of logs often names many prompts), and when
/// some are new, one insert and one more lookup.
pub(super) async fn get_or_create_prompts(
    tx: &mut sqlx::AnyConnection,
    project_id: i64,
    names: &[&str],
) -> StoreResult<HashMap<String, PromptHandle>> {
    let mut found = find_prompts(tx, project_id, names).await?;
    let missing: Vec<&str> = names.iter().copied().filter(|n| !found.contains_key(*n)).collect();
    if missing.is_empty() {
        return Ok(found);
    }
    let now = now_ms();
    for chunk in missing.chunks(NAMES_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO prompts (project_id, name, created_at, updated_at) VALUES {} \
             ON CONFLICT (project_id, name) DO NOTHING",
            values_placeholders(Backend::of(tx), chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for name in chunk {
            query = query.bind(project_id).bind(*name).bind(now).bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    found.extend(find_prompts(tx, project_id, &missing).await?);
    Ok(found)
}

/// The stored prompts among `names`.
async fn find_prompts(
    tx: &mut sqlx::AnyConnection,
    project_id: i64,
    names: &[&str],
) -> StoreResult<HashMap<String, PromptHandle>> {
    let mut found = HashMap::with_capacity(names.len());
    for chunk in names.chunks(NAMES_PER_STATEMENT) {
        let mut params = Params::new(Backend::of(tx));
        let sql = format!(
            "SELECT id, name, active_prompt FROM prompts WHERE project_id = {} AND name IN ({})",
            params.next(),
            params.list(chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(project_id);
        for name in chunk {
            query = query.bind(*name);
        }
        for row in query.fetch_all(&mut *tx).await? {
            let handle = PromptHandle { id: row.try_get("id")?, active_prompt: get_enum(&row, "active_prompt")? };
            found.insert(row.try_get("name")?, handle);
        }
    }
    Ok(found)
}

impl Store {
    pub async fn prompt_by_name(&self, project_id: i64, name: &str) -> StoreResult<Option<PromptRow>> {
        let sql = format!("SELECT {PROMPT_COLUMNS} FROM prompts p WHERE p.project_id = $1 AND p.name = $2");
        let row = sqlx::query(&sql).bind(project_id).bind(name).fetch_optional(&self.read).await?;
        row.as_ref().map(PromptRow::from_row).transpose()
    }

    pub async fn prompts(&self, project_id: i64) -> StoreResult<Vec<PromptRow>> {
        let sql = format!("SELECT {PROMPT_COLUMNS} FROM prompts p WHERE p.project_id = $1 ORDER BY p.name");
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.read).await?;
        rows.iter().map(PromptRow::from_row).collect()
    }

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

    pub async fn update_prompt_settings(&self, prompt_id: i64, patch: &PromptPatch) -> StoreResult<()> {
        sqlx::query(
            "UPDATE prompts SET drift_threshold = COALESCE($1, drift_threshold), \
                 length_drift_threshold = COALESCE($2, length_drift_threshold), \
                 min_baseline_samples = COALESCE($3, min_baseline_samples), \
                 auto_switch_enabled = COALESCE($4, auto_switch_enabled), \
                 active_prompt = COALESCE($5, active_prompt), status = COALESCE($6, status), updated_at = $7, \
                 false_alarm_budget = COALESCE($8, false_alarm_budget) \
             WHERE id = $9",
        )
        // sqlx 0.8 `Any` declares a NULL f64 as float4 but a value as float8; a cached
        // Postgres statement then rejects the other kind, so this one is not cached.
        .persistent(false)
        .bind(patch.drift_threshold)
        .bind(patch.length_drift_threshold)
        .bind(patch.min_baseline_samples)
        .bind(patch.auto_switch_enabled.map(i64::from))
        .bind(patch.active_prompt.map(PromptVersion::as_str))
        .bind(patch.status.map(PromptStatus::as_str))
        .bind(now_ms())
        .bind(patch.false_alarm_budget)
        .bind(prompt_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Forgets the baseline of one version (it learns again from its next samples) and marks the
    /// prompt active again.
    pub async fn reset_baseline(&self, prompt_id: i64, version: PromptVersion) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM prompt_baselines WHERE prompt_id = $1 AND version = $2")
            .bind(prompt_id)
            .bind(version.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE prompts SET status = 'active', updated_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(prompt_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
