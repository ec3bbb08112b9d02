//! A project's own model prices (table `model_prices`), laid over the shipped list by
//! `crate::ops::prices`.

use sqlx::Row;

use super::{now_ms, Store, StoreResult};
use crate::cost::Price;

impl Store {
    /// The project's own prices by model id, sorted by id.
    pub async fn project_prices(&self, project_id: i64) -> StoreResult<Vec<(String, Price)>> {
        let rows = sqlx::query(
            "SELECT model, input, output, cached_input FROM model_prices WHERE project_id = $1 ORDER BY model",
        )
        .bind(project_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let price = Price {
                    input: r.try_get("input")?,
                    output: r.try_get("output")?,
                    cached_input: r.try_get("cached_input")?,
                };
                Ok((r.try_get("model")?, price))
            })
            .collect()
    }

    /// Sets the project's price of `model` (an id as matched: lower case); true when it is new.
    pub async fn set_project_price(&self, project_id: i64, model: &str, price: Price) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let existed = sqlx::query("SELECT 1 FROM model_prices WHERE project_id = $1 AND model = $2")
            .bind(project_id)
            .bind(model)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO model_prices (project_id, model, input, output, cached_input, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project_id, model) DO UPDATE SET input = excluded.input, output = excluded.output, \
                 cached_input = excluded.cached_input, updated_at = excluded.updated_at",
        )
        // sqlx 0.8 `Any` declares a NULL f64 as float4 but a value as float8; a cached Postgres
        // statement then rejects the other kind (as in `scoring.rs`), so this one is not cached.
        .persistent(false)
        .bind(project_id)
        .bind(model)
        .bind(price.input)
        .bind(price.output)
        .bind(price.cached_input)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(!existed)
    }

    /// Removes the project's price of `model`; false when it had none.
    pub async fn delete_project_price(&self, project_id: i64, model: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM model_prices WHERE project_id = $1 AND model = $2")
            .bind(project_id)
            .bind(model)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
