//! The embedding worker, run inside `serve` (unless disabled for API-only replicas).
//!
//! A two-stage pipeline keeps the model busy: the *claimer* claims pending samples and queues
//! them for the embedder thread (one batch running, one waiting), while the *writer* stores the
//! vectors of the previous batch and scores the prompts it touched. Claims expire, so samples
//! claimed by a replica that died are claimed again; scoring happens in arrival order under the
//! prompt's row lock, so nothing is scored twice.
//!
//! Batches are shared fairly between projects and prompts (`store::ClaimCursor`), and a sample
//! that cannot be embedded fails alone: when a batch fails, its samples are embedded one by one,
//! the good ones go on, and the bad one's claim is released to be retried a little later.
//!
//! Beside them the *sampler* (`sampling`) keeps each prompt's backlog within what the worker
//! scores in `worker_max_scoring_delay_secs`, thinning new arrivals under overload, from the
//! pace the claimer reports.

mod embedder_thread;
pub mod explain;
mod sampling;
mod scoring;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

pub use embedder_thread::{embed_batch, EmbedderHandle};
pub use sampling::SamplingSettings;
use sampling::Throughput;
pub use scoring::score_prompt;
use scoring::score_prompt_in;

use crate::store::{ClaimCursor, ClaimedSample, Store};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub batch_size: i64,
    pub claim_timeout: Duration,
    pub poll_interval: Duration,
    pub max_attempts: i64,
    pub sampling: SamplingSettings,
}

/// A claimed batch after the model: one vector or error per sample, in the same order.
struct Embedded {
    samples: Vec<ClaimedSample>,
    vectors: Vec<Result<Vec<f32>, String>>,
}

/// A sample that failed to embed is claimed again after this long times its attempts, so it
/// does not fail the very next batch again.
const RETRY_BACKOFF_MS: i64 = 5_000;

/// Starts the worker; it stops when `shutdown` turns true.
pub fn spawn(
    store: Store,
    embedder: EmbedderHandle,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (done_tx, done_rx) = mpsc::channel::<Embedded>(1);
    let throughput = Arc::new(std::sync::Mutex::new(Throughput::default()));
    let sampler = sampling::spawn(store.clone(), settings.sampling.clone(), throughput.clone(), shutdown.clone());
    let writer = tokio::spawn(write_loop(store.clone(), embedder.model_id().to_string(), settings.clone(), done_rx));
    tokio::spawn(async move {
        claim_loop(store, embedder, settings, wake, shutdown, done_tx, &throughput).await;
        let _ = writer.await;
        if let Some(sampler) = sampler {
            let _ = sampler.await;
        }
        tracing::info!("embedding worker stopped");
    })
}

async fn claim_loop(
    store: Store,
    embedder: EmbedderHandle,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<Embedded>,
    throughput: &std::sync::Mutex<Throughput>,
) {
    let claim_ms = settings.claim_timeout.as_millis() as i64;
    let mut cursor = ClaimCursor::default();
    let mut busy = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let claimed = match store.claim_pending(settings.batch_size, claim_ms, &mut cursor).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim samples; retrying");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            throughput.lock().expect("throughput lock").idle();
            // Idle: finish anything embedded but not scored (e.g. after a crash), then wait.
            rescore_leftovers(&store).await;
            if std::mem::take(&mut busy) {
                // the model's run buffers are freed; give the pages back to the OS
                let _ = tokio::task::spawn_blocking(crate::resources::trim_heap).await;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        busy = true;
        throughput.lock().expect("throughput lock").claimed(claimed.len(), std::time::Instant::now());
        let vectors = embed_each(&embedder, &claimed).await;
        if done.send(Embedded { samples: claimed, vectors }).await.is_err() {
            return;
        }
    }
}

/// Embeds the batch in one go; if that fails, splits it in halves and embeds those the same
/// way, so only the sample that cannot be embedded fails, and the rest costs about one more
/// batch's model time (a sample at a time would cost several).
async fn embed_each(embedder: &EmbedderHandle, samples: &[ClaimedSample]) -> Vec<Result<Vec<f32>, String>> {
    let mut results: Vec<Result<Vec<f32>, String>> = vec![Err(String::new()); samples.len()];
    // ranges of `samples` still to embed, the whole batch first
    let mut todo: Vec<std::ops::Range<usize>> = Vec::with_capacity(8);
    todo.push(0..samples.len());
    while let Some(range) = todo.pop() {
        let texts: Vec<String> = samples[range.clone()].iter().map(|s| s.response_text.clone()).collect();
        let model_run = std::time::Instant::now();
        match embedder.embed(texts).await {
            Ok(vectors) if vectors.len() == range.len() => {
                crate::observe::embedded(range.len(), model_run.elapsed());
                for (slot, vector) in results[range].iter_mut().zip(vectors) {
                    *slot = Ok(vector);
                }
            }
            Ok(vectors) => {
                let error = format!("{} vectors for {} texts", vectors.len(), range.len());
                results[range].fill(Err(error));
            }
            Err(error) if range.len() == 1 => results[range.start] = Err(error.to_string()),
            Err(error) => {
                if range.len() == samples.len() {
                    tracing::warn!(%error, samples = samples.len(), "a batch failed to embed; looking for the sample that fails");
                }
                let middle = range.start + range.len() / 2;
                todo.push(middle..range.end);
                todo.push(range.start..middle);
            }
        }
    }
    results
}

async fn write_loop(store: Store, model_id: String, settings: WorkerSettings, mut done: mpsc::Receiver<Embedded>) {
    while let Some(batch) = done.recv().await {
        let mut pairs: Vec<(i64, Vec<f32>)> = Vec::with_capacity(batch.samples.len());
        for (sample, vector) in batch.samples.iter().zip(batch.vectors) {
            match vector {
                Ok(vector) => pairs.push((sample.id, vector)),
                Err(error) => give_up_or_retry(&store, sample, &error, settings.max_attempts).await,
            }
        }
        let prompts: BTreeSet<i64> = batch.samples.iter().map(|s| s.prompt_id).collect();
        store_and_score(&store, &pairs, &model_id, prompts).await;
    }
}

/// A worker transaction stops taking more prompts once it has held the writer this long, so
/// ingest never waits long for it (SQLite has one writer).
const GROUP_HOLD: Duration = Duration::from_millis(8);

/// Stores a batch's vectors and scores the prompts it touched, in as few transactions as
/// [`GROUP_HOLD`] allows: each commit is a turn of the one SQLite writer that ingest waits for.
/// A prompt that fails is undone alone and retried on its own afterwards.
async fn store_and_score(store: &Store, vectors: &[(i64, Vec<f32>)], model_id: &str, prompts: BTreeSet<i64>) {
    let mut failed = Vec::new();
    let written = async {
        let mut group = store.begin_scoring_group().await?;
        group.store_embeddings(vectors, model_id).await?;
        for prompt_id in prompts {
            if group.held() >= GROUP_HOLD {
                group.commit().await?;
                group = store.begin_scoring_group().await?;
            }
            if let Err(e) = score_prompt_in(&mut group, prompt_id).await {
                tracing::warn!(prompt_id, error = %e, "scoring failed; retrying alone");
                failed.push(prompt_id);
            }
        }
        group.commit().await
    }
    .await;
    if let Err(e) = written {
        // Vectors not yet committed are embedded again when their claims expire; embedded
        // samples left unscored are scored when the worker is next idle.
        tracing::warn!(error = %e, "could not store a batch's vectors and scores; they will be redone");
    }
    for prompt_id in failed {
        score_with_retry(store, prompt_id).await;
    }
}

/// A sample that failed to embed: marked failed after its last attempt (it then no longer
/// holds up its prompt), otherwise released to be claimed again after a pause.
async fn give_up_or_retry(store: &Store, sample: &ClaimedSample, error: &str, max_attempts: i64) {
    if sample.attempts >= max_attempts {
        // a problem with this sample's data, not with the server: counted on /metrics
        tracing::warn!(sample_id = sample.id, attempts = sample.attempts, %error, "sample could not be embedded; marked failed");
        match store.mark_failed(sample.id, error).await {
            Ok(()) => crate::observe::samples_failed(1),
            Err(e) => tracing::warn!(error = %e, "could not mark sample failed"),
        }
    } else {
        tracing::warn!(sample_id = sample.id, attempts = sample.attempts, %error, "sample could not be embedded; will retry");
        if let Err(e) = store.release_claim(sample.id, RETRY_BACKOFF_MS * sample.attempts).await {
            tracing::warn!(error = %e, "could not release the claim; it expires on its own");
        }
    }
}

async fn score_with_retry(store: &Store, prompt_id: i64) {
    for attempt in 1..=3 {
        match score_prompt(store, prompt_id).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(prompt_id, attempt, error = %e, "scoring failed");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    }
}

async fn rescore_leftovers(store: &Store) {
    match store.prompts_with_embedded_samples().await {
        Ok(ids) => {
            for id in ids {
                score_with_retry(store, id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for unscored samples"),
    }
}
