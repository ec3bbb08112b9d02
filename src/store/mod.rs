//! The storage interface. Both backends go through sqlx's `Any` driver with one set of portable
//! SQL (numbered `$N` parameters, BIGINT epoch-millisecond times, 0/1 booleans), so every query
//! is written once; only the migrations and the few statements that need a backend's own
//! features (row locks, SKIP LOCKED) differ, and those branch on [`Backend`].

mod alerts;
mod baselines;
mod checkpoint;
mod claims;
mod dashboard;
mod drift_events;
mod error;
mod gauges;
mod group_commit;
mod ingest_keep;
mod keys;
mod log_records;
mod metrics;
mod migrations;
mod model_configs;
mod new_samples;
mod prices;
mod prompts;
mod retention;
mod samples;
mod sampling;
mod scoring;
mod span_attributes;
mod spans;
mod summary;
mod templates;
mod ui_sessions;
mod usage;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

pub use alerts::{
    AlertChannelRow, AttemptRecord, AttemptResult, ChannelPatch, ClaimedDelivery, DeliveryRow, NewChannel,
};
pub use baselines::BaselineRow;
pub use claims::{ClaimCursor, ClaimedSample};
pub use dashboard::{OverviewQuery, OverviewRow, OverviewSort, OverviewStatus, ScorePoint};
pub use drift_events::DriftEventRow;
pub use error::{Error as StoreError, StoreResult};
pub use ingest_keep::IngestKeep;
pub use keys::{ApiKeyRow, KeyOwner};
pub use log_records::{LogRecordRow, LogRecordsStored};
pub use metrics::SessionMetricRow;
pub use model_configs::{ModelConfigRow, ModelConfigVersion, SessionAssignment};
pub use prompts::{PromptConfigRow, PromptPatch, PromptRow};
pub use retention::{Pruned, RetentionOverrides, RetentionPatch};
pub use samples::{SampleCounts, SampleRow};
pub use sampling::PromptBacklog;
pub use scoring::{
    vector_from_bytes, BaselineUpdate, ExplainedSample, ExplainedSet, FinishedSample, NewDriftEvent, ProjectInfo,
    ScoringGroup, ScoringTx, StoredBaseline, UnscoredSample,
};
pub use spans::{SpanFilter, SpanRow, SpansStored, TraceStatus, TraceSummaryRow};
pub use summary::VariantSummaryRow;
pub use templates::{PromptAbTestRow, PromptTemplateRow};
pub use ui_sessions::UiSession;
pub use usage::ModelUsageRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a connection (or a transaction, through deref) talks to.
    fn of(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }
}

/// Handle to the database. Cheap to clone.
///
/// SQLite allows one writer at a time and a deferred transaction that turns into a write can
/// fail at once with SQLITE_BUSY instead of waiting; giving SQLite a dedicated single-connection
/// write pool serialises writers in-process (they queue on the pool) while readers use the other
/// pool concurrently thanks to WAL. On Postgres both handles are the same pool.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    read: AnyPool,
    write: AnyPool,
    /// Woken after a commit that queued alert deliveries.
    outbox: std::sync::Arc<tokio::sync::Notify>,
    /// SQLite: the task that commits concurrent log batches together (None on Postgres, whose
    /// writers commit in parallel, and inside that task itself).
    group_commit: Option<group_commit::GroupCommit>,
    /// Overload sampling's keep probabilities at ingest, shared by every clone of the store.
    ingest_keep: IngestKeep,
}

pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Reads a text column that holds one of an enum's names (see `crate::domain`).
fn get_enum<T>(row: &AnyRow, column: &str) -> StoreResult<T>
where
    T: FromStr<Err = crate::domain::UnknownName>,
{
    Ok(row.try_get::<String, _>(column)?.parse()?)
}

/// Like [`get_enum`] for a nullable column.
fn get_optional_enum<T>(row: &AnyRow, column: &str) -> StoreResult<Option<T>>
where
    T: FromStr<Err = crate::domain::UnknownName>,
{
    Ok(row.try_get::<Option<String>, _>(column)?.map(|s| s.parse()).transpose()?)
}

/// Booleans are stored as 0/1 integers on both backends.
fn get_bool(row: &AnyRow, column: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// The parameters of a statement built at run time (multi-row inserts, IN lists), numbered
/// `$1, $2, ...` on Postgres and anonymous (`?`, bound in order) on SQLite. The reason for `?`:
/// sqlx asks SQLite for the name of every parameter it binds, and SQLite finds a name by
/// walking the statement's list of named parameters, so binding n numbered parameters costs
/// n²/2 steps: 5 million for a 100-row span insert, more than the insert itself. One statement
/// uses one style throughout; a value used twice is bound twice.
struct Params {
    backend: Backend,
    count: usize,
}

impl Params {
    fn new(backend: Backend) -> Params {
        Params { backend, count: 0 }
    }

    /// The next parameter's placeholder.
    fn next(&mut self) -> String {
        self.count += 1;
        match self.backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${}", self.count),
        }
    }

    /// `n` placeholders separated by commas, as in an IN list.
    fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// `CASE id WHEN p THEN p ... END` for `rows` rows, the value of a multi-row UPDATE: each
    /// row binds its id, then its value.
    fn case_by_id(&mut self, rows: usize) -> String {
        let arms: Vec<String> = (0..rows).map(|_| format!("WHEN {} THEN {}", self.next(), self.next())).collect();
        format!("CASE id {} END", arms.join(" "))
    }

    /// The VALUES list of a multi-row INSERT: `rows` tuples of `columns` placeholders,
    /// `($1, $2), ($3, $4)` for 2 x 2 on Postgres.
    fn rows(&mut self, rows: usize, columns: usize) -> String {
        (0..rows).map(|_| format!("({})", self.list(columns))).collect::<Vec<_>>().join(", ")
    }
}

/// [`Params::rows`] for a statement that has no other parameters.
fn values_placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    Params::new(backend).rows(rows, columns)
}

/// Appended to a multi-row INSERT on SQLite in place of `RETURNING`: see
/// [`sqlite_inserted_rows`].
const SQLITE_INSERT_ANSWER: &str = "; SELECT last_insert_rowid(), changes()";

/// Runs an INSERT of `rows` rows that ends with [`SQLITE_INSERT_ANSWER`] and returns the last
/// new rowid. sqlx hands every `RETURNING` row from its SQLite thread to the waiting task
/// through a channel of 50, and those thread wake-ups cost more than the insert itself; this
/// answer is one row. An error if the insert changed another number of rows.
async fn sqlite_inserted_rows<'q>(
    tx: &mut sqlx::AnyConnection,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: usize,
) -> StoreResult<i64> {
    // fetch_one would stop at the INSERT's own result, before the SELECT's row
    let answer = query.fetch_all(&mut *tx).await?;
    let row = answer.first().ok_or_else(|| StoreError::Other("an insert gave no last_insert_rowid() row".into()))?;
    let (last, changed): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if changed != rows as i64 {
        return Err(StoreError::Other(format!("an insert of {rows} rows reported {changed} changes")));
    }
    Ok(last)
}

/// The SQLite writer's page cache: at most 32 MiB.
const WRITER_CACHE: &str = "PRAGMA cache_size = -32768;";

/// What a pool's connections are for; the SQLite writer gets settings readers do not need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Read,
    Write,
}

pub use crate::domain::now_ms;

impl Store {
    /// Connects, creating an SQLite file (and its folder) on first use, and brings the schema
    /// up to date.
    pub async fn open(url: &str, pool: &PoolSettings) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let url = match backend {
            Backend::Sqlite => sqlite_url_with_create(url)?,
            Backend::Postgres => url.to_string(),
        };
        // sqlx logs every statement at info level by default; that belongs at trace.
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));

        let pool_options = |max: u32, role: Role| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(pool.acquire_timeout)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the writer; FULL keeps every committed
                            // (and therefore acknowledged) log on disk even after a power loss.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;").await?;
                            if role == Role::Write {
                                // A multi-row statement inside a transaction keeps a copy of
                                // every page it changes (its statement journal), and one over
                                // 64 KiB spilled to a new temporary file: created, written and
                                // deleted per insert, about a quarter of the writer's time in
                                // ingest. Kept in memory, it is bounded by a write group.
                                conn.execute("PRAGMA temp_store = MEMORY;").await?;
                                conn.execute(checkpoint::WRITER_PRAGMAS).await?;
                                // The default 2 MiB page cache re-read most of the index pages
                                // an ingest group touches from the OS (a third of the writer's
                                // time in span ingest); this is an upper bound, grown into.
                                conn.execute(WRITER_CACHE).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };

        let options_for_checkpoints = options.clone();
        let store = match backend {
            Backend::Sqlite => {
                let mut store = Store {
                    backend,
                    write: pool_options(1, Role::Write).connect_with(options.clone()).await?,
                    read: pool_options(pool.max_connections, Role::Read).connect_with(options.clone()).await?,
                    outbox: Default::default(),
                    group_commit: None,
                    ingest_keep: IngestKeep::default(),
                };
                store.group_commit = Some(group_commit::GroupCommit::start(store.clone()));
                store
            }
            Backend::Postgres => {
                let shared = pool_options(pool.max_connections, Role::Write).connect_with(options).await?;
                Store {
                    backend,
                    read: shared.clone(),
                    write: shared,
                    outbox: Default::default(),
                    group_commit: None,
                    ingest_keep: IngestKeep::default(),
                }
            }
        };
        if backend == Backend::Sqlite {
            store.use_incremental_vacuum().await?;
        }
        store.migrate().await?;
        if backend == Backend::Sqlite {
            checkpoint::start(options_for_checkpoints, store.write.clone());
        }
        Ok(store)
    }

    /// SQLite files give deleted space back only with auto-vacuum, which must be chosen before
    /// tables exist or set with a VACUUM: a new file gets it at once; an older one is rewritten
    /// once (logged, as it takes a while on a large file).
    async fn use_incremental_vacuum(&self) -> anyhow::Result<()> {
        const INCREMENTAL: i64 = 2;
        let mut conn = self.write.acquire().await?;
        let mode: i64 = sqlx::query("PRAGMA auto_vacuum").fetch_one(&mut *conn).await?.try_get(0)?;
        if mode == INCREMENTAL {
            return Ok(());
        }
        let tables: i64 = sqlx::query("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut *conn).await?;
        let started = std::time::Instant::now();
        if tables > 0 {
            tracing::info!("turning on incremental auto-vacuum: rewriting the database file once");
        }
        sqlx::query("VACUUM").execute(&mut *conn).await?;
        if tables > 0 {
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "database file rewritten");
        }
        Ok(())
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        migrations::migrator(self.backend).await?.run(&self.write).await?;
        Ok(())
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later cannot wait for a
    /// writer in another process (the CLI, say) and fails with SQLITE_BUSY, while an immediate
    /// one waits under `busy_timeout`. In this process the single write connection already
    /// queues writers, so nothing waits longer than before.
    pub(super) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        let started = std::time::Instant::now();
        let waiting = crate::observe::write_waiting();
        let tx = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        };
        drop(waiting);
        crate::observe::write_wait(started.elapsed());
        Ok(tx?)
    }

    /// A write connection for one statement that commits on its own (Postgres only: on
    /// SQLite writes go through `BEGIN IMMEDIATE`), with the wait observed as for
    /// [`Store::begin_write`].
    pub(super) async fn acquire_write(&self) -> StoreResult<sqlx::pool::PoolConnection<sqlx::Any>> {
        let started = std::time::Instant::now();
        let waiting = crate::observe::write_waiting();
        let conn = self.write.acquire().await;
        drop(waiting);
        crate::observe::write_wait(started.elapsed());
        Ok(conn?)
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Adds `mode=rwc` so sqlx creates the file, and creates its folder.
fn sqlite_url_with_create(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if !path.is_empty() && path != ":memory:" {
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create database folder {}: {e}", dir.display()))?;
        }
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

#[cfg(test)]
mod tests {
    use super::{values_placeholders, Backend, Params};

    #[test]
    fn postgres_parameters_are_numbered_across_the_whole_statement() {
        let mut params = Params::new(Backend::Postgres);
        assert_eq!(params.next(), "$1");
        assert_eq!(params.list(2), "$2, $3");
        assert_eq!(params.rows(2, 2), "($4, $5), ($6, $7)");
        assert_eq!(params.case_by_id(2), "CASE id WHEN $8 THEN $9 WHEN $10 THEN $11 END");
        assert_eq!(values_placeholders(Backend::Postgres, 2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn sqlite_parameters_are_anonymous() {
        let mut params = Params::new(Backend::Sqlite);
        assert_eq!(params.next(), "?");
        assert_eq!(params.list(3), "?, ?, ?");
        assert_eq!(params.case_by_id(1), "CASE id WHEN ? THEN ? END");
        assert_eq!(values_placeholders(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }
}
