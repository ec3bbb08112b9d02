//! The embedder lives on one dedicated OS thread (ONNX Runtime work must never run on the async
//! runtime) and takes batches of texts over a channel.
//!
//! Feeding it well is where throughput comes from: exact duplicates are embedded once, texts are
//! sorted by token count so each run pads little, and runs are capped by tokens (not by count)
//! so long texts do not blow up memory.
//!
//! Under a backlog it also trades memory for speed ([`BacklogSession`]): the int8-weights model
//! is the smallest, and a second session with float matrix weights (same vectors, 10-20 %
//! faster, about 100 MiB more with ONNX Runtime's pre-packed copies) is loaded while the
//! embedder is nearly always busy and dropped once it has been idle a moment. An idle server
//! keeps the small footprint, and a backlog drains at the speed of plain float weights.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::embed::{EmbedError, Embedder, EmbedderSettings};

/// The float-weights session is loaded when the embedder was busy this share of a window...
const BUSY_SHARE_TO_SPEED_UP: f64 = 0.8;
/// ...of this length (a few batches: a short burst is not worth a load).
const BUSY_WINDOW: Duration = Duration::from_secs(2);
/// It is dropped after this long without work. Loading it again costs about 0.4 s of one core,
/// so giving the memory back quickly costs little even with bursty traffic.
const IDLE_TO_SLOW_DOWN: Duration = Duration::from_secs(2);

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
    /// With `speed_up_on_backlog`, a busy embedder runs a float-weights session (see the module
    /// docs); it has no effect when `settings.float_weights` already asks for one.
    pub async fn start(
        settings: EmbedderSettings,
        max_run_tokens: usize,
        speed_up_on_backlog: bool,
    ) -> Result<EmbedderHandle, EmbedError> {
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
                let speed_up = speed_up_on_backlog && !settings.float_weights;
                let mut backlog = BacklogSession::new(EmbedderSettings { float_weights: true, ..settings }, speed_up);
                while let Some(job) = backlog.next_job(&mut jobs_rx) {
                    let started = Instant::now();
                    let result = match &fault {
                        Some(marker) if job.texts.iter().any(|t| t.contains(marker.as_str())) => {
                            Err(EmbedError::BadOutput(format!("injected fault: a text contains {marker:?}")))
                        }
                        _ => embed_batch(backlog.session().unwrap_or(&mut embedder), &job.texts, max_run_tokens),
                    };
                    let _ = job.reply.send(result);
                    backlog.worked(started);
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

/// The optional float-weights session and when to have it.
struct BacklogSession {
    settings: EmbedderSettings,
    session: Option<Embedder>,
    window_start: Instant,
    busy_in_window: Duration,
    last_job_end: Instant,
    /// Waits with a timeout on the job channel (this thread has no runtime of its own). `None`:
    /// the speed-up is off (not asked for, no timer, or the float session failed to load).
    timer: Option<tokio::runtime::Runtime>,
}

impl BacklogSession {
    fn new(settings: EmbedderSettings, enabled: bool) -> Self {
        let timer = match enabled.then(|| tokio::runtime::Builder::new_current_thread().enable_time().build()) {
            Some(Ok(timer)) => Some(timer),
            Some(Err(error)) => {
                tracing::warn!(%error, "no timer for the embedder thread; no speed-up on backlog");
                None
            }
            None => None,
        };
        Self {
            settings,
            session: None,
            window_start: Instant::now(),
            busy_in_window: Duration::ZERO,
            last_job_end: Instant::now(),
            timer,
        }
    }

    /// The next job; drops the float-weights session when none comes for [`IDLE_TO_SLOW_DOWN`].
    fn next_job(&mut self, jobs: &mut mpsc::Receiver<EmbedJob>) -> Option<EmbedJob> {
        if let (Some(_), Some(timer)) = (&self.session, &self.timer) {
            match timer.block_on(async { tokio::time::timeout(IDLE_TO_SLOW_DOWN, jobs.recv()).await }) {
                Ok(job) => return job,
                Err(_idle) => {
                    self.session = None;
                    crate::resources::trim_heap();
                    tracing::info!("embedder idle: float-weights session dropped");
                }
            }
        }
        jobs.blocking_recv()
    }

    /// Records a job's time; loads the float-weights session when the embedder has been busy
    /// most of the last window.
    fn worked(&mut self, started: Instant) {
        if self.timer.is_none() || self.session.is_some() {
            return;
        }
        let now = Instant::now();
        if started.saturating_duration_since(self.last_job_end) >= BUSY_WINDOW {
            // work after a pause: the window starts with it, so one long job is enough to tell
            (self.window_start, self.busy_in_window) = (started, Duration::ZERO);
        }
        self.last_job_end = now;
        // only the part of the job inside the window counts
        self.busy_in_window += now - started.max(self.window_start);
        let window = now - self.window_start;
        if window < BUSY_WINDOW {
            return;
        }
        let busy_share = self.busy_in_window.as_secs_f64() / window.as_secs_f64();
        (self.window_start, self.busy_in_window) = (now, Duration::ZERO);
        if busy_share < BUSY_SHARE_TO_SPEED_UP {
            return;
        }
        let loading = Instant::now();
        // Give back what the int8 session's runs freed before the load's own scratch (model
        // bytes, parsed graph, folding) comes on top, and the scratch after: this keeps the
        // peak near the steady size instead of their sum.
        crate::resources::trim_heap();
        let loaded = Embedder::load(&self.settings);
        crate::resources::trim_heap();
        match loaded {
            Ok(session) => {
                tracing::info!(
                    busy_share,
                    load_ms = loading.elapsed().as_millis() as u64,
                    "embedder busy: float-weights session loaded until it idles"
                );
                self.session = Some(session);
            }
            Err(error) => {
                // the int8 session goes on; do not try again every window
                tracing::warn!(%error, "could not load the float-weights session; staying on int8 weights");
                self.timer = None;
            }
        }
    }

    fn session(&mut self) -> Option<&mut Embedder> {
        self.session.as_mut()
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
