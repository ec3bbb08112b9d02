//! Token usage summed by model, what costs are computed from (`crate::cost`). Costs are priced
//! when read, so a price change applies to past spans as well (docs/cost.md).

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
            // summed as DOUBLE PRECISION: cannot overflow on either backend, and prices are
            // applied in floating point anyway
            let sql = format!(
                "SELECT trace_id, model, SUM(CAST(input_tokens AS DOUBLE PRECISION)) AS input_tokens, \
                        SUM(CAST(output_tokens AS DOUBLE PRECISION)) AS output_tokens, COUNT(*) AS calls \
                 FROM spans WHERE project_id = {project} AND trace_id IN ({list}) \
                   AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL) \
                 GROUP BY trace_id, model"
            );
            let mut query = sqlx::query(&sql).bind(project_id);
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&self.read).await? {
                out.push(ModelUsageRow {
                    group: r.try_get("trace_id")?,
                    model: r.try_get("model")?,
                    input_tokens: r.try_get("input_tokens")?,
                    output_tokens: r.try_get("output_tokens")?,
                    calls: r.try_get("calls")?,
                });
            }
        }
        Ok(out)
    }
}
