//! What `/metrics` measures in the database when it is scraped.

use std::time::Duration;

use sqlx::Row;

use super::{now_ms, Backend, Store, StoreResult};
use crate::observe::DatabaseGauges;

impl Store {
    pub async fn database_gauges(&self) -> StoreResult<DatabaseGauges> {
        // the partial index `samples_unscored` holds exactly these rows
        let backlog = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM samples WHERE state IN ('pending', 'embedded')",
        )
        .fetch_one(&self.read)
        .await?;
        let oldest: Option<i64> = backlog.try_get("oldest")?;
        let drifted =
            sqlx::query("SELECT COUNT(*) AS n FROM prompts WHERE status = 'drifted'").fetch_one(&self.read).await?;
        let pool = |name: &'static str, pool: &sqlx::AnyPool| {
            let idle = pool.num_idle() as u32;
            (name, pool.size().saturating_sub(idle), idle)
        };
        let pools = match self.backend {
            Backend::Sqlite => vec![pool("read", &self.read), pool("write", &self.write)],
            Backend::Postgres => vec![pool("shared", &self.read)],
        };
        Ok(DatabaseGauges {
            backlog: backlog.try_get("n")?,
            backlog_oldest_age: oldest.map(|at| Duration::from_millis(now_ms().saturating_sub(at).max(0) as u64)),
            prompts_drifted: drifted.try_get("n")?,
            pools,
        })
    }
}
