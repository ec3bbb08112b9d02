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
//! - Most of an overload never reaches the passes: each thinning pass also sets the prompt's
//!   keep probability at ingest ([`crate::store::IngestKeep`]) so that about [`INGEST_HEADROOM`]
//!   times the prompt's share of the worker's pace is queued, and the rest is stored `skipped`
//!   at once (a coin per sample, blind to content like the passes). The passes then choose among
//!   those, so marking the excess `skipped` no longer rewrites every sample on the writer. The
//!   probability returns to 1 as soon as a prompt's queue has room for all its new arrivals.
//! - The prompt's sampling rate (kept / seen over the passes of the last [`RATE_WINDOW`], the
//!   samples skipped at ingest counted as seen) is in its row (API, dashboard) and on
//!   `/metrics`; it returns to 1 when a whole window passes without thinning.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{PromptBacklog, Store, StoreResult};

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

/// Kept samples may join a prompt's queue this much faster than its share of the worker's pace.
const KEEP_PACE_HEADROOM: f64 = 1.25;
/// Only queues shorter than this many worker batches are paced: there one claimed batch is a
/// large part of the queue, and filling the room at once leaves the gaps `paced_keep` is about.
/// A longer queue (the default bound holds a minute of work) frees room a batch at a time, and a
/// burst that fits it is kept whole, as the docs promise.
const PACED_BELOW_BATCHES: usize = 4;
/// A pass after a longer gap (a slow database) is paced as if after this long.
const MAX_PACED_GAP: Duration = Duration::from_secs(2);

/// How many of `room_keep` (what fits the queue) a pass keeps: no more than the prompt's share
/// of the worker's pace since the last pass (with some headroom), so the kept samples are spread
/// over time like the traffic. Filling the room at once kept a pass's worth of samples, then none
/// while the worker scored them (a batch can be the whole queue), leaving stretches of the
/// stream with no scored sample. A prompt with nothing queued gets what fits at once: the worker
/// would otherwise wait.
fn paced_keep(room_keep: usize, queued: usize, share_per_sec: f64, since_last_pass: Duration) -> usize {
    if queued == 0 {
        return room_keep;
    }
    let paced = (KEEP_PACE_HEADROOM * share_per_sec * since_last_pass.as_secs_f64()).ceil() as usize;
    room_keep.min(paced.max(1))
}

/// An overloaded prompt's samples are queued at ingest at this many times its share of the
/// worker's pace: enough that a pass always has more to choose from than it keeps (the pace is
/// an estimate, and arrivals vary between passes), few enough that the passes' rewrites of the
/// excess are a small cost.
const INGEST_HEADROOM: f64 = 4.0;
/// The ingest keep probability never goes below this (a bound on how stale a rate can starve a
/// prompt whose traffic falls: it is set again on the next pass anyway).
const MIN_INGEST_KEEP: f64 = 1e-4;

/// The keep probability at ingest that queues about [`INGEST_HEADROOM`] times `share_per_sec`
/// when samples arrive at `arrivals_per_sec` (at most 1).
fn ingest_keep(share_per_sec: f64, arrivals_per_sec: f64) -> f64 {
    if arrivals_per_sec <= 0.0 {
        return 1.0;
    }
    (INGEST_HEADROOM * share_per_sec / arrivals_per_sec).clamp(MIN_INGEST_KEEP, 1.0)
}

/// One prompt's thinning passes within [`RATE_WINDOW`]: (when, kept, seen).
type Passes = VecDeque<(Instant, u64, u64)>;

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
    /// Prompts whose rate is below 1, with their recent passes. Loaded from the store on the
    /// first pass, so a rate left below 1 by a previous run also returns to 1.
    lowered: Option<HashMap<i64, Passes>>,
    rng: StdRng,
    last_pass: Option<Instant>,
    /// When each prompt's new arrivals were last decided on (its mark moved).
    last_thinned: HashMap<i64, Instant>,
}

impl Sampler {
    fn new(settings: SamplingSettings) -> Sampler {
        Sampler { settings, lowered: None, rng: StdRng::from_entropy(), last_pass: None, last_thinned: HashMap::new() }
    }

    /// Thins every backlog over its target, given the worker's pace. On an error the next pass
    /// tries again (until then samples are simply scored).
    async fn pass(&mut self, store: &Store, per_sec: f64) -> StoreResult<()> {
        if self.lowered.is_none() {
            let lowered = store.prompts_sampled_below_full().await?;
            self.lowered = Some(lowered.into_iter().map(|id| (id, Passes::new())).collect());
        }
        let backlogs = store.backlogs().await?;
        let capacity = (per_sec * self.settings.max_delay.as_secs_f64()) as usize;
        let demands: Vec<(i64, usize)> =
            backlogs.iter().map(|b| (b.prompt_id, (b.queued + b.undecided).max(0) as usize)).collect();
        let targets = targets(&demands, capacity, self.settings.min_per_prompt);
        let all_targets = targets.iter().sum::<usize>().max(1) as f64;
        let now = Instant::now();
        let since_last_pass = self.last_pass.map_or(PASS_INTERVAL, |at| now.duration_since(at)).min(MAX_PACED_GAP);
        self.last_pass = Some(now);
        let ingest = store.ingest_keep();
        for (backlog, target) in backlogs.iter().zip(targets) {
            let (queued, undecided) = (backlog.queued.max(0) as usize, backlog.undecided.max(0) as usize);
            if undecided == 0 {
                continue;
            }
            if queued + undecided <= target {
                // room for every new arrival: queue them all again
                ingest.set(backlog.prompt_id, 1.0);
                continue;
            }
            // the prompt's share of the worker's pace, in samples a second
            let share_per_sec = per_sec * target as f64 / all_targets;
            let room = keep_count(target, queued, undecided);
            let keep = if target < PACED_BELOW_BATCHES * self.settings.min_per_prompt {
                paced_keep(room, queued, share_per_sec, since_last_pass)
            } else {
                room
            };
            // arrivals since the mark last moved, counting those the ingest coin skipped
            let since = self.last_thinned.get(&backlog.prompt_id).map_or(since_last_pass, |at| now.duration_since(*at));
            let ingest_before = ingest.probability(backlog.prompt_id);
            let arrived = undecided as f64 / ingest_before;
            let arrivals_per_sec = arrived / since.as_secs_f64().max(0.001);
            if self.thin(store, backlog, keep, arrived.round() as u64, now).await? {
                self.last_thinned.insert(backlog.prompt_id, now);
                ingest.set(backlog.prompt_id, ingest_keep(share_per_sec, arrivals_per_sec));
            }
        }
        // a prompt with nothing waiting any more queues everything again
        let waiting: std::collections::HashSet<i64> = backlogs.iter().map(|b| b.prompt_id).collect();
        for prompt_id in ingest.lowered().into_iter().filter(|id| !waiting.contains(id)) {
            ingest.set(prompt_id, 1.0);
        }
        self.last_thinned.retain(|id, _| waiting.contains(id));
        self.restore_full_rates(store, now).await
    }

    /// Keeps a uniform random `keep` of the prompt's undecided samples and skips the others;
    /// `arrived` is how many samples came in with them (the ones skipped at ingest included), for
    /// the reported rate. False when nothing was decided (another replica was first, or the
    /// samples were claimed meanwhile).
    async fn thin(
        &mut self,
        store: &Store,
        backlog: &PromptBacklog,
        keep: usize,
        arrived: u64,
        now: Instant,
    ) -> StoreResult<bool> {
        let ids = store.undecided_samples(backlog.prompt_id, backlog.sampled_through).await?;
        let Some(&through) = ids.last() else { return Ok(false) };
        let keep = keep.min(ids.len());
        let mut skip_mask = vec![true; ids.len()];
        for kept in rand::seq::index::sample(&mut self.rng, ids.len(), keep) {
            skip_mask[kept] = false;
        }
        let skip: Vec<i64> = ids.iter().zip(&skip_mask).filter(|(_, skip)| **skip).map(|(id, _)| *id).collect();
        let lowered = self.lowered.get_or_insert_with(HashMap::new);
        let passes = lowered.entry(backlog.prompt_id).or_default();
        passes.push_back((now, keep as u64, arrived.max(ids.len() as u64)));
        while passes.front().is_some_and(|(at, _, _)| now.duration_since(*at) > RATE_WINDOW) {
            passes.pop_front();
        }
        let (kept, seen) = passes.iter().fold((0, 0), |(k, s), (_, kept, seen)| (k + kept, s + seen));
        let rate = kept as f64 / seen.max(1) as f64;
        let Some(skipped) =
            store.thin_backlog(backlog.prompt_id, backlog.sampled_through, through, &skip, rate).await?
        else {
            return Ok(false);
        };
        crate::observe::samples_skipped(skipped);
        crate::observe::sampling_rate(backlog.prompt_id, rate);
        tracing::debug!(prompt_id = backlog.prompt_id, kept = keep, skipped, rate, "thinned an overloaded backlog");
        Ok(true)
    }

    /// A prompt with no thinning for a whole [`RATE_WINDOW`] is back to full scoring.
    async fn restore_full_rates(&mut self, store: &Store, now: Instant) -> StoreResult<()> {
        let Some(lowered) = &mut self.lowered else { return Ok(()) };
        let recovered: Vec<i64> = lowered
            .iter()
            .filter(|(_, passes)| passes.back().is_none_or(|(at, _, _)| now.duration_since(*at) > RATE_WINDOW))
            .map(|(id, _)| *id)
            .collect();
        for prompt_id in recovered {
            store.set_sampling_rate(prompt_id, 1.0).await?;
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
    fn ingest_queues_a_few_times_the_workers_pace() {
        // 40 a second scored, 10,000 arriving: 160 a second queued
        assert!((ingest_keep(40.0, 10_000.0) - 0.016).abs() < 1e-12);
        // arrivals within the headroom: everything queued
        assert_eq!(ingest_keep(40.0, 150.0), 1.0);
        assert_eq!(ingest_keep(40.0, 0.0), 1.0);
        // never quite zero
        assert_eq!(ingest_keep(0.0, 10_000.0), MIN_INGEST_KEEP);
    }

    #[test]
    fn kept_samples_join_the_queue_at_the_workers_pace() {
        // room for 64, the prompt's share is 40 a second, a quarter second since the last pass
        assert_eq!(paced_keep(64, 64, 40.0, Duration::from_millis(250)), 13);
        // less room than pace: what fits
        assert_eq!(paced_keep(5, 64, 40.0, Duration::from_millis(250)), 5);
        // nothing queued: fill the room at once, the worker is waiting
        assert_eq!(paced_keep(64, 0, 40.0, Duration::from_millis(250)), 64);
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
