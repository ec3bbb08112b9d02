//! Trace spans, from the Fallom SDK or any OpenTelemetry exporter. A batch is stored in one
//! transaction together with the drift samples taken from its LLM responses; a span that was
//! already stored (an exporter's retry) is skipped, so nothing is stored or sampled twice.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::log_records::{logged_contents, with_logged_content};
use super::span_attributes;
use super::{
    get_enum, sqlite_inserted_rows, values_placeholders, Backend, Params, Store, StoreResult, SQLITE_INSERT_ANSWER,
};
use crate::domain::{SpanSource, SpanStatus};
use crate::ingest::IngestOptions;
use crate::ingest::{NewSample, NewSpan, TokenUsage};

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
    pub resource_id: Option<i64>,
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

/// A trace's status: ERROR when any of its spans failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStatus {
    Ok,
    Error,
}

/// Filters for listing traces: session, config and customer are the trace's (first seen);
/// a model matches when any span used it; times are the trace's start.
#[derive(Debug, Default)]
pub struct SpanFilter {
    /// One trace (its own page reads its rollup row this way).
    pub trace_id: Option<String>,
    pub config_key: Option<String>,
    pub session_id: Option<String>,
    pub customer_id: Option<String>,
    pub model: Option<String>,
    pub status: Option<TraceStatus>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Keyset cursor: traces that started before (start_ms, trace_id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

pub(super) const SPAN_COLUMNS: &str =
    "id, trace_id, span_id, parent_span_id, source, session_id, customer_id, config_key, name, \
    kind, model, start_ms, end_ms, duration_ms, status, error_message, time_to_first_token_ms, is_streaming, \
    input_tokens, output_tokens, total_tokens, request_text, response_text, metadata, tags, prompt_key, \
    prompt_version, prompt_ab_test_key, prompt_variant_index, attributes, content_refs, sample_id, received_at, \
    resource_id";

/// The rollup rows a batch changes, one per trace, merged into `traces` with one upsert.
#[derive(Default)]
struct TraceRollups(std::collections::BTreeMap<String, TraceSummaryRow>);

/// Token counts of a trace's spans added up; a span without a count adds nothing, and the sum
/// saturates at `i64::MAX` (as the stored rollup does) instead of overflowing.
fn add_tokens(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

/// The upsert's new value of a token column: the stored and the incoming count added, NULL only
/// when both are NULL. The sum saturates at `i64::MAX`: a BIGINT addition that overflows fails
/// the statement on both backends (and with it the whole batch). Counts are never negative
/// (ingest bounds them, migration 0004 cleaned older rows), so only the upper end is checked,
/// and the check itself cannot overflow.
fn saturating_token_sum(column: &str) -> String {
    format!(
        "CASE WHEN traces.{column} IS NULL THEN excluded.{column} \
             WHEN excluded.{column} IS NULL THEN traces.{column} \
             WHEN traces.{column} > 9223372036854775807 - excluded.{column} THEN 9223372036854775807 \
             ELSE traces.{column} + excluded.{column} END"
    )
}

impl TraceRollups {
    fn add(&mut self, s: &NewSpan) {
        let row = self.0.entry(s.trace_id.clone()).or_insert_with(|| TraceSummaryRow {
            trace_id: s.trace_id.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            span_count: 0,
            error_count: 0,
            input_tokens: None,
            output_tokens: None,
            session_id: None,
            config_key: None,
            customer_id: None,
            root_name: None,
        });
        row.start_ms = row.start_ms.min(s.start_ms);
        row.end_ms = row.end_ms.max(s.end_ms);
        row.span_count += 1;
        row.error_count += i64::from(s.status == SpanStatus::Error);
        row.input_tokens = add_tokens(row.input_tokens, s.usage.input);
        row.output_tokens = add_tokens(row.output_tokens, s.usage.output);
        row.session_id = row.session_id.take().or_else(|| s.session_id.clone());
        row.config_key = row.config_key.take().or_else(|| s.config_key.clone());
        row.customer_id = row.customer_id.take().or_else(|| s.customer_id.clone());
        if s.parent_span_id.is_none() {
            row.root_name = Some(s.name.clone());
        }
    }

    /// Merges the batch into the stored rows. Rows go in trace-id order (the map's), so
    /// concurrent batches lock shared traces in the same order and cannot deadlock.
    /// `received_at` (the server's clock) becomes each trace's latest arrival time, the age
    /// retention prunes it by.
    async fn upsert(&self, tx: &mut AnyConnection, project_id: i64, received_at: i64) -> StoreResult<()> {
        const COLUMNS: usize = 13;
        // Well under SQLite's and Postgres's limits on parameters per statement.
        const ROWS_PER_STATEMENT: usize = 500;
        let rows: Vec<&TraceSummaryRow> = self.0.values().collect();
        let backend = Backend::of(tx);
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let values = values_placeholders(backend, chunk.len(), COLUMNS);
            let sql = format!(
                "INSERT INTO traces (project_id, trace_id, start_ms, end_ms, span_count, error_count, input_tokens, \
                    output_tokens, session_id, config_key, customer_id, root_name, received_at) VALUES {} \
                 ON CONFLICT (project_id, trace_id) DO UPDATE SET \
                    received_at = CASE WHEN excluded.received_at > traces.received_at THEN excluded.received_at ELSE traces.received_at END, \
                    start_ms = CASE WHEN excluded.start_ms < traces.start_ms THEN excluded.start_ms ELSE traces.start_ms END, \
                    end_ms = CASE WHEN excluded.end_ms > traces.end_ms THEN excluded.end_ms ELSE traces.end_ms END, \
                    span_count = traces.span_count + excluded.span_count, \
                    error_count = traces.error_count + excluded.error_count, \
                    input_tokens = {}, \
                    output_tokens = {}, \
                    session_id = COALESCE(traces.session_id, excluded.session_id), \
                    config_key = COALESCE(traces.config_key, excluded.config_key), \
                    customer_id = COALESCE(traces.customer_id, excluded.customer_id), \
                    root_name = COALESCE(excluded.root_name, traces.root_name)",
                values,
                saturating_token_sum("input_tokens"),
                saturating_token_sum("output_tokens"),
            );
            let mut query = sqlx::query(&sql);
            for t in chunk {
                query = query
                    .bind(project_id)
                    .bind(&t.trace_id)
                    .bind(t.start_ms)
                    .bind(t.end_ms)
                    .bind(t.span_count)
                    .bind(t.error_count)
                    .bind(t.input_tokens)
                    .bind(t.output_tokens)
                    .bind(t.session_id.as_deref())
                    .bind(t.config_key.as_deref())
                    .bind(t.customer_id.as_deref())
                    .bind(t.root_name.as_deref())
                    .bind(received_at);
            }
            query.execute(&mut *tx).await?;
        }
        Ok(())
    }
}

pub(super) fn json_column(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(super) fn span_from_row(r: &AnyRow) -> StoreResult<SpanRow> {
    let attributes = match json_column(r.try_get("attributes")?) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let request_text: Option<String> = r.try_get("request_text")?;
    let response_text: Option<String> = r.try_get("response_text")?;
    let content_refs: Option<String> = r.try_get("content_refs")?;
    let attributes = span_attributes::from_stored(
        attributes,
        content_refs.as_deref(),
        request_text.as_deref(),
        response_text.as_deref(),
    );
    let span = NewSpan {
        trace_id: r.try_get("trace_id")?,
        span_id: r.try_get("span_id")?,
        parent_span_id: r.try_get("parent_span_id")?,
        source: get_enum(r, "source")?,
        session_id: r.try_get("session_id")?,
        customer_id: r.try_get("customer_id")?,
        config_key: r.try_get("config_key")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        model: r.try_get("model")?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        status: get_enum(r, "status")?,
        error_message: r.try_get("error_message")?,
        time_to_first_token_ms: r.try_get("time_to_first_token_ms")?,
        is_streaming: r.try_get::<Option<i64>, _>("is_streaming")?.map(|v| v != 0),
        usage: TokenUsage {
            input: r.try_get("input_tokens")?,
            output: r.try_get("output_tokens")?,
            total: r.try_get("total_tokens")?,
        },
        request_text,
        response_text,
        metadata: json_column(r.try_get("metadata")?),
        tags: json_column(r.try_get("tags")?),
        prompt_key: r.try_get("prompt_key")?,
        prompt_version: r.try_get("prompt_version")?,
        prompt_ab_test_key: r.try_get("prompt_ab_test_key")?,
        prompt_variant_index: r.try_get("prompt_variant_index")?,
        attributes,
        resource: None,
        sample: None,
    };
    Ok(SpanRow {
        id: r.try_get("id")?,
        span,
        sample_id: r.try_get("sample_id")?,
        received_at: r.try_get("received_at")?,
        resource_id: r.try_get("resource_id")?,
    })
}

/// The id of a stored resource, storing it first if this project has not sent it before.
pub(super) async fn resource_id(
    tx: &mut AnyConnection,
    project_id: i64,
    attributes: &Map<String, Value>,
) -> StoreResult<i64> {
    let json = Value::Object(attributes.clone()).to_string();
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    sqlx::query(
        "INSERT INTO otel_resources (project_id, hash, attributes, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, hash) DO NOTHING",
    )
    .bind(project_id)
    .bind(&hash)
    .bind(&json)
    .bind(super::now_ms())
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query("SELECT id FROM otel_resources WHERE project_id = $1 AND hash = $2")
        .bind(project_id)
        .bind(&hash)
        .fetch_one(&mut *tx)
        .await?;
    Ok(row.try_get("id")?)
}

/// Stored resources by id, each read once however many spans or records share it.
pub(super) async fn resources_by_id(
    conn: &mut AnyConnection,
    project_id: i64,
    ids: impl IntoIterator<Item = i64>,
) -> StoreResult<HashMap<i64, Arc<Map<String, Value>>>> {
    let ids: std::collections::BTreeSet<i64> = ids.into_iter().collect();
    let mut resources = HashMap::new();
    for id in ids {
        let row = sqlx::query("SELECT attributes FROM otel_resources WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(Some(Value::Object(map))) = row.map(|r| json_column(r.try_get("attributes").ok().flatten())) {
            resources.insert(id, Arc::new(map));
        }
    }
    Ok(resources)
}

/// Columns of a span row, and rows per INSERT: 34 x 100 = 3,400 parameters, well under both
/// databases' limits.
const SPAN_COLUMNS_WRITTEN: usize = 34;
const SPAN_ROWS_PER_INSERT: usize = 100;

/// Inserts the spans (each pointing at its drift sample, if any) with multi-row statements,
/// skipping ones already stored; returns the new spans by (trace id, span id), each with the
/// sample its row points at.
///
/// Postgres learns which rows were new from `ON CONFLICT DO NOTHING RETURNING`: another
/// connection may be writing the same spans. On SQLite this transaction holds the only write
/// lock, so the new spans are known before the insert (one lookup for the stored ones, and the
/// first of any repeated in the chunk), and the insert answers with one row, not one per span
/// (see `sqlite_inserted_rows`).
async fn insert_span_rows<'s>(
    tx: &mut AnyConnection,
    project_id: i64,
    spans: &[&'s NewSpan],
    resource_ids: &[Option<i64>],
    sample_ids: &[Option<i64>],
    received_at: i64,
) -> StoreResult<HashMap<(&'s str, &'s str), Option<i64>>> {
    let backend = Backend::of(tx);
    let mut inserted = HashMap::with_capacity(spans.len());
    let rows: Vec<usize> = match backend {
        Backend::Postgres => (0..spans.len()).collect(),
        Backend::Sqlite => {
            let mut skip: HashSet<(&str, &str)> = stored_span_keys(tx, project_id, spans).await?;
            (0..spans.len()).filter(|&i| skip.insert((&spans[i].trace_id, &spans[i].span_id))).collect()
        }
    };
    for chunk in rows.chunks(SPAN_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO spans (project_id, trace_id, span_id, parent_span_id, source, session_id, customer_id, \
                config_key, name, kind, model, start_ms, end_ms, duration_ms, status, error_message, \
                time_to_first_token_ms, is_streaming, input_tokens, output_tokens, total_tokens, request_text, \
                response_text, metadata, tags, prompt_key, prompt_version, prompt_ab_test_key, \
                prompt_variant_index, attributes, content_refs, received_at, resource_id, sample_id) \
             VALUES {} {}",
            values_placeholders(backend, chunk.len(), SPAN_COLUMNS_WRITTEN),
            match backend {
                Backend::Postgres =>
                    "ON CONFLICT (project_id, trace_id, span_id) DO NOTHING RETURNING trace_id, span_id, sample_id",
                Backend::Sqlite => SQLITE_INSERT_ANSWER,
            }
        );
        let mut query = sqlx::query(&sql);
        for &i in chunk {
            let s = spans[i];
            let (attributes, content_refs) = span_attributes::to_stored(s);
            query = query
                .bind(project_id)
                .bind(&s.trace_id)
                .bind(&s.span_id)
                .bind(s.parent_span_id.as_deref())
                .bind(s.source.as_str())
                .bind(s.session_id.as_deref())
                .bind(s.customer_id.as_deref())
                .bind(s.config_key.as_deref())
                .bind(&s.name)
                .bind(s.kind.as_deref())
                .bind(s.model.as_deref())
                .bind(s.start_ms)
                .bind(s.end_ms)
                .bind(s.duration_ms)
                .bind(s.status.as_str())
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
                .bind(attributes)
                .bind(content_refs)
                .bind(received_at)
                .bind(resource_ids[i])
                .bind(sample_ids[i]);
        }
        match backend {
            Backend::Sqlite => {
                sqlite_inserted_rows(tx, query, chunk.len()).await?;
                for &i in chunk {
                    inserted.insert((spans[i].trace_id.as_str(), spans[i].span_id.as_str()), sample_ids[i]);
                }
            }
            Backend::Postgres => {
                let by_key: HashMap<(&str, &str), &NewSpan> = chunk
                    .iter()
                    .map(|&i| ((spans[i].trace_id.as_str(), spans[i].span_id.as_str()), spans[i]))
                    .collect();
                for row in query.fetch_all(&mut *tx).await? {
                    let (trace_id, span_id): (String, String) = (row.try_get("trace_id")?, row.try_get("span_id")?);
                    if let Some(s) = by_key.get(&(trace_id.as_str(), span_id.as_str())) {
                        inserted.insert((s.trace_id.as_str(), s.span_id.as_str()), row.try_get("sample_id")?);
                    }
                }
            }
        }
    }
    Ok(inserted)
}

/// The (trace id, span id) pairs among `spans` that the project has stored already: usually
/// none, so one short answer instead of a RETURNING row per span.
async fn stored_span_keys<'s>(
    tx: &mut AnyConnection,
    project_id: i64,
    spans: &[&'s NewSpan],
) -> StoreResult<HashSet<(&'s str, &'s str)>> {
    let mut stored = HashSet::new();
    for chunk in spans.chunks(SPAN_LOOKUP_CHUNK) {
        let mut params = Params::new(Backend::of(tx));
        let wanted = params.rows(chunk.len(), 2);
        // joining from the VALUES list lets SQLite probe the unique index per pair (an IN over
        // row values scanned the project's spans)
        let sql = format!(
            "SELECT s.trace_id, s.span_id FROM (VALUES {wanted}) AS wanted \
             JOIN spans s ON s.project_id = {} AND s.trace_id = wanted.column1 AND s.span_id = wanted.column2",
            params.next()
        );
        let mut query = sqlx::query(&sql);
        for s in chunk {
            query = query.bind(&s.trace_id).bind(&s.span_id);
        }
        for row in query.bind(project_id).fetch_all(&mut *tx).await? {
            let (trace_id, span_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            if let Some(s) = chunk.iter().find(|s| s.trace_id == trace_id && s.span_id == span_id) {
                stored.insert((s.trace_id.as_str(), s.span_id.as_str()));
            }
        }
    }
    Ok(stored)
}

/// Pairs per stored-span lookup: 2 x 250 parameters.
const SPAN_LOOKUP_CHUNK: usize = 250;

/// Deletes samples made in this transaction for spans that turned out to be stored already.
async fn delete_new_samples(tx: &mut AnyConnection, ids: &[i64]) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!("DELETE FROM samples WHERE id IN ({})", Params::new(Backend::of(tx)).list(ids.len()));
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// Spans written per transaction (measured in benches/spans.rs: a chunk of genai spans with
/// their samples holds the SQLite writer for tens of milliseconds).
const SPAN_WRITE_CHUNK: usize = 250;

impl Store {
    /// Stores new spans and their drift samples, [`SPAN_WRITE_CHUNK`] spans per transaction:
    /// a big export then never holds SQLite's one writer for long, so other requests get their
    /// turn between its chunks. A chunk that fails leaves the earlier ones stored; the client's
    /// retry of the export stores the rest, as already-stored spans are skipped. On SQLite the
    /// chunks of concurrent requests share commits (see `group_commit.rs`).
    pub async fn insert_spans(
        &self,
        project_id: i64,
        mut spans: Vec<NewSpan>,
        options: IngestOptions,
    ) -> StoreResult<SpansStored> {
        let mut outcome = SpansStored::default();
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(SPAN_WRITE_CHUNK));
            let chunk = std::mem::replace(&mut spans, rest);
            let part = match &self.group_commit {
                Some(queue) => queue.insert_spans(project_id, chunk, options).await?,
                None => {
                    let mut tx = self.begin_write().await?;
                    // benches/spans.rs reads this debug line for the writer's hold times
                    let held = std::time::Instant::now();
                    let part = self.write_span_chunk(&mut tx, project_id, &chunk, options).await?;
                    tx.commit().await?;
                    tracing::debug!(
                        spans = chunk.len(),
                        held_us = held.elapsed().as_micros() as u64,
                        "stored a span chunk"
                    );
                    part
                }
            };
            outcome.stored += part.stored;
            outcome.duplicates += part.duplicates;
            outcome.samples += part.samples;
        }
        Ok(outcome)
    }

    /// Writes one chunk of spans (and their samples and trace rollups) in the caller's
    /// transaction.
    pub(super) async fn write_span_chunk(
        &self,
        tx: &mut AnyConnection,
        project_id: i64,
        spans: &[NewSpan],
        options: IngestOptions,
    ) -> StoreResult<SpansStored> {
        // LLM calls whose content may have been logged before them (store::log_records)
        let awaits_logged_content = |s: &NewSpan| {
            options.capture_content
                && s.source == SpanSource::Otlp
                && s.sample.is_none()
                && s.kind.as_deref() == Some("llm")
        };
        let calls: Vec<(&str, &str)> =
            spans.iter().filter(|s| awaits_logged_content(s)).map(|s| (&*s.trace_id, &*s.span_id)).collect();
        self.lock_calls(tx, project_id, calls.iter().copied()).await?;
        // Content logged before its span: one lookup for the whole chunk, and such a span is
        // written once, with that content and its sample (not written, then updated twice).
        let mut logged =
            if calls.is_empty() { HashMap::new() } else { logged_contents(tx, project_id, &calls).await? };
        let joined: Vec<Cow<NewSpan>> = spans
            .iter()
            .map(|s| {
                let content = if awaits_logged_content(s) {
                    logged.remove(&(s.trace_id.clone(), s.span_id.clone()))
                } else {
                    None
                };
                match content {
                    Some(content) => Cow::Owned(with_logged_content(s, content, options.max_text_chars)),
                    None => Cow::Borrowed(s),
                }
            })
            .collect();
        let spans: Vec<&NewSpan> = joined.iter().map(|s| s.as_ref()).collect();
        // the spans of one resource block share one Arc: one lookup per block
        let mut resources: HashMap<usize, i64> = HashMap::new();
        let mut resource_ids = Vec::with_capacity(spans.len());
        for s in &spans {
            resource_ids.push(match &s.resource {
                Some(r) => match resources.get(&(Arc::as_ptr(r) as usize)) {
                    Some(id) => Some(*id),
                    None => {
                        let id = resource_id(tx, project_id, r).await?;
                        resources.insert(Arc::as_ptr(r) as usize, id);
                        Some(id)
                    }
                },
                None => None,
            });
        }
        let mut samples = self.sample_inserter();
        let mut outcome = SpansStored::default();
        let mut rollups = TraceRollups::default();
        // Drift samples first, so each new span row is written once, already pointing at its
        // sample: linking them afterwards wrote every span row, content and all, a second time.
        let contents: Vec<&NewSample> = spans.iter().filter_map(|s| s.sample.as_ref()).collect();
        let mut new_samples = samples.insert_many_in(tx, project_id, &contents).await?.into_iter();
        let sample_ids: Vec<Option<i64>> =
            spans.iter().map(|s| s.sample.as_ref().and_then(|_| new_samples.next())).collect();
        let mut inserted =
            insert_span_rows(tx, project_id, &spans, &resource_ids, &sample_ids, samples.received_at()).await?;
        // a span stored before (a retried export) or twice in this chunk keeps its first
        // sample: the samples made here for the copies are dropped again
        let linked: HashSet<i64> = inserted.values().flatten().copied().collect();
        let unlinked: Vec<i64> = sample_ids.iter().flatten().filter(|id| !linked.contains(id)).copied().collect();
        delete_new_samples(tx, &unlinked).await?;
        outcome.samples += linked.len();
        for s in spans {
            // a span id twice in one chunk: the first is stored, the second is a duplicate
            if inserted.remove(&(s.trace_id.as_str(), s.span_id.as_str())).is_none() {
                outcome.duplicates += 1;
                continue;
            }
            outcome.stored += 1;
            rollups.add(s);
        }
        rollups.upsert(tx, project_id, samples.received_at()).await?;
        Ok(outcome)
    }

    /// One trace's rollup row (its time range and span count), if the trace exists.
    pub async fn trace_summary(&self, project_id: i64, trace_id: &str) -> StoreResult<Option<TraceSummaryRow>> {
        let filter = SpanFilter { trace_id: Some(trace_id.to_string()), limit: 1, ..Default::default() };
        Ok(self.trace_summaries(project_id, &filter).await?.into_iter().next())
    }

    /// Traces matching the filter, newest first, from the per-trace rollup.
    pub async fn trace_summaries(&self, project_id: i64, f: &SpanFilter) -> StoreResult<Vec<TraceSummaryRow>> {
        // Conditions and their values, numbered in the order they are pushed.
        let mut conditions = vec!["t.project_id = $1".to_string()];
        let mut texts: Vec<&str> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        let mut next = 2;
        let mut param = || {
            next += 1;
            next - 1
        };
        for (column, value) in [
            ("t.trace_id", &f.trace_id),
            ("t.config_key", &f.config_key),
            ("t.session_id", &f.session_id),
            ("t.customer_id", &f.customer_id),
        ] {
            if let Some(v) = value {
                conditions.push(format!("{column} = ${}", param()));
                texts.push(v);
            }
        }
        if let Some(model) = &f.model {
            // With table statistics Postgres walks the newest traces and probes each through the
            // (project, trace, span) key when the model is common, and semi-joins from the
            // matching spans when it is rare; SQLite always probes.
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM spans s WHERE s.project_id = t.project_id AND s.trace_id = t.trace_id \
                 AND s.model = ${})",
                param()
            ));
            texts.push(model);
        }
        match f.status {
            Some(TraceStatus::Error) => conditions.push("t.error_count > 0".into()),
            Some(TraceStatus::Ok) => conditions.push("t.error_count = 0".into()),
            None => {}
        }
        let cursor_id = f.before.as_ref().map(|(_, id)| id.as_str());
        if cursor_id.is_some() {
            let (ms, id) = (param(), param());
            conditions.push(format!("(t.start_ms < ${ms} OR (t.start_ms = ${ms} AND t.trace_id < ${id}))"));
        }
        for (op, value) in [(">=", f.from_ms), ("<", f.to_ms)] {
            if let Some(v) = value {
                conditions.push(format!("t.start_ms {op} ${}", param()));
                ints.push(v);
            }
        }
        let sql = format!(
            "SELECT t.trace_id, t.start_ms, t.end_ms, t.span_count, t.error_count, t.input_tokens, t.output_tokens, \
                    t.session_id, t.config_key, t.customer_id, t.root_name \
             FROM traces t WHERE {} ORDER BY t.start_ms DESC, t.trace_id DESC LIMIT ${}",
            conditions.join(" AND "),
            param()
        );
        let mut query = sqlx::query(&sql).bind(project_id);
        for v in texts {
            query = query.bind(v);
        }
        if let (Some((ms, _)), Some(id)) = (&f.before, cursor_id) {
            query = query.bind(*ms).bind(id);
        }
        for v in ints {
            query = query.bind(v);
        }
        let rows = query.bind(f.limit).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(TraceSummaryRow {
                    trace_id: r.try_get("trace_id")?,
                    start_ms: r.try_get("start_ms")?,
                    end_ms: r.try_get("end_ms")?,
                    span_count: r.try_get("span_count")?,
                    error_count: r.try_get("error_count")?,
                    input_tokens: r.try_get("input_tokens")?,
                    output_tokens: r.try_get("output_tokens")?,
                    session_id: r.try_get("session_id")?,
                    config_key: r.try_get("config_key")?,
                    customer_id: r.try_get("customer_id")?,
                    root_name: r.try_get("root_name")?,
                })
            })
            .collect()
    }

    /// Every span of one trace, in start order.
    /// A page of a trace's spans in start order, after the span at (start_ms, row id) `after`.
    pub async fn trace_spans(
        &self,
        project_id: i64,
        trace_id: &str,
        limit: i64,
        after: Option<(i64, i64)>,
    ) -> StoreResult<Vec<SpanRow>> {
        let (after_start, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let sql = format!(
            "SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = $1 AND trace_id = $2 \
             AND (start_ms > $3 OR (start_ms = $3 AND id > $4)) ORDER BY start_ms, id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(project_id)
            .bind(trace_id)
            .bind(after_start)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        let mut spans = rows.iter().map(span_from_row).collect::<StoreResult<Vec<_>>>()?;
        let mut conn = self.read.acquire().await?;
        let resources = resources_by_id(&mut conn, project_id, spans.iter().filter_map(|s| s.resource_id)).await?;
        for s in &mut spans {
            s.span.resource = s.resource_id.and_then(|id| resources.get(&id).cloned());
        }
        Ok(spans)
    }
}
