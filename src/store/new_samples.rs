//! Samples in: a batch of logs (`POST /api/v1/logs`) becomes samples in one transaction, so a
//! batch is stored whole or not at all and ids are returned only after the commit; span and log
//! record ingest insert their samples through the same [`SampleInserter`].

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};

use sqlx::{AnyConnection, Row};

use super::ingest_keep::IngestKeep;
use super::prompts::{get_or_create_prompts, PromptHandle};
use super::{
    now_ms, sqlite_inserted_rows, values_placeholders, Backend, Params, Store, StoreResult, SQLITE_INSERT_ANSWER,
};
use crate::domain::SampleState;
use crate::ingest::NewSample;

/// Columns of one sample row and rows per INSERT statement: 10 x 250 = 2,500 parameters, far
/// below both databases' limits, and statements small enough to plan quickly.
const COLUMNS: usize = 10;
const ROWS_PER_INSERT: usize = 250;

/// Inserts samples inside a caller's transaction, looking each prompt up (or creating it) once
/// per transaction. Shared by log ingest and trace ingest. A sample is stored pending, or
/// `skipped` when its prompt is overloaded and the ingest coin says so ([`IngestKeep`]).
pub(super) struct SampleInserter {
    prompts: HashMap<String, PromptHandle>,
    received_at: i64,
    keep: IngestKeep,
}

impl Store {
    pub(super) fn sample_inserter(&self) -> SampleInserter {
        SampleInserter { prompts: HashMap::new(), received_at: now_ms(), keep: self.ingest_keep.clone() }
    }

    /// Overload sampling's keep probabilities at ingest (set by the worker's sampler).
    pub fn ingest_keep(&self) -> &IngestKeep {
        &self.ingest_keep
    }
}

impl SampleInserter {
    pub(super) fn received_at(&self) -> i64 {
        self.received_at
    }

    /// Inserts the logs with multi-row statements; returns their ids in the order given.
    pub(super) async fn insert_many_in<L: Borrow<NewSample>>(
        &mut self,
        tx: &mut AnyConnection,
        project_id: i64,
        logs: &[L],
    ) -> StoreResult<Vec<i64>> {
        let unknown: BTreeSet<&str> = logs
            .iter()
            .map(|log| log.borrow().prompt_name.as_str())
            .filter(|name| !self.prompts.contains_key(*name))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.into_iter().collect();
            self.prompts.extend(get_or_create_prompts(tx, project_id, &names).await?);
        }
        let mut ids = Vec::with_capacity(logs.len());
        let backend = Backend::of(tx);
        for chunk in logs.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO samples (project_id, prompt_id, prompt_version, input_text, response_text, model, \
                                      response_length, received_at, state, processed_at) VALUES {}{}",
                values_placeholders(backend, chunk.len(), COLUMNS),
                match backend {
                    Backend::Sqlite => SQLITE_INSERT_ANSWER,
                    Backend::Postgres => " RETURNING id",
                }
            );
            let mut query = sqlx::query(&sql);
            let mut skipped = 0;
            for log in chunk.iter().map(Borrow::borrow) {
                let prompt = &self.prompts[&log.prompt_name];
                let keep = self.keep.probability(prompt.id);
                let queued = keep >= 1.0 || rand::random::<f64>() < keep;
                skipped += u64::from(!queued);
                query = query
                    .bind(project_id)
                    .bind(prompt.id)
                    .bind(prompt.active_prompt.as_str())
                    .bind(log.input_text.as_deref())
                    .bind(log.response_text.as_str())
                    .bind(log.model.as_deref())
                    .bind(log.response_text.chars().count() as i64)
                    .bind(self.received_at)
                    .bind(if queued { SampleState::Pending } else { SampleState::Skipped }.as_str())
                    .bind((!queued).then_some(self.received_at));
            }
            // counted when decided: a batch that then fails is decided again when it is retried
            crate::observe::samples_skipped(skipped);
            match backend {
                Backend::Sqlite => {
                    // `samples.id` is AUTOINCREMENT and this transaction holds the write lock,
                    // so one statement's rows get consecutive ids ending at the last one.
                    let last = sqlite_inserted_rows(tx, query, chunk.len()).await?;
                    ids.extend(last - chunk.len() as i64 + 1..=last);
                }
                Backend::Postgres => {
                    let rows = query.fetch_all(&mut *tx).await?;
                    // Postgres numbers the rows of one statement in the order of its VALUES,
                    // but does not promise RETURNING in that order: sorting restores it.
                    let mut chunk_ids =
                        rows.iter().map(|r| r.try_get::<i64, _>("id")).collect::<Result<Vec<_>, _>>()?;
                    chunk_ids.sort_unstable();
                    ids.extend(chunk_ids);
                }
            }
        }
        Ok(ids)
    }
}

impl Store {
    /// Stores the logs as pending samples; returns their ids in the order given, after they are
    /// committed. On SQLite concurrent batches share one commit (see `group_commit.rs`).
    pub async fn insert_samples(&self, project_id: i64, logs: Vec<NewSample>) -> StoreResult<Vec<i64>> {
        match &self.group_commit {
            Some(queue) => queue.insert_samples(project_id, logs).await,
            None => {
                // the one-statement path cannot toss the ingest coin (it learns prompt ids in SQL)
                if self.backend == Backend::Postgres && logs.len() <= ROWS_PER_INSERT && self.ingest_keep.keeps_all() {
                    if let Some(ids) = self.insert_samples_of_known_prompts(project_id, &logs).await? {
                        return Ok(ids);
                    }
                    // a prompt is new: the transaction below creates it
                }
                let mut tx = self.begin_write().await?;
                let ids = self.sample_inserter().insert_many_in(&mut tx, project_id, &logs).await?;
                tx.commit().await?;
                Ok(ids)
            }
        }
    }
}

impl Store {
    /// Postgres: stores a batch whose prompts all exist in one statement, committed on its
    /// own, instead of a transaction of four (BEGIN, the prompt lookup, the insert, COMMIT):
    /// every round trip wakes a backend process and the server on a machine whose cores the
    /// ingest clients, the database and the embedder already share. Nothing is stored, and
    /// `None` returned, when a prompt is not found, so the batch stays whole.
    async fn insert_samples_of_known_prompts(
        &self,
        project_id: i64,
        logs: &[NewSample],
    ) -> StoreResult<Option<Vec<i64>>> {
        let mut params = Params::new(Backend::Postgres);
        let (project, received_at) = (params.next(), params.next());
        let rows: Vec<String> = (0..logs.len())
            .map(|_| {
                format!(
                    "({}::bigint, {}::text, {}::text, {}::text, {}::text, {}::bigint)",
                    params.next(),
                    params.next(),
                    params.next(),
                    params.next(),
                    params.next(),
                    params.next()
                )
            })
            .collect();
        // The rows are numbered in the order given and inserted in that order, so their ids
        // ascend with it (as in `insert_many_in`); the count check inserts nothing unless
        // every row found its prompt.
        let sql = format!(
            "WITH batch (ord, prompt_name, input_text, response_text, model, response_length) AS (VALUES {}), \
             matched AS (SELECT b.*, p.id AS prompt_id, p.active_prompt FROM batch b \
                         JOIN prompts p ON p.project_id = {project} AND p.name = b.prompt_name) \
             INSERT INTO samples (project_id, prompt_id, prompt_version, input_text, response_text, model, \
                                  response_length, received_at) \
             SELECT {project}, prompt_id, active_prompt, input_text, response_text, model, response_length, \
                    {received_at} FROM matched WHERE (SELECT COUNT(*) FROM matched) = {} ORDER BY ord \
             RETURNING id",
            rows.join(", "),
            logs.len()
        );
        let mut query = sqlx::query(&sql).bind(project_id).bind(now_ms());
        for (ord, log) in logs.iter().enumerate() {
            query = query
                .bind(ord as i64)
                .bind(log.prompt_name.as_str())
                .bind(log.input_text.as_deref())
                .bind(log.response_text.as_str())
                .bind(log.model.as_deref())
                .bind(log.response_text.chars().count() as i64);
        }
        let mut conn = self.acquire_write().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        if rows.len() != logs.len() {
            return Ok(None);
        }
        let mut ids = rows.iter().map(|r| r.try_get::<i64, _>("id")).collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable();
        Ok(Some(ids))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Row;

    use crate::ingest::NewSample;
    use crate::store::{PoolSettings, Store};

    fn sample(i: usize) -> NewSample {
        NewSample { prompt_name: "support".into(), response_text: format!("answer {i}"), input_text: None, model: None }
    }

    /// Every sample is stored either way; an overloaded prompt's coin stores it `skipped` (and
    /// decided) at once, and a prompt back at 1 queues it again.
    #[tokio::test]
    async fn the_ingest_coin_stores_skipped_samples_and_queues_again_at_one() {
        let dir = std::env::temp_dir().join(format!("driftballoon-ingest-keep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/t.db", dir.display());
        let pool = PoolSettings { max_connections: 2, acquire_timeout: Duration::from_secs(5) };
        let store = Store::open(&url, &pool).await.unwrap();
        let project = store.ensure_project("p").await.unwrap();
        store.insert_samples(project, (0..10).map(sample).collect()).await.unwrap();
        let prompt_id: i64 =
            sqlx::query("SELECT id FROM prompts").fetch_one(&store.write).await.unwrap().try_get(0).unwrap();

        store.ingest_keep().set(prompt_id, 0.0);
        store.insert_samples(project, (10..30).map(sample).collect()).await.unwrap();
        store.ingest_keep().set(prompt_id, 1.0);
        store.insert_samples(project, (30..40).map(sample).collect()).await.unwrap();

        let rows = sqlx::query(
            "SELECT state, processed_at IS NOT NULL AS decided, COUNT(*) AS n FROM samples GROUP BY 1, 2 ORDER BY 1",
        )
        .fetch_all(&store.write)
        .await
        .unwrap();
        let counts: Vec<(String, bool, i64)> = rows
            .iter()
            .map(|r| {
                (r.try_get("state").unwrap(), r.try_get::<i64, _>("decided").unwrap() == 1, r.try_get("n").unwrap())
            })
            .collect();
        assert_eq!(counts, vec![("pending".to_string(), false, 20), ("skipped".to_string(), true, 20)]);
        store.write.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
