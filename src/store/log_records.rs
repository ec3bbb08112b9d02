//! OTLP log records, and the join that turns GenAI content events into an LLM call's drift
//! sample. A call's span and the log records with its messages arrive in either order, in
//! different requests, possibly minutes apart; whichever comes second finds the other here and
//! takes the sample, so each call gets exactly one:
//! - the span path looks up stored content records when a new LLM span brings no content;
//! - the logs path looks up the stored span when new content records arrive for it;
//! - a sample is attached only to a span that has none (`sample_id IS NULL`), and the two
//!   paths are serialised per call: on SQLite every write transaction already holds the one
//!   writer, on Postgres each takes a transaction-scoped advisory lock per call, all of them
//!   in key order before touching any row (so two transactions cannot deadlock on them).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::new_samples::SampleInserter;
use super::spans::{json_column, resource_id, resources_by_id, span_from_row, SPAN_COLUMNS};
use super::{Backend, Params, Store, StoreError, StoreResult};
use crate::ingest::{sample_of, IngestOptions, NewLogRecord, NewSample, NewSpan};

/// What a log export did.
#[derive(Debug, Default)]
pub struct LogRecordsStored {
    pub stored: usize,
    pub duplicates: usize,
    /// Drift samples taken from content joined to an already stored span.
    pub samples: usize,
}

/// A stored log record as the trace view reads it.
#[derive(Debug, Clone)]
pub struct LogRecordRow {
    pub id: i64,
    pub record: NewLogRecord,
    pub received_at: i64,
    /// The stored resource `record.resource` was read from.
    pub resource_id: Option<i64>,
}

/// Records written per transaction, as for spans: a big export never holds SQLite's one writer
/// for long.
const LOG_WRITE_CHUNK: usize = 250;

/// The advisory-lock key of one LLM call in one project.
fn call_lock_key(project_id: i64, trace_id: &str, span_id: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(project_id.to_le_bytes())
        .chain_update(trace_id.as_bytes())
        .chain_update([0])
        .chain_update(span_id.as_bytes())
        .finalize();
    i64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
}

/// A call's content as found in its log records: (request, response).
pub(super) type LoggedContent = (Option<String>, Option<String>);

/// Trace ids per lookup statement, well under both backends' parameter limits.
///
/// Lookups by trace id are planned afresh each time (not cached): Postgres switches a cached
/// statement to a generic plan after five runs, and one made while the table was nearly empty
/// read every row of the project (130-180 ms each once the table had grown, against 0.4 ms
/// through the trace index), until autovacuum's next analyse. Their IN lists vary in length
/// anyway, so cached copies would rarely be reused.
const TRACES_PER_LOOKUP: usize = 500;

/// The content stored in log records for each of these calls that has any: the first request
/// found and every response, in time order (as `decode::content::genai_event_content` reads
/// events). One statement per [`TRACES_PER_LOOKUP`] traces, however many calls.
pub(super) async fn logged_contents(
    tx: &mut AnyConnection,
    project_id: i64,
    calls: &[(&str, &str)],
) -> StoreResult<HashMap<(String, String), LoggedContent>> {
    let wanted: BTreeSet<(&str, &str)> = calls.iter().copied().collect();
    let traces: Vec<&str> = wanted.iter().map(|(t, _)| *t).collect::<BTreeSet<_>>().into_iter().collect();
    let mut found: HashMap<(String, String), LoggedContent> = HashMap::new();
    for chunk in traces.chunks(TRACES_PER_LOOKUP) {
        let mut params = Params::new(Backend::of(tx));
        let sql = format!(
            "SELECT trace_id, span_id, request_text, response_text FROM log_records \
             WHERE project_id = {} AND trace_id IN ({}) AND span_id IS NOT NULL \
               AND (request_text IS NOT NULL OR response_text IS NOT NULL) ORDER BY time_ms, id",
            params.next(),
            params.list(chunk.len())
        );
        // not cached (see TRACES_PER_LOOKUP)
        let mut query = sqlx::query(&sql).persistent(false).bind(project_id);
        for trace_id in chunk {
            query = query.bind(*trace_id);
        }
        for row in query.fetch_all(&mut *tx).await? {
            let call: (String, String) = (row.try_get("trace_id")?, row.try_get("span_id")?);
            if !wanted.contains(&(call.0.as_str(), call.1.as_str())) {
                continue;
            }
            let (request, response) = found.entry(call).or_default();
            if request.is_none() {
                *request = row.try_get("request_text")?;
            }
            if let Some(text) = row.try_get::<Option<String>, _>("response_text")? {
                match response {
                    Some(joined) => {
                        joined.push('\n');
                        joined.push_str(&text);
                    }
                    None => *response = Some(text),
                }
            }
        }
    }
    Ok(found)
}

/// A new LLM span without content of its own whose content was logged before it: the span as
/// it is stored, with that content and the sample it gives. The caller holds the call lock.
pub(super) fn with_logged_content(
    span: &NewSpan,
    (request, response): LoggedContent,
    max_text_chars: usize,
) -> NewSpan {
    let mut joined = span.clone();
    joined.request_text = request;
    joined.response_text = response;
    joined.sample = sample_of(&joined, max_text_chars);
    joined
}

impl Store {
    /// Serialises this transaction with any other that joins content to the same calls (see
    /// the module notes). SQLite needs nothing: a write transaction holds the only writer.
    pub(super) async fn lock_calls<'a>(
        &self,
        tx: &mut AnyConnection,
        project_id: i64,
        calls: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> StoreResult<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        let keys: BTreeSet<i64> = calls.into_iter().map(|(t, s)| call_lock_key(project_id, t, s)).collect();
        if keys.is_empty() {
            return Ok(());
        }
        // One statement for all keys, taken in key order: PostgreSQL evaluates volatile
        // functions in the select list after the ORDER BY sort. The keys are numbers computed
        // here, so they are written into the statement. The outer count gives the Any driver a
        // column type it reads (`pg_advisory_xact_lock` returns `void`).
        let list: Vec<String> = keys.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT COUNT(*) AS locked FROM (SELECT pg_advisory_xact_lock(k) FROM \
             unnest(ARRAY[{}]::bigint[]) AS k ORDER BY k) AS l",
            list.join(", ")
        );
        sqlx::query(&sql).execute(&mut *tx).await?;
        Ok(())
    }

    /// Stores log records, [`LOG_WRITE_CHUNK`] per transaction, joining new content records to
    /// their already stored spans. A chunk that fails leaves the earlier ones stored; the
    /// exporter's retry stores the rest, as stored records are skipped.
    pub async fn insert_log_records(
        &self,
        project_id: i64,
        records: &[NewLogRecord],
        options: IngestOptions,
    ) -> StoreResult<LogRecordsStored> {
        let mut outcome = LogRecordsStored::default();
        for chunk in records.chunks(LOG_WRITE_CHUNK) {
            let part = self.insert_log_chunk(project_id, chunk, options).await?;
            outcome.stored += part.stored;
            outcome.duplicates += part.duplicates;
            outcome.samples += part.samples;
        }
        Ok(outcome)
    }

    async fn insert_log_chunk(
        &self,
        project_id: i64,
        records: &[NewLogRecord],
        options: IngestOptions,
    ) -> StoreResult<LogRecordsStored> {
        let mut tx = self.begin_write().await?;
        let held = std::time::Instant::now();
        self.lock_calls(&mut tx, project_id, records.iter().filter_map(NewLogRecord::call)).await?;
        let mut resources: HashMap<usize, i64> = HashMap::new();
        let mut samples = self.sample_inserter();
        let mut outcome = LogRecordsStored::default();
        let mut calls_with_new_content: BTreeSet<(&str, &str)> = BTreeSet::new();
        for r in records {
            let resource = match &r.resource {
                Some(attributes) => {
                    let shared = Arc::as_ptr(attributes) as usize;
                    match resources.get(&shared) {
                        Some(id) => Some(*id),
                        None => {
                            let id = resource_id(&mut tx, project_id, attributes).await?;
                            resources.insert(shared, id);
                            Some(id)
                        }
                    }
                }
                None => None,
            };
            let inserted = sqlx::query(
                "INSERT INTO log_records (project_id, trace_id, span_id, time_ms, severity_number, severity_text, \
                    event_name, body, attributes, scope_name, resource_id, request_text, response_text, \
                    content_hash, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (project_id, content_hash) DO NOTHING RETURNING id",
            )
            .bind(project_id)
            .bind(r.trace_id.as_deref())
            .bind(r.span_id.as_deref())
            .bind(r.time_ms)
            .bind(r.severity_number)
            .bind(r.severity_text.as_deref())
            .bind(r.event_name.as_deref())
            .bind(r.body.as_ref().map(Value::to_string))
            .bind(Value::Object(r.attributes.clone()).to_string())
            .bind(r.scope_name.as_deref())
            .bind(resource)
            .bind(r.request_text.as_deref())
            .bind(r.response_text.as_deref())
            .bind(&r.content_hash)
            .bind(samples.received_at())
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                outcome.duplicates += 1;
                continue;
            }
            outcome.stored += 1;
            calls_with_new_content.extend(r.call());
        }
        if options.capture_content && !calls_with_new_content.is_empty() {
            outcome.samples +=
                join_to_stored_spans(&mut tx, &mut samples, project_id, &calls_with_new_content, options).await?;
        }
        tx.commit().await?;
        tracing::debug!(records = records.len(), held_us = held.elapsed().as_micros() as u64, "stored a log chunk");
        Ok(outcome)
    }

    /// A page of a trace's log records in time order, after the record at (time_ms, row id).
    pub async fn trace_log_records(
        &self,
        project_id: i64,
        trace_id: &str,
        limit: i64,
        after: Option<(i64, i64)>,
    ) -> StoreResult<Vec<LogRecordRow>> {
        let (after_time, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let rows = sqlx::query(
            "SELECT id, trace_id, span_id, time_ms, severity_number, severity_text, event_name, body, attributes, \
                    scope_name, resource_id, request_text, response_text, content_hash, received_at \
             FROM log_records WHERE project_id = $1 AND trace_id = $2 \
               AND (time_ms > $3 OR (time_ms = $3 AND id > $4)) ORDER BY time_ms, id LIMIT $5",
        )
        .bind(project_id)
        .bind(trace_id)
        .bind(after_time)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let resource_ids: Vec<Option<i64>> = rows.iter().map(|r| r.try_get("resource_id")).collect::<Result<_, _>>()?;
        let mut conn = self.read.acquire().await?;
        let resources = resources_by_id(&mut conn, project_id, resource_ids.iter().flatten().copied()).await?;
        rows.iter()
            .zip(resource_ids)
            .map(|(row, resource_id)| {
                let mut record = log_record_from_row(row)?;
                record.record.resource = resource_id.and_then(|id| resources.get(&id).cloned());
                record.resource_id = resource_id;
                Ok(record)
            })
            .collect()
    }

    /// How many log records a trace has.
    pub async fn trace_log_record_count(&self, project_id: i64, trace_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM log_records WHERE project_id = $1 AND trace_id = $2")
            .bind(project_id)
            .bind(trace_id)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("n")?)
    }
}

fn log_record_from_row(r: &AnyRow) -> StoreResult<LogRecordRow> {
    Ok(LogRecordRow {
        id: r.try_get("id")?,
        record: NewLogRecord {
            trace_id: r.try_get("trace_id")?,
            span_id: r.try_get("span_id")?,
            time_ms: r.try_get("time_ms")?,
            severity_number: r.try_get("severity_number")?,
            severity_text: r.try_get("severity_text")?,
            event_name: r.try_get("event_name")?,
            body: json_column(r.try_get("body")?),
            attributes: match json_column(r.try_get("attributes")?) {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            },
            scope_name: r.try_get("scope_name")?,
            resource: None,
            request_text: r.try_get("request_text")?,
            response_text: r.try_get("response_text")?,
            content_hash: r.try_get("content_hash")?,
        },
        received_at: r.try_get("received_at")?,
        resource_id: None,
    })
}

/// Fills a span's content from joined log records where the span has none of its own.
async fn set_span_content(
    tx: &mut AnyConnection,
    span_row_id: i64,
    request: Option<&str>,
    response: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE spans SET request_text = COALESCE(request_text, $1), response_text = COALESCE(response_text, $2) \
         WHERE id = $3",
    )
    .bind(request)
    .bind(response)
    .bind(span_row_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Links a new drift sample to its span, only if the span has none yet. Under the call lock the
/// condition always holds; if it ever did not, the transaction fails rather than leave a second
/// sample for one call.
async fn attach_sample(
    tx: &mut AnyConnection,
    samples: &mut SampleInserter,
    project_id: i64,
    span_row_id: i64,
    sample: &NewSample,
) -> StoreResult<()> {
    let sample_id = samples.insert_many_in(tx, project_id, &[sample]).await?[0];
    let linked = sqlx::query("UPDATE spans SET sample_id = $1 WHERE id = $2 AND sample_id IS NULL")
        .bind(sample_id)
        .bind(span_row_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if linked != 1 {
        return Err(StoreError::Other(format!("span {span_row_id} already had a drift sample")));
    }
    Ok(())
}

/// New content records for calls whose spans may already be stored: each stored LLM span takes
/// the content it lacks and, if it has no sample yet, the sample. One lookup for the spans and
/// one for the content, however many calls. Returns how many samples were made.
async fn join_to_stored_spans(
    tx: &mut AnyConnection,
    samples: &mut SampleInserter,
    project_id: i64,
    calls: &BTreeSet<(&str, &str)>,
    options: IngestOptions,
) -> StoreResult<usize> {
    let traces: Vec<&str> = calls.iter().map(|(t, _)| *t).collect::<BTreeSet<_>>().into_iter().collect();
    let mut stored_spans = Vec::new();
    for chunk in traces.chunks(TRACES_PER_LOOKUP) {
        let mut params = Params::new(Backend::of(tx));
        let sql = format!(
            "SELECT {SPAN_COLUMNS} FROM spans WHERE project_id = {} AND trace_id IN ({}) AND kind = 'llm'",
            params.next(),
            params.list(chunk.len())
        );
        // not cached (see TRACES_PER_LOOKUP)
        let mut query = sqlx::query(&sql).persistent(false).bind(project_id);
        for trace_id in chunk {
            query = query.bind(*trace_id);
        }
        for row in query.fetch_all(&mut *tx).await? {
            let stored = span_from_row(&row)?;
            if calls.contains(&(stored.span.trace_id.as_str(), stored.span.span_id.as_str())) {
                stored_spans.push(stored);
            }
        }
    }
    if stored_spans.is_empty() {
        return Ok(0);
    }
    let with_span: Vec<(&str, &str)> =
        stored_spans.iter().map(|s| (s.span.trace_id.as_str(), s.span.span_id.as_str())).collect();
    let mut logged = logged_contents(tx, project_id, &with_span).await?;
    let mut made = 0;
    for mut stored in stored_spans {
        let call = (stored.span.trace_id.clone(), stored.span.span_id.clone());
        let Some((request, response)) = logged.remove(&call) else { continue };
        set_span_content(tx, stored.id, request.as_deref(), response.as_deref()).await?;
        if stored.sample_id.is_some() {
            continue;
        }
        let span = &mut stored.span;
        span.request_text = span.request_text.take().or(request);
        span.response_text = span.response_text.take().or(response);
        if let Some(id) = stored.resource_id {
            span.resource = resources_by_id(tx, project_id, [id]).await?.remove(&id);
        }
        let Some(sample) = sample_of(span, options.max_text_chars) else { continue };
        attach_sample(tx, samples, project_id, stored.id, &sample).await?;
        made += 1;
    }
    Ok(made)
}
