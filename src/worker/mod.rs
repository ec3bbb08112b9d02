//! The embedding worker, run inside `serve` (unless disabled for API-only replicas).
//!
//! A two-stage pipeline keeps the model busy: the *claimer* claims pending samples and queues
//! them for the embedder thread (one batch running, one waiting), while the *writer* stores the
//! vectors of the previous batch and scores the prompts it touched. Claims expire, so samples
//! claimed by a replica that died are claimed again; scoring happens in arrival order under the
//! prompt's row lock, so nothing is scored twice.

mod embedder_thread;
pub mod explain;
mod scoring;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

pub use embedder_thread::{embed_batch, EmbedderHandle};
pub use scoring::score_prompt;

use crate::store::{ClaimedSample, Store};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub batch_size: i64,
    pub claim_timeout: Duration,
    pub poll_interval: Duration,
    pub max_attempts: i64,
}

struct Embedded {
    samples: Vec<ClaimedSample>,
    vectors: Result<Vec<Vec<f32>>, String>,
}

/// Starts the worker; it stops when `shutdown` turns true.
pub fn spawn(
    store: Store,
    embedder: EmbedderHandle,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (done_tx, done_rx) = mpsc::channel::<Embedded>(1);
    let writer = tokio::spawn(write_loop(store.clone(), embedder.model_id().to_string(), settings.clone(), done_rx));
    tokio::spawn(async move {
        claim_loop(store, embedder, settings, wake, shutdown, done_tx).await;
        let _ = writer.await;
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
) {
    let claim_ms = settings.claim_timeout.as_millis() as i64;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let claimed = match store.claim_pending(settings.batch_size, claim_ms).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim samples; retrying");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            // Idle: finish anything embedded but not scored (e.g. after a crash), then wait.
            rescore_leftovers(&store).await;
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let texts = claimed.iter().map(|s| s.response_text.clone()).collect();
        let model_run = std::time::Instant::now();
        let vectors = embedder.embed(texts).await.map_err(|e| e.to_string());
        if vectors.is_ok() {
            crate::observe::embedded(claimed.len(), model_run.elapsed());
        }
        if done.send(Embedded { samples: claimed, vectors }).await.is_err() {
            return;
        }
    }
}

async fn write_loop(store: Store, model_id: String, settings: WorkerSettings, mut done: mpsc::Receiver<Embedded>) {
    while let Some(batch) = done.recv().await {
        match batch.vectors {
            Ok(vectors) => {
                let pairs: Vec<(i64, Vec<f32>)> = batch.samples.iter().map(|s| s.id).zip(vectors).collect();
                if let Err(e) = store.store_embeddings(&pairs, &model_id).await {
                    // The claims expire and the samples are embedded again.
                    tracing::warn!(error = %e, "could not store embeddings; they will be redone");
                    continue;
                }
            }
            Err(error) => {
                tracing::error!(%error, samples = batch.samples.len(), "embedding failed");
                for s in batch.samples.iter().filter(|s| s.attempts >= settings.max_attempts) {
                    match store.mark_failed(s.id, &error).await {
                        Ok(()) => crate::observe::samples_failed(1),
                        Err(e) => tracing::warn!(error = %e, "could not mark sample failed"),
                    }
                }
                continue;
            }
        }
        let prompts: BTreeSet<i64> = batch.samples.iter().map(|s| s.prompt_id).collect();
        for prompt_id in prompts {
            score_with_retry(&store, prompt_id).await;
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
