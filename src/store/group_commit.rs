//! Group commit for log and span ingest on SQLite. SQLite has one writer and each commit waits
//! for an fsync, so committing every request on its own caps ingest at the disk's fsync rate.
//! Here one task writes every batch (of logs, or a chunk of spans) that is waiting in one
//! transaction, each under its own savepoint (a batch that fails is rolled back alone),
//! commits once, and only then answers each request: a 202 still means the request's own rows
//! are durable. Nothing waits on a
//! timer: batches that arrive while a commit is in flight form the next group.
//!
//! Every statement is a round trip to sqlx's SQLite thread, and those hand-offs, not SQLite
//! itself, were most of a log batch's cost. So the group's log batches are first written
//! together, one multi-row insert per project and 250 rows under a single savepoint; only if
//! that fails is each batch written under its own savepoint, to find the one at fault.

use std::collections::{BTreeMap, HashMap, VecDeque};

use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

use super::new_samples::SampleInserter;
use super::spans::SpansStored;
use super::{Store, StoreError, StoreResult};
use crate::ingest::IngestOptions;
use crate::ingest::NewSample;
use crate::ingest::NewSpan;

/// Most rows written in one group; the rest wait for the next commit (bounds the writer hold).
const MAX_GROUP_ROWS: usize = 2_000;
/// What a span costs against [`MAX_GROUP_ROWS`]: a span row carries its content and
/// attributes, and with its drift sample and its trace's rollup it writes about four times what
/// a log does.
const ROWS_PER_SPAN: usize = 4;
/// Requests waiting for the writer before senders wait for room.
const QUEUE_DEPTH: usize = 1_024;

/// One request's log batch, and where its answer goes.
struct LogsJob {
    project_id: i64,
    logs: Vec<NewSample>,
    reply: oneshot::Sender<StoreResult<Vec<i64>>>,
}

/// One request's writes, and where its answer goes.
enum Job {
    Logs(LogsJob),
    Spans {
        project_id: i64,
        spans: Vec<NewSpan>,
        options: IngestOptions,
        reply: oneshot::Sender<StoreResult<SpansStored>>,
    },
}

/// A written job's answer, sent once the group's commit is known: its own result if the
/// commit succeeded, the commit's error if not.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn answer_later<T: Send + 'static>(reply: oneshot::Sender<StoreResult<T>>, result: StoreResult<T>) -> Answer {
    Box::new(move |failed| {
        let _ = reply.send(match failed {
            Some(e) => Err(e.clone()),
            None => result,
        });
    })
}

impl Job {
    fn rows(&self) -> usize {
        match self {
            Job::Logs(job) => job.logs.len(),
            Job::Spans { spans, .. } => spans.len() * ROWS_PER_SPAN,
        }
    }

    /// Writes the job under a savepoint of `tx`: one that fails is rolled back alone, leaving
    /// the rest of the group intact. `inserters` caches prompt lookups per project.
    async fn write(
        self,
        store: &Store,
        tx: &mut AnyConnection,
        inserters: &mut HashMap<i64, SampleInserter>,
    ) -> StoreResult<Answer> {
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
        let (project_id, failed, answer) = match self {
            Job::Logs(LogsJob { project_id, logs, reply }) => {
                let samples = inserters.entry(project_id).or_insert_with(|| store.sample_inserter());
                let result = samples.insert_many_in(&mut savepoint, project_id, &logs).await;
                (project_id, result.is_err(), answer_later(reply, result))
            }
            Job::Spans { project_id, spans, options, reply } => {
                let result = store.write_span_chunk(&mut savepoint, project_id, &spans, options).await;
                (project_id, result.is_err(), answer_later(reply, result))
            }
        };
        if failed {
            savepoint.rollback().await?;
            // prompts created in the rolled-back part do not exist: look them up again
            inserters.remove(&project_id);
        } else {
            savepoint.commit().await?;
        }
        Ok(answer)
    }

    /// Answers a job that was not written because the group failed.
    fn fail(self, e: &StoreError) {
        match self {
            Job::Logs(job) => drop(job.reply.send(Err(e.clone()))),
            Job::Spans { reply, .. } => drop(reply.send(Err(e.clone()))),
        }
    }
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

    pub(super) async fn insert_samples(&self, project_id: i64, logs: Vec<NewSample>) -> StoreResult<Vec<i64>> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Logs(LogsJob { project_id, logs, reply })).await?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Writes one chunk of spans (see `Store::insert_spans`).
    pub(super) async fn insert_spans(
        &self,
        project_id: i64,
        spans: Vec<NewSpan>,
        options: IngestOptions,
    ) -> StoreResult<SpansStored> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Spans { project_id, spans, options, reply }).await?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    async fn send(&self, job: Job) -> StoreResult<()> {
        self.jobs.send(job).await.map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the ingest writer has stopped".into())
}

async fn write_groups(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut rows = first.rows();
        let mut group = vec![first];
        while rows < MAX_GROUP_ROWS {
            match queue.try_recv() {
                Ok(job) => {
                    rows += job.rows();
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
    let requests = group.len();
    let mut answers: Vec<Answer> = Vec::with_capacity(requests);
    let mut log_batches = Vec::new();
    let mut unwritten = VecDeque::with_capacity(requests);
    for job in group {
        match job {
            Job::Logs(batch) => log_batches.push(batch),
            other => unwritten.push_back(other),
        }
    }
    let committed = async {
        let mut tx = store.begin_write().await?;
        // benches/spans.rs reads the debug line below for the writer's hold times
        let held = std::time::Instant::now();
        let mut inserters: HashMap<i64, SampleInserter> = HashMap::new();
        match write_log_batches_together(store, &mut tx, &log_batches, &mut inserters).await? {
            Some(ids) => {
                for (batch, ids) in log_batches.drain(..).zip(ids) {
                    answers.push(answer_later(batch.reply, Ok(ids)));
                }
            }
            None => {
                // prompts created in the rolled-back part do not exist: look them up again
                inserters.clear();
                for batch in log_batches.drain(..).rev() {
                    unwritten.push_front(Job::Logs(batch));
                }
            }
        }
        while let Some(job) = unwritten.pop_front() {
            answers.push(job.write(store, &mut tx, &mut inserters).await?);
        }
        tx.commit().await?;
        tracing::debug!(requests, held_us = held.elapsed().as_micros() as u64, "stored a write group");
        StoreResult::Ok(())
    }
    .await;
    // Nothing in a failed group is stored: every request gets the error (and the SDK retries).
    let failed = committed.err();
    for answer in answers {
        answer(failed.as_ref());
    }
    if let Some(e) = &failed {
        for batch in log_batches {
            Job::Logs(batch).fail(e);
        }
        for job in unwritten {
            job.fail(e);
        }
    }
}

/// Writes all the log batches with one savepoint and, per project, one multi-row insert per
/// 250 rows; returns each batch's ids. `None` means a statement failed and everything written
/// here was rolled back: the caller then writes each batch alone.
async fn write_log_batches_together(
    store: &Store,
    tx: &mut AnyConnection,
    batches: &[LogsJob],
    inserters: &mut HashMap<i64, SampleInserter>,
) -> StoreResult<Option<Vec<Vec<i64>>>> {
    if batches.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let mut by_project: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, batch) in batches.iter().enumerate() {
        by_project.entry(batch.project_id).or_default().push(i);
    }
    let mut ids_per_batch = vec![Vec::new(); batches.len()];
    let mut savepoint = sqlx::Acquire::begin(&mut *tx).await?;
    for (project_id, members) in by_project {
        let logs: Vec<&NewSample> = members.iter().flat_map(|&i| batches[i].logs.iter()).collect();
        let samples = inserters.entry(project_id).or_insert_with(|| store.sample_inserter());
        let ids = match samples.insert_many_in(&mut savepoint, project_id, &logs).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::debug!(error = %e, "a group's log batches failed together: writing each alone");
                savepoint.rollback().await?;
                return Ok(None);
            }
        };
        // ids come back in the order the logs were given: deal them out batch by batch
        let mut ids = ids.into_iter();
        for i in members {
            ids_per_batch[i] = ids.by_ref().take(batches[i].logs.len()).collect();
        }
    }
    savepoint.commit().await?;
    Ok(Some(ids_per_batch))
}
