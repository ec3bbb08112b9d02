//! Trace spans, from the Fallom SDK or any OpenTelemetry exporter. A batch is stored in one
//! transaction together with the drift samples taken from its LLM responses; a span that was
//! already stored (an exporter's retry) is skipped, so nothing is stored or sampled twice.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::logs::{NewLog, SampleInserter};
use super::Store;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenUsage {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub total: Option<i64>,
}

/// A validated span, ready to store. `sample` is the drift sample its response becomes.
#[derive(Debug, Clone, Default)]
pub struct NewSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// "fallom" or "otlp": which wire format it came in.
    pub source: &'static str,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub config_key: Option<String>,
    pub name: String,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_ms: i64,
    pub status: String,
    pub error_message: Option<String>,
    pub time_to_first_token_ms: Option<i64>,
    pub is_streaming: Option<bool>,
    pub usage: TokenUsage,
    pub request_text: Option<String>,
    pub response_text: Option<String>,
    pub metadata: Option<Value>,
    pub tags: Option<Value>,
    pub prompt_key: Option<String>,
    pub prompt_version: Option<i64>,
    pub prompt_ab_test_key: Option<String>,
    pub prompt_variant_index: Option<i64>,
    pub attributes: Map<String, Value>,
    pub sample: Option<NewLog>,
}

/// What a batch insert did.
#[derive(Debug, Default)]
pub struct SpansStored {
    pub stored: usize,
    pub duplicates: usize,
    pub samples: usize,
}

/// A stored span as the dashboard reads it.
#[derive(Debug, Clone)]
pub struct SpanRow {
    pub id: i64,
    pub span: NewSpan,
    pub sample_id: Option<i64>,
    pub received_at: i64,
}

/// One trace in a list: its spans' aggregates.
#[derive(Debug, Clone)]
pub struct TraceSummaryRow {
    pub trace_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub session_id: Option<String>,
    pub config_key: Option<String>,
    pub customer_id: Option<String>,
    pub root_name: Option<String>,
}

/// Filters for listing traces; a trace is listed when any of its spans match.
#[derive(Debug, Default)]
pub struct SpanFilter {
    pub config_key: Option<String>,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Keyset cursor: traces that started before (start_ms, trace_id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

const SPAN_COLUMNS: &str = "id, trace_id, span_id, parent_span_id, source, session_id, customer_id, config_key, name, \
    kind, model, start_ms, end_ms, duration_ms, status, error_message, time_to_first_token_ms, is_streaming, \
    input_tokens, output_tokens, total_tokens, request_text, response_text, metadata, tags, prompt_key, \
    prompt_version, prompt_ab_test_key, prompt_variant_index, attributes, sample_id, received_at";

fn json_column(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn source_name(source: &str) -> &'static str {
    if source == "fallom" {
        "fallom"
    } else {
        "otlp"
    }
}

fn span_from_row(r: &AnyRow) -> Result<SpanRow, sqlx::Error> {
    let attributes = match json_column(r.try_get(29)?) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let span = NewSpan {
        trace_id: r.try_get(1)?,
        span_id: r.try_get(2)?,
        parent_span_id: r.try_get(3)?,
        source: source_name(&r.try_get::<String, _>(4)?),
        session_id: r.try_get(5)?,
        customer_id: r.try_get(6)?,
        config_key: r.try_get(7)?,
        name: r.try_get(8)?,
        kind: r.try_get(9)?,
        model: r.try_get(10)?,
        start_ms: r.try_get(11)?,
        end_ms: r.try_get(12)?,
        duration_ms: r.try_get(13)?,
        status: r.try_get(14)?,
        error_message: r.try_get(15)?,
        time_to_first_token_ms: r.try_get(16)?,
        is_streaming: r.try_get::<Option<i64>, _>(17)?.map(|v| v != 0),
        usage: TokenUsage { input: r.try_get(18)?, output: r.try_get(19)?, total: r.try_get(20)? },
        request_text: r.try_get(21)?,
        response_text: r.try_get(22)?,
        metadata: json_column(r.try_get(23)?),
        tags: json_column(r.try_get(24)?),
        prompt_key: r.try_get(25)?,
        prompt_version: r.try_get(26)?,
        prompt_ab_test_key: r.try_get(27)?,
        prompt_variant_index: r.try_get(28)?,
        attributes,
        sample: None,
    };
    Ok(SpanRow { id: r.try_get(0)?, span, sample_id: r.try_get(30)?, received_at: r.try_get(31)? })
}

impl Store {
    /// Stores new spans and their drift samples in one transaction.
    pub async fn insert_spans(&self, project_id: i64, spans: &[NewSpan]) -> Result<SpansStored, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let mut samples = SampleInserter::new();
        let mut outcome = SpansStored::default();
        for s in spans {
            let inserted = sqlx::query(
                "INSERT INTO spans (project_id, trace_id, span_id, parent_span_id, source, session_id, customer_id, \
                    config_key, name, kind, model, start_ms, end_ms, duration_ms, status, error_message, \
                    time_to_first_token_ms, is_streaming, input_tokens, output_tokens, total_tokens, request_text, \
                    response_text, metadata, tags, prompt_key, prompt_version, prompt_ab_test_key, \
                    prompt_variant_index, attributes, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
                    $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31) \
                 ON CONFLICT (project_id, trace_id, span_id) DO NOTHING RETURNING id",
            )
            .bind(project_id)
            .bind(&s.trace_id)
            .bind(&s.span_id)
            .bind(s.parent_span_id.as_deref())
            .bind(s.source)
            .bind(s.session_id.as_deref())
            .bind(s.customer_id.as_deref())
            .bind(s.config_key.as_deref())
            .bind(&s.name)
            .bind(s.kind.as_deref())
            .bind(s.model.as_deref())
            .bind(s.start_ms)
            .bind(s.end_ms)
            .bind(s.duration_ms)
            .bind(&s.status)
            .bind(s.error_message.as_deref())
            .bind(s.time_to_first_token_ms)
            .bind(s.is_streaming.map(i64::from))
            .bind(s.usage.input)
            .bind(s.usage.output)
            .bind(s.usage.total)
            .bind(s.request_text.as_deref())
            .bind(s.response_text.as_deref())
            .bind(s.metadata.as_ref().map(Value::to_string))
            .bind(s.tags.as_ref().map(Value::to_string))
            .bind(s.prompt_key.as_deref())
            .bind(s.prompt_version)
            .bind(s.prompt_ab_test_key.as_deref())
            .bind(s.prompt_variant_index)
            .bind(Value::Object(s.attributes.clone()).to_string())
            .bind(samples.received_at())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = inserted else {
                outcome.duplicates += 1;
                continue;
            };
            outcome.stored += 1;
            if let Some(sample) = &s.sample {
                let span_row_id: i64 = row.try_get(0)?;
                let sample_id = samples.insert(&mut tx, project_id, sample).await?;
                sqlx::query("UPDATE spans SET sample_id = $1 WHERE id = $2")
                    .bind(sample_id)
                    .bind(span_row_id)
                    .execute(&mut *tx)
                    .await?;
                outcome.samples += 1;
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Traces with at least one span matching the filter, newest first.
    pub async fn trace_summaries(&self, project_id: i64, f: &SpanFilter) -> Result<Vec<TraceSummaryRow>, sqlx::Error> {
        let mut conditions = vec!["project_id = $1".to_string()];
        let mut text_binds: Vec<&str> = Vec::new();
        let mut int_binds: Vec<i64> = Vec::new();
        // Text parameters come first ($2..), then integers; the numbering follows that order.
        for (column, value) in [
            ("config_key", &f.config_key),
            ("session_id", &f.session_id),
            ("customer_id", &f.customer_id),
            ("model", &f.model),
            ("status", &f.status),
        ] {
            if let Some(v) = value {
                text_binds.push(v);
                conditions.push(format!("{column} = ${}", 1 + text_binds.len()));
            }
        }
        let first_int = 2 + text_binds.len();
        for (op, value) in [(">=", f.from_ms), ("<", f.to_ms)] {
            if let Some(v) = value {
                int_binds.push(v);
                conditions.push(format!("start_ms {op} ${}", first_int + int_binds.len() - 1));
            }
        }
        let next = first_int + int_binds.len();
        let (having, limit_param) = match &f.before {
            Some(_) => (
                format!("HAVING MIN(start_ms) < ${0} OR (MIN(start_ms) = ${0} AND trace_id < ${1})", next, next + 1),
                next + 2,
            ),
            None => (String::new(), next),
        };
        let sql = format!(
            "SELECT trace_id, MIN(start_ms) AS started, MAX(end_ms), COUNT(*), \
                    CAST(SUM(CASE WHEN status = 'ERROR' THEN 1 ELSE 0 END) AS BIGINT), \
                    CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
                    MAX(session_id), MAX(config_key), MAX(customer_id), \
                    MAX(CASE WHEN parent_span_id IS NULL THEN name END) \
             FROM spans WHERE trace_id IN (SELECT trace_id FROM spans WHERE {}) AND project_id = $1 \
             GROUP BY trace_id {having} ORDER BY started DESC, trace_id DESC LIMIT ${limit_param}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(&sql).bind(project_id);
        for v in text_binds {
            query = query.bind(v);
        }
        for v in int_binds {
            query = query.bind(v);
        }
        if let Some((ms, id)) = &f.before {
            query = query.bind(*ms).bind(id.as_str());
        }
        let rows = query.bind(f.limit).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(TraceSummaryRow {
                    trace_id: r.try_get(0)?,
                    start_ms: r.try_get(1)?,
                    end_ms: r.try_get(2)?,
                    span_count: r.try_get(3)?,
                    error_count: r.try_get(4)?,
                    input_tokens: r.try_get(5)?,
                    output_tokens: r.try_get(6)?,
                    session_id: r.try_get(7)?,
                    config_key: r.try_get(8)?,
                    customer_id: r.try_get(9)?,
                    root_name: r.try_get(10)?,
                })
            })
            .collect()
    }

    /// Every span of one trace, in start order.
    pub async fn trace_spans(&self, project_id: i64, trace_id: &str) -> Result<Vec<SpanRow>, sqlx::Error> {
        let sql =
            format!("SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = $1 AND trace_id = $2 ORDER BY start_ms, id");
        let rows = sqlx::query(&sql).bind(project_id).bind(trace_id).fetch_all(&self.read).await?;
        rows.iter().map(span_from_row).collect()
    }
}
