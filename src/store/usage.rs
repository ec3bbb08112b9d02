//! Token usage summed by model, what costs are computed from (`crate::cost`). Costs are priced
//! when read, so a price change applies to past spans as well (docs/cost.md).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Params, Store, StoreResult};

/// Token sums of one model's calls within a group (a trace, or a model-config variant).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelUsageRow {
    /// The trace id, or the variant's model.
    pub group: String,
    pub model: Option<String>,
    /// Sums of the calls' counts; None when no call reported one.
    pub input_tokens: Option<f64>,
    pub output_tokens: Option<f64>,
    /// Spans with any token count.
    pub calls: i64,
}

/// The token sums and call count of spans `s` with usage, summed as DOUBLE PRECISION: cannot
/// overflow on either backend, and prices are applied in floating point anyway. A query
/// selects `{group} AS usage_group, s.model, {USAGE_SUMS}` and filters on [`HAS_USAGE`].
pub(super) const USAGE_SUMS: &str = "SUM(CAST(s.input_tokens AS DOUBLE PRECISION)) AS input_tokens, \
     SUM(CAST(s.output_tokens AS DOUBLE PRECISION)) AS output_tokens, COUNT(*) AS calls";
pub(super) const HAS_USAGE: &str = "(s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL)";

/// One row of a query built from [`USAGE_SUMS`].
pub(super) fn usage_from_row(r: &AnyRow) -> StoreResult<ModelUsageRow> {
    Ok(ModelUsageRow {
        group: r.try_get("usage_group")?,
        model: r.try_get("model")?,
        input_tokens: r.try_get("input_tokens")?,
        output_tokens: r.try_get("output_tokens")?,
        calls: r.try_get("calls")?,
    })
}

/// Traces per statement: a page of traces is at most this long.
const TRACES_PER_STATEMENT: usize = 500;

impl Store {
    /// The token usage of the traces' spans, by trace and model (spans with no token count are
    /// left out). Reads the spans through their `(project_id, trace_id, span_id)` key.
    pub async fn usage_by_trace_and_model(
        &self,
        project_id: i64,
        trace_ids: &[&str],
    ) -> StoreResult<Vec<ModelUsageRow>> {
        let mut out = Vec::new();
        for chunk in trace_ids.chunks(TRACES_PER_STATEMENT) {
            let mut params = Params::new(self.backend);
            let project = params.next();
            let list = params.list(chunk.len());
            let sql = format!(
                "SELECT s.trace_id AS usage_group, s.model, {USAGE_SUMS} \
                 FROM spans s WHERE s.project_id = {project} AND s.trace_id IN ({list}) AND {HAS_USAGE} \
                 GROUP BY s.trace_id, s.model"
            );
            let mut query = sqlx::query(&sql).bind(project_id);
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&self.read).await? {
                out.push(usage_from_row(&r)?);
            }
        }
        Ok(out)
    }
}
