//! A model config's A/B summary: per assigned model, the sessions, their traces, latency,
//! tokens and errors. A span counts for a variant when its session was assigned that model
//! under the config (the recorded `/sessions` assignments are the source of truth, not the
//! model name a provider echoes back, which often carries a date suffix).

use sqlx::Row;

use super::{Store, StoreResult};

#[derive(Debug, Clone, Default)]
pub struct VariantSummaryRow {
    pub model: String,
    pub sessions: i64,
    pub assignments: i64,
    pub traces: i64,
    pub spans: i64,
    pub errors: i64,
    pub mean_latency_ms: Option<f64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

/// The assignments of config `$2` in project `$1`, of version `$3` only when it is not null.
/// Every query here binds exactly those three parameters.
const IN_SCOPE: &str = "project_id = $1 AND config_key = $2 AND ($3 IS NULL OR config_version = $3)";

impl Store {
    pub async fn variant_summaries(
        &self,
        project_id: i64,
        config_key: &str,
        version: Option<i64>,
    ) -> StoreResult<Vec<VariantSummaryRow>> {
        let sql = format!(
            "SELECT assigned_model, COUNT(DISTINCT session_id), CAST(SUM(seen_count) AS BIGINT) FROM model_sessions \
             WHERE {IN_SCOPE} GROUP BY assigned_model ORDER BY assigned_model"
        );
        let sessions = sqlx::query(&sql).bind(project_id).bind(config_key).bind(version).fetch_all(&self.read).await?;
        let mut out: Vec<VariantSummaryRow> = sessions
            .iter()
            .map(|r| {
                Ok(VariantSummaryRow {
                    model: r.try_get(0)?,
                    sessions: r.try_get(1)?,
                    assignments: r.try_get(2)?,
                    ..Default::default()
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;

        let sql = format!(
            "SELECT a.assigned_model, COUNT(DISTINCT s.trace_id), COUNT(*), \
                    CAST(SUM(CASE WHEN s.status = 'ERROR' THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(AVG(s.duration_ms) AS DOUBLE PRECISION), \
                    CAST(SUM(s.input_tokens) AS BIGINT), CAST(SUM(s.output_tokens) AS BIGINT) \
             FROM spans s JOIN (SELECT DISTINCT session_id, assigned_model FROM model_sessions WHERE {IN_SCOPE}) a \
                  ON a.session_id = s.session_id \
             WHERE s.project_id = $1 AND s.config_key = $2 GROUP BY a.assigned_model"
        );
        let traffic = sqlx::query(&sql).bind(project_id).bind(config_key).bind(version).fetch_all(&self.read).await?;
        for r in &traffic {
            let model: String = r.try_get(0)?;
            let Some(row) = out.iter_mut().find(|v| v.model == model) else { continue };
            row.traces = r.try_get(1)?;
            row.spans = r.try_get(2)?;
            row.errors = r.try_get(3)?;
            row.mean_latency_ms = r.try_get(4)?;
            row.input_tokens = r.try_get(5)?;
            row.output_tokens = r.try_get(6)?;
        }
        Ok(out)
    }

    /// (session, model) pairs of one config's assignments, for joining custom metrics.
    pub async fn session_models(
        &self,
        project_id: i64,
        config_key: &str,
        version: Option<i64>,
    ) -> StoreResult<Vec<(String, String)>> {
        let sql = format!("SELECT DISTINCT session_id, assigned_model FROM model_sessions WHERE {IN_SCOPE}");
        let rows = sqlx::query(&sql).bind(project_id).bind(config_key).bind(version).fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}
