//! Prompts: created on first log, carrying the config the SDK reads back.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{now_ms, Store};

/// A prompt row with every setting. Queries name the table `p`.
#[derive(Debug, Clone)]
pub struct PromptRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub active_prompt: String,
    pub status: String,
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
/// How many columns PROMPT_COLUMNS selects; a query's own columns follow them.
const PROMPT_COLUMN_COUNT: usize = 11;

impl PromptRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(PromptRow {
            id: r.try_get(0)?,
            project_id: r.try_get(1)?,
            name: r.try_get(2)?,
            active_prompt: r.try_get(3)?,
            status: r.try_get(4)?,
            min_baseline_samples: r.try_get(5)?,
            drift_threshold: r.try_get(6)?,
            length_drift_threshold: r.try_get(7)?,
            auto_switch_enabled: r.try_get::<i64, _>(8)? != 0,
            created_at: r.try_get(9)?,
            updated_at: r.try_get(10)?,
        })
    }
}

/// One prompt as `GET /api/v1/config` reports it: its settings plus the active version's
/// baseline.
#[derive(Debug, Clone)]
pub struct PromptConfigRow {
    pub prompt: PromptRow,
    /// `learning`/`ready` and how many samples are in the baseline.
    pub baseline_status: String,
    pub baseline_sample_count: i64,
}

/// Id and active version of a prompt, as a log arriving now is stored under.
pub(super) struct PromptHandle {
    pub id: i64,
    pub active_prompt: String,
}

/// Finds the prompt by name in the transaction, creating it with the SDK's defaults if needed.
pub(super) async fn get_or_create_prompt(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    name: &str,
) -> Result<PromptHandle, sqlx::Error> {
    const SELECT: &str = "SELECT id, active_prompt FROM prompts WHERE project_id = $1 AND name = $2";
    if let Some(row) = sqlx::query(SELECT).bind(project_id).bind(name).fetch_optional(&mut **tx).await? {
        return Ok(PromptHandle { id: row.try_get(0)?, active_prompt: row.try_get(1)? });
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
    Ok(PromptHandle { id: row.try_get(0)?, active_prompt: row.try_get(1)? })
}

impl Store {
    /// Every prompt of a project with its config, ordered by name.
    pub async fn prompt_configs(&self, project_id: i64) -> Result<Vec<PromptConfigRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {PROMPT_COLUMNS}, COALESCE(b.status, 'learning'), COALESCE(b.sample_count, 0) \
             FROM prompts p LEFT JOIN prompt_baselines b ON b.prompt_id = p.id AND b.version = p.active_prompt \
             WHERE p.project_id = $1 ORDER BY p.name"
        );
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(PromptConfigRow {
                    prompt: PromptRow::from_row(r)?,
                    baseline_status: r.try_get(PROMPT_COLUMN_COUNT)?,
                    baseline_sample_count: r.try_get(PROMPT_COLUMN_COUNT + 1)?,
                })
            })
            .collect()
    }
}
