//! SQLite WAL checkpoints on their own connection, beside the writer.
//!
//! By default SQLite checkpoints from the connection that commits: once the WAL passes 1,000
//! pages, the next commit also copies the WAL into the database file (and, with
//! `synchronous = FULL`, waits for that file's fsync) before it returns. Under span ingest that
//! was about a sixth of the single writer's time, spent while every waiting request waited too.
//! The writer turns automatic checkpoints off (`wal_autocheckpoint = 0`) and this task runs a
//! PASSIVE checkpoint every [`INTERVAL`] on a connection of its own: it copies what no reader
//! still needs without taking the write lock, so the writer keeps committing meanwhile (on the
//! other core). Under steady writes a passive checkpoint is never complete (new pages keep
//! arriving), and only a complete one lets the next commit start the WAL file over; so once the
//! WAL is long, a RESTART checkpoint holds the writer off for the few pages the passive one left,
//! and the file is then truncated to `journal_size_limit`.

use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Row};
use tokio::task::JoinHandle;

/// How often the WAL is copied into the database file. At the writer's peak (about 40 MiB of
/// WAL a second in span ingest) this keeps it near 10 MiB.
const INTERVAL: Duration = Duration::from_millis(250);
/// A WAL this long (16 MiB of 4 KiB pages) is restarted. A passive checkpoint never restarts
/// it while the writer keeps appending, as it always finds newer pages still to copy.
const RESTART_AT_PAGES: i64 = 4096;
/// After a failed checkpoint (its connection is then replaced).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// WAL pages after which a commit on this connection would checkpoint; 0 for the writer, whose
/// checkpoints this task runs.
pub(super) const WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;";

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

/// Checkpoints on one connection until it fails or the store closes.
async fn checkpoints(options: &AnyConnectOptions, writer: &AnyPool) -> Result<(), sqlx::Error> {
    let mut conn = options.connect().await?;
    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await?;
    while !writer.is_closed() {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut conn).await?;
        let (log_pages, copied): (i64, i64) = (row.try_get(1)?, row.try_get(2)?);
        if log_pages >= RESTART_AT_PAGES {
            // The passive pass copied all but the last moments' pages; this one copies those
            // while holding the writer off, so the next commit starts the WAL again.
            sqlx::query("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut conn).await?;
        }
        tracing::trace!(log_pages, copied, "WAL checkpoint");
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(())
}
