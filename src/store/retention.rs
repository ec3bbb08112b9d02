//! Retention: each project's age limits and the pruner's batched deletes. Every delete picks at
//! most `limit` of the oldest rows by index and runs in its own short transaction, so ingest
//! never waits long for the writer.

use sqlx::Row;

use super::{Backend, Store, StoreResult};

/// A project's own age limits in days; `None` = the server's default, `Some(0)` = forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOverrides {
    pub samples_days: Option<i64>,
    pub traces_days: Option<i64>,
    pub sessions_days: Option<i64>,
    pub metrics_days: Option<i64>,
}

/// A change to them: absent = unchanged, `Some(None)` = back to the server default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionPatch {
    pub samples_days: Option<Option<i64>>,
    pub traces_days: Option<Option<i64>>,
    pub sessions_days: Option<Option<i64>>,
    pub metrics_days: Option<Option<i64>>,
}

impl RetentionPatch {
    pub fn is_empty(&self) -> bool {
        self.samples_days.is_none()
            && self.traces_days.is_none()
            && self.sessions_days.is_none()
            && self.metrics_days.is_none()
    }
}

/// What the pruner deletes, each by its own age column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// Scored or failed samples no drift event refers to; never the ones a baseline learnt
    /// from (they have no similarity) nor any still waiting to be scored.
    Samples,
    /// Traces by when their last span arrived (the server's clock, never the start time a
    /// client wrote: a replayed or skewed export is neither pruned on arrival nor kept
    /// forever), with their spans; a batch is a tenth as many traces as rows (traces hold
    /// about ten spans; a rare huge one makes one longer batch).
    Traces,
    /// OTLP log records by arrival time.
    LogRecords,
    /// Fallom session assignments by last use.
    Sessions,
    /// Fallom custom metrics by last update.
    Metrics,
}

impl Pruned {
    pub const ALL: [Pruned; 5] =
        [Pruned::Samples, Pruned::Traces, Pruned::LogRecords, Pruned::Sessions, Pruned::Metrics];

    /// The metric label: the table the rows came from.
    pub fn table(self) -> &'static str {
        match self {
            Pruned::Samples => "samples",
            Pruned::Traces => "traces",
            Pruned::LogRecords => "log_records",
            Pruned::Sessions => "model_sessions",
            Pruned::Metrics => "session_metrics",
        }
    }

    /// The batch size, in this kind's units, for `batch_rows` rows.
    pub fn batch_size(self, batch_rows: i64) -> i64 {
        match self {
            Pruned::Traces => (batch_rows / 10).max(1),
            _ => batch_rows,
        }
    }

    /// The statements of one batch; `$1` project, `$2` cutoff (ms), `$3` batch size. Batches
    /// are picked by a subquery so the same statement works on both backends.
    fn statements(self) -> &'static [&'static str] {
        match self {
            Pruned::Samples => &["DELETE FROM samples WHERE id IN (SELECT s.id FROM samples s \
                 WHERE s.project_id = $1 AND s.received_at < $2 \
                 AND (s.state IN ('failed', 'skipped') OR (s.state = 'done' AND s.similarity IS NOT NULL)) \
                 AND NOT EXISTS (SELECT 1 FROM drift_events e WHERE e.sample_id = s.id) \
                 ORDER BY s.received_at LIMIT $3)"],
            // spans first, while the trace rows still say which traces the batch holds
            Pruned::Traces => &[
                "DELETE FROM spans WHERE project_id = $1 AND trace_id IN (SELECT trace_id FROM traces \
                 WHERE project_id = $1 AND received_at < $2 ORDER BY received_at, trace_id LIMIT $3)",
                "DELETE FROM traces WHERE project_id = $1 AND trace_id IN (SELECT trace_id FROM traces \
                 WHERE project_id = $1 AND received_at < $2 ORDER BY received_at, trace_id LIMIT $3)",
            ],
            Pruned::LogRecords => &["DELETE FROM log_records WHERE id IN (SELECT id FROM log_records \
                 WHERE project_id = $1 AND received_at < $2 ORDER BY received_at LIMIT $3)"],
            Pruned::Sessions => {
                &["DELETE FROM model_sessions WHERE (project_id, config_key, config_version, session_id) IN \
                 (SELECT project_id, config_key, config_version, session_id FROM model_sessions \
                 WHERE project_id = $1 AND last_seen_at < $2 ORDER BY last_seen_at LIMIT $3)"]
            }
            Pruned::Metrics => &["DELETE FROM session_metrics WHERE (project_id, config_key, session_id, field) IN \
                 (SELECT project_id, config_key, session_id, field FROM session_metrics \
                 WHERE project_id = $1 AND updated_at < $2 ORDER BY updated_at LIMIT $3)"],
        }
    }
}

const OVERRIDE_COLUMNS: &str =
    "retention_samples_days, retention_traces_days, retention_sessions_days, retention_metrics_days";

fn overrides_of(row: &sqlx::any::AnyRow) -> StoreResult<RetentionOverrides> {
    Ok(RetentionOverrides {
        samples_days: row.try_get("retention_samples_days")?,
        traces_days: row.try_get("retention_traces_days")?,
        sessions_days: row.try_get("retention_sessions_days")?,
        metrics_days: row.try_get("retention_metrics_days")?,
    })
}

impl Store {
    pub async fn retention_overrides(&self, project_id: i64) -> StoreResult<RetentionOverrides> {
        let row = sqlx::query(&format!("SELECT {OVERRIDE_COLUMNS} FROM projects WHERE id = $1"))
            .bind(project_id)
            .fetch_one(&self.read)
            .await?;
        overrides_of(&row)
    }

    /// Every project with its overrides, for the pruner.
    pub async fn projects_retention(&self) -> StoreResult<Vec<(i64, RetentionOverrides)>> {
        let rows = sqlx::query(&format!("SELECT id, {OVERRIDE_COLUMNS} FROM projects ORDER BY id"))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, overrides_of(r)?))).collect()
    }

    pub async fn set_retention(&self, project_id: i64, patch: &RetentionPatch) -> StoreResult<()> {
        let changes = [
            ("retention_samples_days", patch.samples_days),
            ("retention_traces_days", patch.traces_days),
            ("retention_sessions_days", patch.sessions_days),
            ("retention_metrics_days", patch.metrics_days),
        ];
        let mut tx = self.begin_write().await?;
        for (column, value) in changes {
            let Some(value) = value else { continue };
            sqlx::query(&format!("UPDATE projects SET {column} = $1 WHERE id = $2"))
                .bind(value)
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes one batch of at most `limit` of `what` older than `cutoff_ms` in one
    /// transaction: the rows deleted, and whether the batch was full (so more may be left).
    pub async fn prune_batch(
        &self,
        what: Pruned,
        project_id: i64,
        cutoff_ms: i64,
        limit: i64,
    ) -> StoreResult<(u64, bool)> {
        let mut tx = self.begin_write().await?;
        let (mut deleted, mut last) = (0, 0);
        for sql in what.statements() {
            last =
                sqlx::query(sql).bind(project_id).bind(cutoff_ms).bind(limit).execute(&mut *tx).await?.rows_affected();
            deleted += last;
        }
        tx.commit().await?;
        // the last statement deletes the batch's own rows (traces, after their spans)
        Ok((deleted, last >= limit as u64))
    }

    /// Gives up to `pages` free pages back to the file system (SQLite with incremental
    /// auto-vacuum; Postgres reclaims with its own autovacuum). The pages still free.
    pub async fn reclaim_space(&self, pages: i64) -> StoreResult<i64> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let mut conn = self.write.acquire().await?;
        sqlx::query(&format!("PRAGMA incremental_vacuum({pages})")).execute(&mut *conn).await?;
        let free: i64 = sqlx::query("PRAGMA freelist_count").fetch_one(&mut *conn).await?.try_get(0)?;
        Ok(free)
    }
}
