//! Samples in: a batch of logs (`POST /api/v1/logs`) becomes samples in one transaction, so a
//! batch is stored whole or not at all and ids are returned only after the commit; span and log
//! record ingest insert their samples through the same [`SampleInserter`].

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};

use sqlx::{AnyConnection, Row};

use super::prompts::{get_or_create_prompts, PromptHandle};
use super::{
    now_ms, sqlite_inserted_rows, values_placeholders, Backend, Params, Store, StoreResult, SQLITE_INSERT_ANSWER,
};
use crate::ingest::NewSample;

/// Columns of one sample row and rows per INSERT statement: 8 x 250 = 2,000 parameters, far
/// below both databases' limits, and statements small enough to plan quickly.
const COLUMNS: usize = 8;
const ROWS_PER_INSERT: usize = 250;

/// Inserts pending samples inside a caller's transaction, looking each prompt up (or creating
/// it) once per transaction. Shared by log ingest and trace ingest.
pub(super) struct SampleInserter {
    prompts: HashMap<String, PromptHandle>,
    received_at: i64,
}

impl SampleInserter {
    pub(super) fn new() -> Self {
        SampleInserter { prompts: HashMap::new(), received_at: now_ms() }
    }

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
                                      response_length, received_at) VALUES {}{}",
                values_placeholders(backend, chunk.len(), COLUMNS),
                match backend {
                    Backend::Sqlite => SQLITE_INSERT_ANSWER,
                    Backend::Postgres => " RETURNING id",
                }
            );
            let mut query = sqlx::query(&sql);
            for log in chunk.iter().map(Borrow::borrow) {
                let prompt = &self.prompts[&log.prompt_name];
                query = query
                    .bind(project_id)
                    .bind(prompt.id)
                    .bind(prompt.active_prompt.as_str())
                    .bind(log.input_text.as_deref())
                    .bind(log.response_text.as_str())
                    .bind(log.model.as_deref())
                    .bind(log.response_text.chars().count() as i64)
                    .bind(self.received_at);
            }
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
                if self.backend == Backend::Postgres && logs.len() <= ROWS_PER_INSERT {
                    if let Some(ids) = self.insert_samples_of_known_prompts(project_id, &logs).await? {
                        return Ok(ids);
                    }
                    // a prompt is new: the transaction below creates it
                }
                let mut tx = self.begin_write().await?;
                let ids = SampleInserter::new().insert_many_in(&mut tx, project_id, &logs).await?;
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
