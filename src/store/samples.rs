//! Reads of `samples`, the LLM responses drift is measured on. They are written by ingest
//! (`logs.rs`, `spans.rs`) and moved through their states by the worker (`scoring.rs`); what
//! the dashboard reads of them is here, next to the row type, so the columns a sample is
//! decoded from and the meaning of its states for readers are defined once.

use sqlx::Row;

use super::{get_enum, Store, StoreResult};
use crate::domain::{PromptVersion, SampleState};

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
    pub distribution_score: Option<f64>,
    pub refusal: Option<bool>,
    pub refusal_rate: Option<f64>,
    pub processed_at: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SampleCounts {
    pub total: i64,
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    /// Left out of scoring under overload.
    pub skipped: i64,
}

/// `per_version` (a query with `'{v}'` where the version goes, ordered by id descending) run
/// for each prompt version and merged, newest first, `limit` rows in all.
pub(super) fn newest_of_each_version(per_version: &str, limit: &str) -> String {
    let parts: Vec<String> = PromptVersion::ALL
        .iter()
        .map(|v| format!("SELECT * FROM ({}) v_{}", per_version.replace("{v}", v.as_str()), v.as_str()))
        .collect();
    format!("{} ORDER BY id DESC LIMIT {limit}", parts.join(" UNION ALL "))
}

impl Store {
    /// A prompt's samples, newest first, before sample id `before` (0 = from the newest).
    pub async fn samples(&self, prompt_id: i64, limit: i64, before: i64) -> StoreResult<Vec<SampleRow>> {
        // One index range per version (prompt_id, prompt_version, id), merged: ordering the whole
        // prompt by id would sort every sample it ever had before the first page could be cut.
        let per_version = "SELECT id, prompt_version, input_text, response_text, model, response_length, \
                    received_at, state, similarity, semantic_score, length_score, distribution_score, refusal, refusal_rate, \
                    processed_at, error \
             FROM samples WHERE prompt_id = $1 AND prompt_version = '{v}' AND ($2 = 0 OR id < $2) \
             ORDER BY id DESC LIMIT $3";
        let rows = sqlx::query(&newest_of_each_version(per_version, "$3"))
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
                    distribution_score: r.try_get("distribution_score")?,
                    refusal: r.try_get::<Option<i64>, _>("refusal")?.map(|f| f != 0),
                    refusal_rate: r.try_get("refusal_rate")?,
                    processed_at: r.try_get("processed_at")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    /// Samples of a prompt version scored against its baseline (a similarity, where the ones
    /// the baseline learnt from have none), counted up to `at_most`: how far the first window
    /// past the baseline has filled.
    pub async fn scored_past_baseline(&self, prompt_id: i64, version: PromptVersion, at_most: i64) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM samples WHERE prompt_id = $1 AND prompt_version = $2 \
             AND state = 'done' AND similarity IS NOT NULL LIMIT $3) scored",
        )
        .bind(prompt_id)
        .bind(version.as_str())
        .bind(at_most)
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get("n")?)
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
                SampleState::Skipped => counts.skipped += n,
            }
        }
        Ok(counts)
    }
}
