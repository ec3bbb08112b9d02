//! Ingest: a batch of logs becomes samples in one transaction, so a batch is stored whole or
//! not at all, and ids are returned only after the commit.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};

use sqlx::{AnyConnection, Row};

use super::prompts::{get_or_create_prompts, PromptHandle};
use super::{now_ms, sqlite_inserted_rows, values_placeholders, Backend, Store, StoreResult, SQLITE_INSERT_ANSWER};

/// A validated log, ready to store.
#[derive(Debug, Clone)]
pub struct NewLog {
    pub prompt_name: String,
    pub response_text: String,
    pub input_text: Option<String>,
    pub model: Option<String>,
}

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
    pub(super) async fn insert_many_in<L: Borrow<NewLog>>(
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
    pub async fn insert_logs(&self, project_id: i64, logs: Vec<NewLog>) -> StoreResult<Vec<i64>> {
        match &self.group_commit {
            Some(queue) => queue.insert_logs(project_id, logs).await,
            None => {
                let mut tx = self.begin_write().await?;
                let ids = SampleInserter::new().insert_many_in(&mut tx, project_id, &logs).await?;
                tx.commit().await?;
                Ok(ids)
            }
        }
    }
}
