//! The embedder lives on one dedicated OS thread (ONNX Runtime work must never run on the async
//! runtime) and takes batches of texts over a channel.
//!
//! Feeding it well is where throughput comes from: exact duplicates are embedded once, texts are
//! sorted by token count so each run pads little, and runs are capped by tokens (not by count)
//! so long texts do not blow up memory.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use crate::embed::{EmbedError, Embedder, EmbedderSettings};

pub struct EmbedJob {
    pub texts: Vec<String>,
    pub reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// Handle to the embedder thread. Dropping every handle ends the thread.
#[derive(Clone)]
pub struct EmbedderHandle {
    jobs: mpsc::Sender<EmbedJob>,
    model_id: String,
}

impl EmbedderHandle {
    /// Loads the model on a new thread; fails (with the loader's message) if it cannot.
    pub async fn start(settings: EmbedderSettings, max_run_tokens: usize) -> Result<EmbedderHandle, EmbedError> {
        let (jobs_tx, mut jobs_rx) = mpsc::channel::<EmbedJob>(1);
        let (ready_tx, ready_rx) = oneshot::channel();
        let fault = injected_fault();
        std::thread::Builder::new()
            .name("embedder".into())
            .spawn(move || {
                // Before the model loads: ONNX Runtime's pool threads inherit the priority.
                crate::resources::lower_this_threads_priority();
                let mut embedder = match Embedder::load(&settings) {
                    Ok(e) => {
                        // loading freed the model's file bytes and the rewrite's scratch:
                        // give them back now, not after the first backlog
                        crate::resources::trim_heap();
                        let _ = ready_tx.send(Ok(e.model_id().to_string()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Some(job) = jobs_rx.blocking_recv() {
                    let result = match &fault {
                        Some(marker) if job.texts.iter().any(|t| t.contains(marker.as_str())) => {
                            Err(EmbedError::BadOutput(format!("injected fault: a text contains {marker:?}")))
                        }
                        _ => embed_batch(&mut embedder, &job.texts, max_run_tokens),
                    };
                    let _ = job.reply.send(result);
                }
            })
            .expect("spawn embedder thread");
        let model_id = ready_rx.await.expect("embedder thread answers")?;
        Ok(EmbedderHandle { jobs: jobs_tx, model_id })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Embeds the texts (one vector per text, same order).
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(EmbedJob { texts, reply }).await.is_err() {
            return Err(EmbedError::BadOutput("the embedder thread has stopped".into()));
        }
        answer.await.unwrap_or_else(|_| Err(EmbedError::BadOutput("the embedder thread has stopped".into())))
    }
}

/// For tests of the worker's failure handling (a model run that fails on one input is rare and
/// cannot be provoked with a real text): with `DRIFTBALLOON_FAULT_EMBED_TEXT` set, any model call
/// with a text containing that string fails. Unset in production; the server logs it when set.
fn injected_fault() -> Option<String> {
    let marker = std::env::var("DRIFTBALLOON_FAULT_EMBED_TEXT").ok().filter(|m| !m.is_empty())?;
    tracing::warn!(marker, "DRIFTBALLOON_FAULT_EMBED_TEXT is set: texts containing it fail to embed (for tests)");
    Some(marker)
}

/// Embeds unique texts in runs of similar length, each run at most `max_run_tokens` tokens
/// (counting padding), and maps the vectors back to the caller's order.
pub fn embed_batch(
    embedder: &mut Embedder,
    texts: &[String],
    max_run_tokens: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut unique: Vec<&str> = Vec::new();
    let mut slot_of: HashMap<&str, usize> = HashMap::new();
    let slots: Vec<usize> = texts
        .iter()
        .map(|t| {
            *slot_of.entry(t.as_str()).or_insert_with(|| {
                unique.push(t.as_str());
                unique.len() - 1
            })
        })
        .collect();

    let mut order: Vec<(usize, usize)> = unique.iter().enumerate().map(|(i, t)| (embedder.token_count(t), i)).collect();
    order.sort_unstable();

    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); unique.len()];
    let mut start = 0;
    while start < order.len() {
        // sorted ascending, so the last text of a run is its longest: the run costs
        // (count x longest) tokens once padded
        let mut end = start + 1;
        while end < order.len() && (end + 1 - start) * order[end].0 <= max_run_tokens.max(order[start].0) {
            end += 1;
        }
        let run: Vec<&str> = order[start..end].iter().map(|(_, i)| unique[*i]).collect();
        for ((_, i), v) in order[start..end].iter().zip(embedder.embed(&run)?) {
            vectors[*i] = v;
        }
        start = end;
    }
    Ok(slots.into_iter().map(|s| vectors[s].clone()).collect())
}
