//! Ingest: a batch of logs becomes samples in one transaction, so a batch is stored whole or
//! not at all, and ids are returned only after the commit.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::prompts::{get_or_create_prompt, PromptHandle};
use super::{now_ms, Store, StoreResult};

/// A validated log, ready to store.
#[derive(Debug, Clone)]
pub struct NewLog {
    pub prompt_name: String,
    pub response_text: String,
    pub input_text: Option<String>,
    pub model: Option<String>,
}

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

    pub(super) async fn insert(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        project_id: i64,
        log: &NewLog,
    ) -> StoreResult<i64> {
        if !self.prompts.contains_key(&log.prompt_name) {
            let handle = get_or_create_prompt(tx, project_id, &log.prompt_name).await?;
            self.prompts.insert(log.prompt_name.clone(), handle);
        }
        let prompt = &self.prompts[&log.prompt_name];
        let row = sqlx::query(
            "INSERT INTO samples (project_id, prompt_id, prompt_version, input_text, response_text, model, \
                                  response_length, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(project_id)
        .bind(prompt.id)
        .bind(prompt.active_prompt.as_str())
        .bind(log.input_text.as_deref())
        .bind(&log.response_text)
        .bind(log.model.as_deref())
        .bind(log.response_text.chars().count() as i64)
        .bind(self.received_at)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.try_get("id")?)
    }
}

impl Store {
    /// Stores the logs as pending samples; returns their ids in the order given.
    pub async fn insert_logs(&self, project_id: i64, logs: &[NewLog]) -> StoreResult<Vec<i64>> {
        let mut tx = self.begin_write().await?;
        let mut samples = SampleInserter::new();
        let mut ids = Vec::with_capacity(logs.len());
        for log in logs {
            ids.push(samples.insert(&mut tx, project_id, log).await?);
        }
        tx.commit().await?;
        Ok(ids)
    }
}
