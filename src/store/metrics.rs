//! Custom business metrics (`POST /spans`): per (config, session) the latest value of each
//! field wins. Values are JSON text, so numbers, strings and objects all round-trip.

use serde_json::{Map, Value};
use sqlx::Row;

use super::{now_ms, Store, StoreResult};

#[derive(Debug, Clone)]
pub struct SessionMetricRow {
    pub config_key: String,
    pub session_id: String,
    pub field: String,
    pub value: Value,
    pub updated_at: i64,
}

impl Store {
    /// Upserts every field of `data` in one transaction.
    pub async fn record_metrics(
        &self,
        project_id: i64,
        config_key: &str,
        session_id: &str,
        data: &Map<String, Value>,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for (field, value) in data {
            sqlx::query(
                "INSERT INTO session_metrics (project_id, config_key, session_id, field, value, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (project_id, config_key, session_id, field) DO UPDATE \
                 SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(project_id)
            .bind(config_key)
            .bind(session_id)
            .bind(field)
            .bind(value.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The current metrics of a config, optionally of one session, by session then field.
    pub async fn session_metrics(
        &self,
        project_id: i64,
        config_key: &str,
        session_id: Option<&str>,
    ) -> StoreResult<Vec<SessionMetricRow>> {
        let rows = sqlx::query(
            "SELECT config_key, session_id, field, value, updated_at FROM session_metrics \
             WHERE project_id = $1 AND config_key = $2 AND ($3 IS NULL OR session_id = $3) \
             ORDER BY session_id, field",
        )
        .bind(project_id)
        .bind(config_key)
        .bind(session_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("value")?;
                Ok(SessionMetricRow {
                    config_key: r.try_get("config_key")?,
                    session_id: r.try_get("session_id")?,
                    field: r.try_get("field")?,
                    value: serde_json::from_str(&text).unwrap_or(Value::String(text)),
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }
}
