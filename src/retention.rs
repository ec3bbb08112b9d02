//! The retention pruner: a background task that deletes rows older than each project's age
//! limits, in small batches with pauses between them, and then gives SQLite's free pages back
//! to the file system. Drift events, baselines and the samples they need are never deleted (see
//! [`Pruned`]).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::store::{now_ms, Pruned, RetentionOverrides, Store, StoreResult};

const DAY_MS: i64 = 86_400_000;
/// Between two batches the pruner rests this long at least, and twice as long as the batch
/// took: it holds the writer (and, on Postgres, the cores) at most a third of the time, so
/// ingest waits at most one small batch and its p99 stays close to an idle server's. It still
/// deletes several thousand rows a second, far more than a steady state needs.
const PAUSE: Duration = Duration::from_millis(20);
const REST_PER_WORK: u32 = 2;
/// Free pages given back per step (4 KiB each): about 8 MiB, a few ms of writer time.
const RECLAIM_PAGES: i64 = 2_000;

/// Age limits in days; 0 = keep forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays {
    pub samples: i64,
    pub traces: i64,
    pub sessions: i64,
    pub metrics: i64,
}

impl RetentionDays {
    pub fn defaults(settings: &Settings) -> Self {
        Self {
            samples: settings.retention_samples_days as i64,
            traces: settings.retention_traces_days as i64,
            sessions: settings.retention_sessions_days as i64,
            metrics: settings.retention_metrics_days as i64,
        }
    }

    /// A project's limits: its own where set, else these defaults.
    pub fn with(self, o: &RetentionOverrides) -> Self {
        Self {
            samples: o.samples_days.unwrap_or(self.samples),
            traces: o.traces_days.unwrap_or(self.traces),
            sessions: o.sessions_days.unwrap_or(self.sessions),
            metrics: o.metrics_days.unwrap_or(self.metrics),
        }
    }

    fn days(&self, what: Pruned) -> i64 {
        match what {
            Pruned::Samples => self.samples,
            Pruned::Traces | Pruned::LogRecords => self.traces,
            Pruned::Sessions => self.sessions,
            Pruned::Metrics => self.metrics,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PrunerSettings {
    pub defaults: RetentionDays,
    pub interval: Duration,
    pub batch_rows: i64,
}

impl PrunerSettings {
    pub fn from(settings: &Settings) -> Self {
        Self {
            defaults: RetentionDays::defaults(settings),
            interval: Duration::from_secs(settings.retention_interval_secs),
            batch_rows: settings.retention_batch_rows as i64,
        }
    }
}

pub fn spawn(store: Store, settings: PrunerSettings, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // first after one interval: a restart loop does not prune on every start
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            match prune(&store, &settings, &stop).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "retention: deleted old rows"),
                Err(e) => tracing::warn!(error = %e, "retention: pruning failed; retrying next interval"),
            }
        }
    })
}

/// One pass over every project; the rows deleted. Stops early when told to.
pub async fn prune(store: &Store, settings: &PrunerSettings, stop: &watch::Receiver<bool>) -> StoreResult<u64> {
    let mut total = 0;
    for (project_id, overrides) in store.projects_retention().await? {
        let limits = settings.defaults.with(&overrides);
        for what in Pruned::ALL {
            let days = limits.days(what);
            if days == 0 {
                continue;
            }
            let cutoff = now_ms() - days * DAY_MS;
            loop {
                if *stop.borrow() {
                    return Ok(total);
                }
                let started = std::time::Instant::now();
                let batch = what.batch_size(settings.batch_rows);
                let (deleted, full) = store.prune_batch(what, project_id, cutoff, batch).await?;
                crate::observe::retention_deleted(what.table(), deleted);
                total += deleted;
                tokio::time::sleep(PAUSE.max(started.elapsed() * REST_PER_WORK)).await;
                if !full {
                    break;
                }
            }
        }
    }
    // Every pass, not only one that deleted: the worker and ingest also free pages (a
    // rewritten baseline state, a shorter row), and a pass that deleted nothing would
    // otherwise leave them in the file for good. A pass with nothing free costs one PRAGMA.
    // Stops once nothing is free, or when concurrent writes free pages as fast as this
    // gives them back (the next pass carries on), so a busy server never keeps it looping.
    let mut free_before = i64::MAX;
    while !*stop.borrow() {
        let free = store.reclaim_space(RECLAIM_PAGES).await?;
        if free == 0 || free >= free_before {
            break;
        }
        free_before = free;
        tokio::time::sleep(PAUSE).await;
    }
    Ok(total)
}
