//! Reads of `prompt_baselines`, one row per prompt version. The dashboard shows them; the
//! worker writes them inside its scoring transaction (see `scoring.rs`), and resetting one is a
//! prompt setting (see `prompts.rs`). Kept apart from those so each table's row type and the
//! columns it decodes live in one place.

use sqlx::Row;

use super::{get_enum, Store, StoreResult};
use crate::domain::{BaselineStatus, PromptVersion};

#[derive(Debug, Clone)]
pub struct BaselineRow {
    pub prompt_id: i64,
    pub version: PromptVersion,
    pub status: BaselineStatus,
    pub sample_count: i64,
    pub model_id: Option<String>,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    /// The distribution test's latest evidence (`-log10 p`).
    pub distribution_score: Option<f64>,
    /// Share of refusals among the recent samples, and in the reference.
    pub refusal_rate: Option<f64>,
    pub reference_refusal_rate: Option<f64>,
    pub updated_at: i64,
}

impl Store {
    /// Baselines of every prompt of the project (or of one prompt).
    pub async fn baselines(&self, project_id: i64, prompt_id: Option<i64>) -> StoreResult<Vec<BaselineRow>> {
        let rows = sqlx::query(
            "SELECT b.prompt_id, b.version, b.status, b.sample_count, b.model_id, b.semantic_score, b.length_score, \
                    b.distribution_score, b.refusal_rate, b.reference_refusal_rate, b.updated_at \
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
                    distribution_score: r.try_get("distribution_score")?,
                    refusal_rate: r.try_get("refusal_rate")?,
                    reference_refusal_rate: r.try_get("reference_refusal_rate")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
}
