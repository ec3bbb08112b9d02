//! A model config's A/B summary: per assigned model, the sessions, their traces, latency,
//! tokens and errors. A span counts for a variant when its session was assigned that model
//! under the config (the recorded `/sessions` assignments are the source of truth, not the
//! model name a provider echoes back, which often carries a date suffix).

use sqlx::Row;

use super::usage::{usage_from_row, HAS_USAGE, USAGE_SUMS};
use super::{ModelUsageRow, Store, StoreResult};

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

/// `SUM(column)` of a BIGINT column as a BIGINT that saturates at `i64::MAX` instead of failing:
/// Postgres sums BIGINT as NUMERIC, whose cast back to BIGINT errors out of range, and SQLite's
/// integer SUM raises "integer overflow". Summing as DOUBLE PRECISION cannot fail on either and
/// is exact up to 2^53 (far beyond any real token count); a sum from 9.2e18 up (just below
/// `i64::MAX`, where the double still converts safely) reads as `i64::MAX`, and likewise at the
/// negative end, so not even a stored negative count can make the read fail. Both CASE branches
/// are BIGINT, so the Any driver decodes an `i64` on both backends; with no non-null values the
/// sum stays NULL.
fn saturating_sum(column: &str) -> String {
    let sum = format!("SUM(CAST({column} AS DOUBLE PRECISION))");
    format!(
        "CASE WHEN {sum} >= CAST(9.2e18 AS DOUBLE PRECISION) THEN CAST(9223372036854775807 AS BIGINT) \
              WHEN {sum} <= CAST(-9.2e18 AS DOUBLE PRECISION) THEN CAST(-9223372036854775807 AS BIGINT) \
              ELSE CAST({sum} AS BIGINT) END"
    )
}

impl Store {
    pub async fn variant_summaries(
        &self,
        project_id: i64,
        config_key: &str,
        version: Option<i64>,
    ) -> StoreResult<Vec<VariantSummaryRow>> {
        // seen_count grows by one per reported assignment, so its sum cannot come near i64::MAX;
        // the cast only turns Postgres's NUMERIC sum back into BIGINT.
        let sql = format!(
            "SELECT assigned_model, COUNT(DISTINCT session_id) AS sessions, \
                    CAST(SUM(seen_count) AS BIGINT) AS assignments \
             FROM model_sessions WHERE {IN_SCOPE} GROUP BY assigned_model ORDER BY assigned_model"
        );
        let sessions = sqlx::query(&sql).bind(project_id).bind(config_key).bind(version).fetch_all(&self.read).await?;
        let mut out: Vec<VariantSummaryRow> = sessions
            .iter()
            .map(|r| {
                Ok(VariantSummaryRow {
                    model: r.try_get("assigned_model")?,
                    sessions: r.try_get("sessions")?,
                    assignments: r.try_get("assignments")?,
                    ..Default::default()
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;

        // Counts are BIGINT on both backends and bounded by the number of rows. AVG cannot fail
        // either: Postgres averages BIGINT as NUMERIC (within the values' range) and SQLite's
        // AVG is floating point and never raises an overflow.
        let sql = format!(
            "SELECT a.assigned_model, COUNT(DISTINCT s.trace_id) AS traces, COUNT(*) AS spans, \
                    COUNT(CASE WHEN s.status = 'ERROR' THEN 1 END) AS errors, \
                    CAST(AVG(s.duration_ms) AS DOUBLE PRECISION) AS mean_latency_ms, \
                    {} AS input_tokens, {} AS output_tokens \
             FROM spans s JOIN (SELECT DISTINCT session_id, assigned_model FROM model_sessions WHERE {IN_SCOPE}) a \
                  ON a.session_id = s.session_id \
             WHERE s.project_id = $1 AND s.config_key = $2 GROUP BY a.assigned_model",
            saturating_sum("s.input_tokens"),
            saturating_sum("s.output_tokens"),
        );
        let traffic = sqlx::query(&sql).bind(project_id).bind(config_key).bind(version).fetch_all(&self.read).await?;
        for r in &traffic {
            let model: String = r.try_get("assigned_model")?;
            let Some(row) = out.iter_mut().find(|v| v.model == model) else { continue };
            row.traces = r.try_get("traces")?;
            row.spans = r.try_get("spans")?;
            row.errors = r.try_get("errors")?;
            row.mean_latency_ms = r.try_get("mean_latency_ms")?;
            row.input_tokens = r.try_get("input_tokens")?;
            row.output_tokens = r.try_get("output_tokens")?;
        }
        Ok(out)
    }

    /// The token usage of the spans of sessions assigned each variant (the assigned model), by
    /// the model each span reported: what the variants' costs are priced from.
    pub async fn usage_by_variant_and_model(
        &self,
        project_id: i64,
        config_key: &str,
        version: Option<i64>,
    ) -> StoreResult<Vec<ModelUsageRow>> {
        let sql = format!(
            "SELECT a.assigned_model AS usage_group, s.model, {USAGE_SUMS} \
             FROM spans s JOIN (SELECT DISTINCT session_id, assigned_model FROM model_sessions WHERE {IN_SCOPE}) a \
                  ON a.session_id = s.session_id \
             WHERE s.project_id = $1 AND s.config_key = $2 AND {HAS_USAGE} \
             GROUP BY a.assigned_model, s.model"
        );
        let rows = sqlx::query(&sql).bind(project_id).bind(config_key).bind(version).fetch_all(&self.read).await?;
        rows.iter().map(usage_from_row).collect()
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
        rows.iter().map(|r| Ok((r.try_get("session_id")?, r.try_get("assigned_model")?))).collect()
    }
}
