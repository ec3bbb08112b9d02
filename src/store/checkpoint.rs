//! SQLite WAL checkpoints on their own connection, beside the writer.
//!
//! By default SQLite checkpoints from the connection that commits: once the WAL passes 1,000
//! pages, the next commit also copies the WAL into the database file (and, with
//! `synchronous = FULL`, waits for that file's fsync) before it returns. Under span ingest that
//! was about a sixth of the single writer's time, spent while every waiting request waited too.
//! Here a task runs a PASSIVE checkpoint every [`INTERVAL`] on a connection of its own: it
//! copies what no reader still needs without taking the write lock, so the writer keeps
//! committing meanwhile (on the other core). The writer still checkpoints, but only at 32 MiB
//! of WAL (see [`WRITER_PRAGMAS`]), and then finds most of the copying done.

use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Row};
use tokio::task::JoinHandle;

/// How often the WAL is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(250);
/// After a failed checkpoint (its connection is then replaced).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The writer checkpoints only once the WAL holds 32 MiB (8,192 pages) instead of 4 MiB: by
/// then this task has copied nearly all of it, so the writer's own checkpoint is short, and, as
/// it completes the copy, the next commit starts the WAL file over (a passive checkpoint
/// beside a busy writer never completes it). The file is then cut back to 64 MiB.
pub(super) const WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 8192; PRAGMA journal_size_limit = 67108864;";

/// Starts the checkpointer on its own connection to the database `options` opens; it stops
/// once `writer` (the store's write pool) is closed.
pub(super) fn start(options: AnyConnectOptions, writer: AnyPool) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !writer.is_closed() {
            if let Err(e) = checkpoints(&options, &writer).await {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying on a new connection");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    })
}

/// A PASSIVE checkpoint: (pages in the WAL, pages copied to the database file so far).
async fn passive_checkpoint(conn: &mut AnyConnection) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *conn).await?;
    Ok((row.try_get(1)?, row.try_get(2)?))
}

/// Checkpoints on one connection until it fails or the store closes.
async fn checkpoints(options: &AnyConnectOptions, writer: &AnyPool) -> Result<(), sqlx::Error> {
    let mut conn = options.connect().await?;
    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await?;
    while !writer.is_closed() {
        let (log_pages, copied) = passive_checkpoint(&mut conn).await?;
        tracing::trace!(log_pages, copied, "WAL checkpoint");
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(())
}
