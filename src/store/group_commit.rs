//! Group commit for log ingest on SQLite. SQLite has one writer and each commit waits for an
//! fsync, so committing every request on its own caps ingest at the disk's fsync rate. Here one
//! task writes every batch that is waiting in one transaction, each batch under its own
//! savepoint (a batch that fails is rolled back alone), commits once, and only then answers
//! each request: a 202 still means the request's own rows are durable. Nothing waits on a
//! timer: batches that arrive while a commit is in flight form the next group.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::logs::{NewLog, SampleInserter};
use super::{Store, StoreError, StoreResult};

/// Most logs written in one group; the rest wait for the next commit (bounds the writer hold).
const MAX_GROUP_LOGS: usize = 2_000;
/// Requests waiting for the writer before senders wait for room.
const QUEUE_DEPTH: usize = 1_024;

struct Job {
    project_id: i64,
    logs: Vec<NewLog>,
    reply: oneshot::Sender<StoreResult<Vec<i64>>>,
}

/// Handle to the group-commit writer task. Cheap to clone.
#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on `store` (a handle without group commit of its own).
    pub(super) fn start(store: Store) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_groups(store, queue));
        GroupCommit { jobs }
    }

    pub(super) async fn insert_logs(&self, project_id: i64, logs: Vec<NewLog>) -> StoreResult<Vec<i64>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the ingest writer has stopped".into());
        self.jobs.send(Job { project_id, logs, reply }).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn write_groups(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut logs = first.logs.len();
        let mut group = vec![first];
        while logs < MAX_GROUP_LOGS {
            match queue.try_recv() {
                Ok(job) => {
                    logs += job.logs.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        crate::observe::ingest_group(group.len());
        write_group(&store, group).await;
    }
}

/// Writes and commits one group, then answers every request in it.
async fn write_group(store: &Store, group: Vec<Job>) {
    let mut results: Vec<StoreResult<Vec<i64>>> = Vec::with_capacity(group.len());
    let committed = async {
        let mut tx = store.begin_write().await?;
        // prompts are looked up by name once per project and group
        let mut inserters: HashMap<i64, SampleInserter> = HashMap::new();
        for job in &group {
            let samples = inserters.entry(job.project_id).or_insert_with(SampleInserter::new);
            // A savepoint per request: one that fails leaves the others in the group intact.
            let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
            match samples.insert_many_in(&mut savepoint, job.project_id, &job.logs).await {
                Ok(ids) => {
                    savepoint.commit().await?;
                    results.push(Ok(ids));
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    // prompts created in the rolled-back part do not exist: look them up again
                    inserters.remove(&job.project_id);
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        StoreResult::Ok(())
    }
    .await;
    match committed {
        Ok(()) => {
            for (job, result) in group.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        // Nothing in the group is stored: every request gets the error (and the SDK retries).
        Err(e) => {
            for job in group {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}
