//! Group commit for ingest on SQLite. SQLite has one writer and each commit waits for an fsync,
//! so committing every request on its own caps ingest at the disk's fsync rate. Here one task
//! writes every piece of work that is waiting (a request's logs, or a chunk of a request's
//! spans) in one transaction, each under its own savepoint (work that fails is rolled back
//! alone), commits once, and only then answers each request: a 2xx still means the request's
//! own rows are durable. Nothing waits on a timer: work that arrives while a commit is in
//! flight forms the next group.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use super::logs::{NewLog, SampleInserter};
use super::spans::{NewSpan, SpansStored};
use super::{Store, StoreError, StoreResult};
use crate::traces::IngestOptions;

/// Most weight written in one group; the rest waits for the next commit (bounds the writer
/// hold). A log weighs 1, a span 2 (a row with more columns and indexes, its trace rollup, and
/// often a drift sample as well).
const MAX_GROUP_WEIGHT: usize = 2_000;
const SPAN_WEIGHT: usize = 2;
/// Requests waiting for the writer before senders wait for room.
const QUEUE_DEPTH: usize = 1_024;

enum Work {
    Logs { logs: Vec<NewLog>, reply: oneshot::Sender<StoreResult<Vec<i64>>> },
    Spans { spans: Vec<NewSpan>, options: IngestOptions, reply: oneshot::Sender<StoreResult<SpansStored>> },
}

struct Job {
    project_id: i64,
    work: Work,
}

impl Job {
    fn weight(&self) -> usize {
        match &self.work {
            Work::Logs { logs, .. } => logs.len(),
            Work::Spans { spans, .. } => spans.len() * SPAN_WEIGHT,
        }
    }

    /// Sends the job's own outcome, or (`Err`) the group's failure.
    fn answer(self, outcome: StoreResult<Outcome>) {
        match (self.work, outcome) {
            (Work::Logs { reply, .. }, Ok(Outcome::Logs(ids))) => drop(reply.send(Ok(ids))),
            (Work::Spans { reply, .. }, Ok(Outcome::Spans(stored))) => drop(reply.send(Ok(stored))),
            (Work::Logs { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (Work::Spans { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
            (_, Ok(_)) => unreachable!("a job's outcome has the job's kind"),
        }
    }
}

enum Outcome {
    Logs(Vec<i64>),
    Spans(SpansStored),
}

/// Handle to the group-commit writer task. Cheap to clone.
#[derive(Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the ingest writer has stopped".into())
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
        self.jobs.send(Job { project_id, work: Work::Logs { logs, reply } }).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    pub(super) async fn insert_spans(
        &self,
        project_id: i64,
        spans: Vec<NewSpan>,
        options: IngestOptions,
    ) -> StoreResult<SpansStored> {
        let (reply, answer) = oneshot::channel();
        let job = Job { project_id, work: Work::Spans { spans, options, reply } };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn write_groups(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut weight = first.weight();
        let mut group = vec![first];
        while weight < MAX_GROUP_WEIGHT {
            match queue.try_recv() {
                Ok(job) => {
                    weight += job.weight();
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
    let mut outcomes: Vec<StoreResult<Outcome>> = Vec::with_capacity(group.len());
    let committed = async {
        let mut tx = store.begin_write().await?;
        // from taking the writer to the commit; benches/spans.rs reads this debug line
        let held = std::time::Instant::now();
        // prompts are looked up by name once per project and group
        let mut inserters: HashMap<i64, SampleInserter> = HashMap::new();
        for job in &group {
            let samples = inserters.entry(job.project_id).or_insert_with(SampleInserter::new);
            // A savepoint per job: one that fails leaves the others in the group intact.
            let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
            let outcome = match &job.work {
                Work::Logs { logs, .. } => {
                    samples.insert_many_in(&mut savepoint, job.project_id, logs).await.map(Outcome::Logs)
                }
                Work::Spans { spans, options, .. } => {
                    store.write_span_chunk(&mut savepoint, job.project_id, spans, *options).await.map(Outcome::Spans)
                }
            };
            match outcome {
                Ok(o) => {
                    savepoint.commit().await?;
                    outcomes.push(Ok(o));
                }
                Err(e) => {
                    savepoint.rollback().await?;
                    // prompts created in the rolled-back part do not exist: look them up again
                    inserters.remove(&job.project_id);
                    outcomes.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        let held_us = held.elapsed().as_micros() as u64;
        tracing::debug!(jobs = group.len(), held_us, "committed an ingest group");
        StoreResult::Ok(())
    }
    .await;
    match committed {
        Ok(()) => {
            for (job, outcome) in group.into_iter().zip(outcomes) {
                job.answer(outcome);
            }
        }
        // Nothing in the group is stored: every request gets the error (and the client retries).
        Err(e) => {
            for job in group {
                job.answer(Err(e.clone()));
            }
        }
    }
}
