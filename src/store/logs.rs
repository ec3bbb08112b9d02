//! Ingest: a batch of logs becomes samples in one transaction, so a batch is stored whole or
//! not at all, and ids are returned only after the commit.

use std::collections::HashMap;

use sqlx::Row;

use super::prompts::{get_or_create_prompt, PromptHandle};
use super::{now_ms, Store};

/// A validated log, ready to store.
#[derive(Debug, Clone)]
pub struct NewLog {
    pub prompt_name: String,
    pub response_text: String,
    pub input_text: Option<String>,
    pub model: Option<String>,
}

impl Store {
    /// Stores the logs as pending samples; returns their ids in the order given.
    pub async fn insert_logs(&self, project_id: i64, logs: &[NewLog]) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        let mut prompts: HashMap<&str, PromptHandle> = HashMap::new();
        let received_at = now_ms();
        let mut ids = Vec::with_capacity(logs.len());
        for log in logs {
            if !prompts.contains_key(log.prompt_name.as_str()) {
                let handle = get_or_create_prompt(&mut tx, project_id, &log.prompt_name).await?;
                prompts.insert(&log.prompt_name, handle);
            }
            let prompt = &prompts[log.prompt_name.as_str()];
            let id: i64 = sqlx::query(
                "INSERT INTO samples (project_id, prompt_id, prompt_version, input_text, response_text, model, \
                                      response_length, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            )
            .bind(project_id)
            .bind(prompt.id)
            .bind(&prompt.active_prompt)
            .bind(log.input_text.as_deref())
            .bind(&log.response_text)
            .bind(log.model.as_deref())
            .bind(log.response_text.chars().count() as i64)
            .bind(received_at)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }
}
