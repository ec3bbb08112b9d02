//! Reads of `drift_events`, the append-only record of detected drift. The worker inserts them
//! inside its scoring transaction (see `scoring.rs`); the dashboard reads them here, so the
//! event row type and the one column list both queries decode live together.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{get_enum, get_optional_enum, Store, StoreResult};
use crate::domain::{DriftKind, PromptVersion};

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
    /// The engine's explanation (JSON text).
    pub explanation: Option<String>,
    pub created_at: i64,
}

pub(super) const EVENT_COLUMNS: &str =
    "id, prompt_id, version, kind, score, threshold, window_size, sample_id, switched_to, explanation, created_at";

impl DriftEventRow {
    pub(super) fn from_row(r: &AnyRow) -> StoreResult<Self> {
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
            explanation: r.try_get("explanation")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

impl Store {
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
}
