//! Read and admin queries behind the dashboard REST API.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::prompts::{PromptRow, PROMPT_COLUMNS};
use super::{get_enum, get_optional_enum, now_ms, Store, StoreResult};
use crate::domain::{BaselineStatus, DriftKind, PromptStatus, PromptVersion, SampleState};

#[derive(Debug, Clone)]
pub struct BaselineRow {
    pub prompt_id: i64,
    pub version: PromptVersion,
    pub status: BaselineStatus,
    pub sample_count: i64,
    pub model_id: Option<String>,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct DriftEventRow {
    pub id: i64,
    pub prompt_id: i64,
    pub version: PromptVersion,
    pub kind: DriftKind,
    pub score: f64,
    pub threshold: f64,
    pub window_size: i64,
    pub sample_id: i64,
    pub switched_to: Option<PromptVersion>,
    pub created_at: i64,
}

const EVENT_COLUMNS: &str =
    "id, prompt_id, version, kind, score, threshold, window_size, sample_id, switched_to, created_at";

impl DriftEventRow {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(DriftEventRow {
            id: r.try_get("id")?,
            prompt_id: r.try_get("prompt_id")?,
            version: get_enum(r, "version")?,
            kind: get_enum(r, "kind")?,
            score: r.try_get("score")?,
            threshold: r.try_get("threshold")?,
            window_size: r.try_get("window_size")?,
            sample_id: r.try_get("sample_id")?,
            switched_to: get_optional_enum(r, "switched_to")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SampleRow {
    pub id: i64,
    pub prompt_version: PromptVersion,
    pub input_text: Option<String>,
    pub response_text: String,
    pub model: Option<String>,
    pub response_length: i64,
    pub received_at: i64,
    pub state: SampleState,
    pub similarity: Option<f64>,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    pub processed_at: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SampleCounts {
    pub total: i64,
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
}

/// Settings a dashboard may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PromptPatch {
    pub drift_threshold: Option<f64>,
    pub length_drift_threshold: Option<f64>,
    pub min_baseline_samples: Option<i64>,
    pub auto_switch_enabled: Option<bool>,
    pub active_prompt: Option<PromptVersion>,
    pub status: Option<PromptStatus>,
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

    /// Baselines of every prompt of the project (or of one prompt).
    pub async fn baselines(&self, project_id: i64, prompt_id: Option<i64>) -> StoreResult<Vec<BaselineRow>> {
        let rows = sqlx::query(
            "SELECT b.prompt_id, b.version, b.status, b.sample_count, b.model_id, b.semantic_score, b.length_score, \
                    b.updated_at \
             FROM prompt_baselines b JOIN prompts p ON p.id = b.prompt_id \
             WHERE p.project_id = $1 AND ($2 = 0 OR b.prompt_id = $2) ORDER BY b.prompt_id, b.version",
        )
        .bind(project_id)
        .bind(prompt_id.unwrap_or(0))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BaselineRow {
                    prompt_id: r.try_get("prompt_id")?,
                    version: get_enum(r, "version")?,
                    status: get_enum(r, "status")?,
                    sample_count: r.try_get("sample_count")?,
                    model_id: r.try_get("model_id")?,
                    semantic_score: r.try_get("semantic_score")?,
                    length_score: r.try_get("length_score")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The newest drift event of every prompt of the project.
    pub async fn latest_drift_events(&self, project_id: i64) -> StoreResult<Vec<DriftEventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM drift_events WHERE id IN \
             (SELECT MAX(id) FROM drift_events WHERE project_id = $1 GROUP BY prompt_id)"
        );
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.read).await?;
        rows.iter().map(DriftEventRow::from_row).collect()
    }

    /// A prompt's drift events, newest first, before event id `before` (0 = from the newest).
    pub async fn drift_events(&self, prompt_id: i64, limit: i64, before: i64) -> StoreResult<Vec<DriftEventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM drift_events WHERE prompt_id = $1 AND ($2 = 0 OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql).bind(prompt_id).bind(before).bind(limit).fetch_all(&self.read).await?;
        rows.iter().map(DriftEventRow::from_row).collect()
    }

    /// A prompt's samples, newest first, before sample id `before` (0 = from the newest).
    pub async fn samples(&self, prompt_id: i64, limit: i64, before: i64) -> StoreResult<Vec<SampleRow>> {
        let rows = sqlx::query(
            "SELECT id, prompt_version, input_text, response_text, model, response_length, received_at, state, \
                    similarity, semantic_score, length_score, processed_at, error \
             FROM samples WHERE prompt_id = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(prompt_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SampleRow {
                    id: r.try_get("id")?,
                    prompt_version: get_enum(r, "prompt_version")?,
                    input_text: r.try_get("input_text")?,
                    response_text: r.try_get("response_text")?,
                    model: r.try_get("model")?,
                    response_length: r.try_get("response_length")?,
                    received_at: r.try_get("received_at")?,
                    state: get_enum(r, "state")?,
                    similarity: r.try_get("similarity")?,
                    semantic_score: r.try_get("semantic_score")?,
                    length_score: r.try_get("length_score")?,
                    processed_at: r.try_get("processed_at")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    pub async fn sample_counts(&self, prompt_id: i64) -> StoreResult<SampleCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM samples WHERE prompt_id = $1 GROUP BY state")
            .bind(prompt_id)
            .fetch_all(&self.read)
            .await?;
        let mut counts = SampleCounts::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            counts.total += n;
            match get_enum(&r, "state")? {
                // "embedded" is still waiting to be scored: pending for anyone watching
                SampleState::Pending | SampleState::Embedded => counts.pending += n,
                SampleState::Done => counts.done += n,
                SampleState::Failed => counts.failed += n,
            }
        }
        Ok(counts)
    }

    pub async fn update_prompt_settings(&self, prompt_id: i64, patch: &PromptPatch) -> StoreResult<()> {
        sqlx::query(
            "UPDATE prompts SET drift_threshold = COALESCE($1, drift_threshold), \
                 length_drift_threshold = COALESCE($2, length_drift_threshold), \
                 min_baseline_samples = COALESCE($3, min_baseline_samples), \
                 auto_switch_enabled = COALESCE($4, auto_switch_enabled), \
                 active_prompt = COALESCE($5, active_prompt), status = COALESCE($6, status), updated_at = $7 \
             WHERE id = $8",
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
        .bind(prompt_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Forgets the baseline of one version (it learns again from its next samples) and marks the
    /// prompt active again.
    pub async fn reset_baseline(&self, prompt_id: i64, version: PromptVersion) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
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
