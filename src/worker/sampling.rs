//! Overload sampling: detection stays current when samples arrive faster than the worker can
//! score them.
//!
//! Without it the backlog, and with it the time until a change is detected, grows without bound
//! under overload. With it, the worker keeps each prompt's backlog to about what it can score
//! within `max_delay` (its measured throughput times `max_delay`, shared between the prompts
//! that have work, a prompt that needs less leaving the rest to the others), and thins the new
//! arrivals beyond that:
//! - Every pass looks at each prompt's *undecided* samples: pending, unclaimed, newer than the
//!   prompt's `sampled_through` mark. When queued plus undecided fit the prompt's target,
//!   nothing happens (quiet traffic is scored in full). Otherwise it keeps a uniform random
//!   subset of the undecided samples, as many as fit (none when the queue is already full), marks
//!   the others `skipped`, and moves the mark past them, so no sample is decided on twice.
//! - The choice depends only on counts, never on content: the scored samples of each prompt
//!   version are a content-blind subsample of its stream, so on a stable stream the detectors'
//!   windows hold the same distribution as without sampling and their false-alarm budgets hold.
//! - A skipped sample stays stored (text, model, tokens) and shows in counts and exports, but is
//!   never embedded or scored, not even later: scoring keeps arrival order, and scoring it late
//!   would put old behaviour into a current window.
//! - Thinning alone wrote almost every sample of an overloaded prompt twice (stored pending,
//!   then updated to skipped): near the ingest ceiling a second write for most samples. So the
//!   sampler also gives ingest a keep rate per prompt, about twice the share it keeps: ingest
//!   stores a uniform random share of the new samples as skipped at once (a coin per sample,
//!   blind to content like the rest), and the thinning pass picks the exact number that fits
//!   from the others. Twice, so that the pass still has spare samples to choose from when the
//!   load grows. When a pass needs no thinning the keep rate doubles, back to 1 within a few
//!   passes of the load dropping.
//! - The prompt's sampling rate (kept / arrived over the passes of the last [`RATE_WINDOW`],
//!   arrivals estimated from what the pass saw and the keep rate ingest used) is in its row
//!   (API, dashboard) and on `/metrics`; it returns to 1 when a whole window passes without
//!   anything skipped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{PromptBacklog, SamplingRates, Store, StoreResult};

/// How often the sampler looks at the backlogs. It runs beside the claim loop, not in it: a
/// pass that waits for the database writer must not leave the model without work.
const PASS_INTERVAL: Duration = Duration::from_millis(250);
/// The reported sampling rate covers the thinning passes of this long.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Until the worker has measured its own throughput (samples a second while busy).
const PRIOR_SAMPLES_PER_SEC: f64 = 50.0;
/// Weight of the newest measurement in the throughput's moving average.
const THROUGHPUT_SMOOTHING: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct SamplingSettings {
    /// About how long a sample may wait to be scored before new arrivals are thinned; zero
    /// turns sampling off (every sample is scored, however long the backlog grows).
    pub max_delay: Duration,
    /// No prompt's target is below this many samples (one worker batch): with very many busy
    /// prompts the delay bound then stretches rather than a prompt being starved.
    pub min_per_prompt: usize,
}

/// The worker's rate of getting through samples while busy, measured claim to claim (the
/// pipeline's pace: the slower of the model and the writer).
#[derive(Debug, Default)]
pub(super) struct Throughput {
    per_sec: Option<f64>,
    last_claim: Option<(Instant, usize)>,
}

impl Throughput {
    /// A batch of `claimed` samples was claimed at `now`, right after the previous batch.
    pub(super) fn claimed(&mut self, claimed: usize, now: Instant) {
        if let Some((at, previous)) = self.last_claim {
            let seconds = now.duration_since(at).as_secs_f64();
            if seconds > 0.0 {
                let rate = previous as f64 / seconds;
                self.per_sec = Some(match self.per_sec {
                    Some(old) => old + THROUGHPUT_SMOOTHING * (rate - old),
                    None => rate,
                });
            }
        }
        self.last_claim = Some((now, claimed));
    }

    /// The worker went idle: the next claim starts a new measurement.
    pub(super) fn idle(&mut self) {
        self.last_claim = None;
    }

    fn per_sec(&self) -> f64 {
        self.per_sec.unwrap_or(PRIOR_SAMPLES_PER_SEC)
    }
}

/// Each prompt's target backlog: `capacity` samples shared out so that a prompt wanting less
/// than an equal share gets what it wants and leaves the rest to the others (water filling),
/// none below `floor`. `demands` are (prompt, samples waiting); the answer is in the same order.
fn targets(demands: &[(i64, usize)], capacity: usize, floor: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..demands.len()).collect();
    order.sort_by_key(|&i| demands[i].1);
    let mut targets = vec![0; demands.len()];
    let mut left = capacity;
    for (rank, &i) in order.iter().enumerate() {
        let share = left / (demands.len() - rank);
        let target = demands[i].1.min(share).max(floor);
        targets[i] = target;
        left = left.saturating_sub(target);
    }
    targets
}

/// How many of `undecided` new samples to keep when `queued` already wait and the prompt's
/// target is `target`: all of them while everything fits, else what fits.
fn keep_count(target: usize, queued: usize, undecided: usize) -> usize {
    if queued + undecided <= target {
        undecided
    } else {
        target.saturating_sub(queued).min(undecided)
    }
}

/// The lowest keep rate ingest is given: a prompt whose queue is full still sends a few samples
/// to each pass, so the pass sees the stream and raises the rate when room comes back.
const MIN_INGEST_KEEP: f64 = 1.0 / 1024.0;

/// One thinning pass of a prompt: when, how many samples it kept, how many arrived (what it saw,
/// divided by the keep rate ingest used), and whether it skipped any.
#[derive(Debug, Clone, Copy)]
struct Pass {
    at: Instant,
    kept: f64,
    arrived: f64,
    skipped_any: bool,
}

/// A prompt sampled below full: its recent passes (within [`RATE_WINDOW`]) and the keep rate
/// ingest uses now.
#[derive(Debug)]
struct Lowered {
    passes: VecDeque<Pass>,
    ingest_keep: f64,
}

impl Lowered {
    fn new(ingest_keep: f64) -> Lowered {
        Lowered { passes: VecDeque::new(), ingest_keep }
    }

    /// Records a pass that kept `kept` of the `seen` samples ingest had queued; returns the
    /// rates to publish.
    fn record(&mut self, now: Instant, kept: usize, seen: usize) -> SamplingRates {
        let arrived = seen as f64 / self.ingest_keep;
        self.passes.push_back(Pass {
            at: now,
            kept: kept as f64,
            arrived,
            skipped_any: kept < seen || self.ingest_keep < 1.0,
        });
        while self.passes.front().is_some_and(|p| now.duration_since(p.at) > RATE_WINDOW) {
            self.passes.pop_front();
        }
        self.ingest_keep = next_ingest_keep(self.ingest_keep, kept, seen);
        SamplingRates { reported: self.reported(), ingest_keep: self.ingest_keep }
    }

    /// Kept over arrived in the window, at most 1.
    fn reported(&self) -> f64 {
        let (kept, arrived) = self.passes.iter().fold((0.0, 0.0), |(k, a), p| (k + p.kept, a + p.arrived));
        if arrived <= 0.0 {
            1.0
        } else {
            (kept / arrived).min(1.0)
        }
    }

    /// Nothing skipped, by ingest or a pass, for a whole window.
    fn recovered(&self, now: Instant) -> bool {
        self.ingest_keep >= 1.0 && self.passes.iter().all(|p| !p.skipped_any || now.duration_since(p.at) > RATE_WINDOW)
    }
}

/// Ingest's next keep rate after a pass kept `kept` of the `seen` it had queued at `current`:
/// twice the share of arrivals kept (so the pass has spare samples to choose from), doubling
/// when the pass skipped nothing, never below [`MIN_INGEST_KEEP`] nor above 1.
fn next_ingest_keep(current: f64, kept: usize, seen: usize) -> f64 {
    let next = if seen == 0 || kept >= seen { 2.0 * current } else { 2.0 * current * kept as f64 / seen as f64 };
    next.clamp(MIN_INGEST_KEEP, 1.0)
}

/// Starts the sampler; the claim loop reports its pace into `throughput`. Does nothing when
/// sampling is off. It stops when `shutdown` turns true.
pub(super) fn spawn(
    store: Store,
    settings: SamplingSettings,
    throughput: Arc<Mutex<Throughput>>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if settings.max_delay.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut sampler = Sampler::new(settings);
        let mut ticks = tokio::time::interval(PASS_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            let per_sec = throughput.lock().expect("throughput lock").per_sec();
            if let Err(e) = sampler.pass(&store, per_sec).await {
                tracing::warn!(error = %e, "overload sampling pass failed; will look again");
            }
        }
    }))
}

struct Sampler {
    settings: SamplingSettings,
    /// Prompts sampled below full. Loaded from the store on the first pass, so rates left below
    /// 1 by a previous run also return to 1.
    lowered: Option<HashMap<i64, Lowered>>,
    rng: StdRng,
}

impl Sampler {
    fn new(settings: SamplingSettings) -> Sampler {
        Sampler { settings, lowered: None, rng: StdRng::from_entropy() }
    }

    /// Thins every backlog over its target, given the worker's pace, and moves the ingest keep
    /// rates. On an error the next pass tries again (until then samples are simply scored).
    async fn pass(&mut self, store: &Store, per_sec: f64) -> StoreResult<()> {
        if self.lowered.is_none() {
            let lowered = store.prompts_sampled_below_full().await?;
            self.lowered = Some(lowered.into_iter().map(|(id, keep)| (id, Lowered::new(keep))).collect());
        }
        let backlogs = store.backlogs().await?;
        let capacity = (per_sec * self.settings.max_delay.as_secs_f64()) as usize;
        let demands: Vec<(i64, usize)> =
            backlogs.iter().map(|b| (b.prompt_id, (b.queued + b.undecided).max(0) as usize)).collect();
        let targets = targets(&demands, capacity, self.settings.min_per_prompt);
        let now = Instant::now();
        let mut passed = Vec::new();
        for (backlog, target) in backlogs.iter().zip(targets) {
            let (queued, undecided) = (backlog.queued.max(0) as usize, backlog.undecided.max(0) as usize);
            let lowered = self.lowered.as_ref().is_some_and(|l| l.contains_key(&backlog.prompt_id));
            if undecided == 0 || (queued + undecided <= target && !lowered) {
                continue;
            }
            self.thin(store, backlog, keep_count(target, queued, undecided), now).await?;
            passed.push(backlog.prompt_id);
        }
        self.raise_idle_rates(store, &passed, now).await
    }

    /// Keeps a uniform random `keep` of the prompt's undecided samples and skips the others.
    async fn thin(&mut self, store: &Store, backlog: &PromptBacklog, keep: usize, now: Instant) -> StoreResult<()> {
        let ids = store.undecided_samples(backlog.prompt_id, backlog.sampled_through).await?;
        let Some(&through) = ids.last() else { return Ok(()) };
        let keep = keep.min(ids.len());
        let mut skip_mask = vec![true; ids.len()];
        for kept in rand::seq::index::sample(&mut self.rng, ids.len(), keep) {
            skip_mask[kept] = false;
        }
        let skip: Vec<i64> = ids.iter().zip(&skip_mask).filter(|(_, skip)| **skip).map(|(id, _)| *id).collect();
        let lowered = self.lowered.get_or_insert_with(HashMap::new);
        let prompt = lowered.entry(backlog.prompt_id).or_insert_with(|| Lowered::new(backlog.ingest_keep_rate));
        let rates = prompt.record(now, keep, ids.len());
        if let Some(skipped) =
            store.thin_backlog(backlog.prompt_id, backlog.sampled_through, through, &skip, rates).await?
        {
            crate::observe::samples_skipped(skipped);
            crate::observe::sampling_rate(backlog.prompt_id, rates.reported);
            tracing::debug!(
                prompt_id = backlog.prompt_id,
                kept = keep,
                skipped,
                ?rates,
                "thinned an overloaded backlog"
            );
        }
        Ok(())
    }

    /// A prompt sampled below full that needed no pass this time (nothing new was queued) has
    /// ingest's keep rate doubled; once it is 1 and a whole [`RATE_WINDOW`] skipped nothing, a
    /// prompt is back to full scoring.
    async fn raise_idle_rates(&mut self, store: &Store, passed: &[i64], now: Instant) -> StoreResult<()> {
        let Some(lowered) = &mut self.lowered else { return Ok(()) };
        let mut recovered = Vec::new();
        for (&prompt_id, prompt) in lowered.iter_mut() {
            if prompt.recovered(now) {
                recovered.push(prompt_id);
            } else if prompt.ingest_keep < 1.0 && !passed.contains(&prompt_id) {
                prompt.ingest_keep = next_ingest_keep(prompt.ingest_keep, 0, 0);
                let rates = SamplingRates { reported: prompt.reported(), ingest_keep: prompt.ingest_keep };
                store.set_sampling_rates(prompt_id, rates).await?;
            }
        }
        for prompt_id in recovered {
            store.set_sampling_rates(prompt_id, SamplingRates::FULL).await?;
            crate::observe::sampling_rate(prompt_id, 1.0);
            lowered.remove(&prompt_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_traffic_is_kept_whole() {
        assert_eq!(keep_count(1000, 10, 200), 200);
        assert_eq!(keep_count(1000, 0, 1000), 1000);
    }

    #[test]
    fn an_overload_keeps_what_fits_and_nothing_once_the_queue_is_full() {
        assert_eq!(keep_count(1000, 900, 500), 100);
        assert_eq!(keep_count(1000, 1000, 500), 0);
        assert_eq!(keep_count(1000, 1200, 500), 0);
    }

    #[test]
    fn a_prompt_wanting_little_leaves_the_capacity_to_the_busy_one() {
        let t = targets(&[(1, 100_000), (2, 5), (3, 40)], 3000, 64);
        assert_eq!(t, vec![3000 - 64 - 64, 64, 64]);
        let t = targets(&[(1, 100_000), (2, 100_000)], 3000, 64);
        assert_eq!(t, vec![1500, 1500]);
        // the floor wins over the bound when very many prompts are busy
        assert_eq!(targets(&[(1, 1000), (2, 1000)], 10, 64), vec![64, 64]);
    }

    #[test]
    fn ingest_keeps_twice_the_share_that_fits_and_recovers_by_doubling() {
        // a pass kept 100 of 1,000 queued at a keep rate of 0.5: 5 % of arrivals fit
        assert!((next_ingest_keep(0.5, 100, 1000) - 0.1).abs() < 1e-12);
        // nothing fits: the floor, so passes still see the stream
        assert_eq!(next_ingest_keep(0.5, 0, 1000), MIN_INGEST_KEEP);
        // everything fit, or nothing was queued: doubled, up to 1
        assert_eq!(next_ingest_keep(0.25, 40, 40), 0.5);
        assert_eq!(next_ingest_keep(0.75, 0, 0), 1.0);
    }

    #[test]
    fn the_reported_rate_counts_what_ingest_skipped() {
        let now = Instant::now();
        let mut prompt = Lowered::new(0.1);
        // 100 queued of about 1,000 arrivals, 50 kept: 5 % of arrivals
        let rates = prompt.record(now, 50, 100);
        assert!((rates.reported - 0.05).abs() < 1e-12, "{rates:?}");
        assert!((rates.ingest_keep - 0.1).abs() < 1e-12, "{rates:?}");
        assert!(!prompt.recovered(now));
        // the load drops: nothing skipped, ingest keeps everything again, and after a whole
        // window the prompt is back to full scoring
        let mut later = now;
        while prompt.ingest_keep < 1.0 {
            later += Duration::from_millis(250);
            prompt.record(later, 10, 10);
        }
        assert!(!prompt.recovered(later), "the window still holds skipping passes");
        let after_window = later + RATE_WINDOW + Duration::from_millis(1);
        prompt.record(after_window, 10, 10);
        assert!(prompt.recovered(after_window));
        assert_eq!(prompt.reported(), 1.0);
    }

    #[test]
    fn throughput_is_measured_claim_to_claim_and_restarts_after_idle() {
        let mut t = Throughput::default();
        let start = Instant::now();
        assert_eq!(t.per_sec(), PRIOR_SAMPLES_PER_SEC);
        t.claimed(64, start);
        t.claimed(64, start + Duration::from_millis(500));
        assert!((t.per_sec() - 128.0).abs() < 1e-9);
        t.idle();
        // the idle gap is not counted as slow work
        t.claimed(64, start + Duration::from_secs(60));
        assert!((t.per_sec() - 128.0).abs() < 1e-9);
    }
}
