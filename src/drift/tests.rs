//! Engine unit tests on controlled vector streams: a "topic" is a random unit direction, and a
//! sample is that direction plus isotropic noise, normalised, which gives similarity spreads like
//! real sentence embeddings of one prompt's answers.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn defaults() -> Thresholds {
    Thresholds {
        min_baseline_samples: 30,
        drift_threshold: 0.7,
        length_drift_threshold: 1.5,
        budget: budget::Budget::default(),
    }
}

fn unit(v: Vec<f64>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| (x / n) as f32).collect()
}

fn gaussian(rng: &mut StdRng) -> f64 {
    // Box-Muller
    let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn topic(rng: &mut StdRng) -> Vec<f64> {
    let v = unit((0..DIM).map(|_| gaussian(rng)).collect());
    v.into_iter().map(|x| x as f64).collect()
}

/// Noise 0.05 per dimension gives similarities to the centre around 0.6-0.7.
fn sample(rng: &mut StdRng, centre: &[f64], noise: f64) -> Vec<f32> {
    unit(centre.iter().map(|c| c + noise * gaussian(rng)).collect())
}

fn length(rng: &mut StdRng, typical: f64) -> usize {
    (typical * (0.4 * gaussian(rng)).exp()).round().max(1.0) as usize
}

struct Run {
    baseline: Baseline,
    signals: Vec<(usize, DriftSignal)>,
    resolved: Vec<(usize, DriftSignal)>,
    seen: usize,
}

impl Run {
    fn new() -> Self {
        Run { baseline: Baseline::new(), signals: Vec::new(), resolved: Vec::new(), seen: 0 }
    }

    fn feed(&mut self, vector: &[f32], chars: usize, t: &Thresholds) -> Outcome {
        let out = self.baseline.observe(vector, chars, t);
        for s in &out.signals {
            self.signals.push((self.seen, s.clone()));
        }
        for s in &out.resolved {
            self.resolved.push((self.seen, s.clone()));
        }
        self.seen += 1;
        out
    }
}

#[test]
fn learning_then_ready_at_min_samples() {
    let mut rng = StdRng::seed_from_u64(1);
    let centre = topic(&mut rng);
    let t = Thresholds { min_baseline_samples: 10, ..defaults() };
    let mut run = Run::new();
    for i in 0..9 {
        let out = run.feed(&sample(&mut rng, &centre, 0.05), 100, &t);
        assert_eq!(out, Outcome::default());
        assert_eq!(run.baseline.status(), BaselineStatus::Learning);
        assert_eq!(run.baseline.sample_count(), i + 1);
    }
    run.feed(&sample(&mut rng, &centre, 0.05), 100, &t);
    assert_eq!(run.baseline.status(), BaselineStatus::Ready);
    assert_eq!(run.baseline.sample_count(), 10);
    let out = run.feed(&sample(&mut rng, &centre, 0.05), 100, &t);
    assert!(out.similarity.unwrap() > 0.3);
    assert!(out.semantic_score.is_none(), "no window score before the window is full");
}

/// Twenty stable streams (three noise levels) of 1,000 samples each raise no signal. Split into
/// four tests of five seeds so the test threads share them: at the test build's opt-level each
/// stream takes about three seconds.
fn stable_streams_stay_quiet(seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let centre = topic(&mut rng);
        let noise = [0.03, 0.05, 0.08][seed as usize % 3];
        let mut run = Run::new();
        for _ in 0..1000 {
            let len = length(&mut rng, 300.0);
            run.feed(&sample(&mut rng, &centre, noise), len, &defaults());
        }
        assert!(run.signals.is_empty(), "seed {seed}: {:?}", run.signals);
        assert_eq!(run.baseline.sample_count(), MAX_REFERENCE, "reference grows to the cap on stable data");
    }
}

#[test]
fn stable_streams_stay_quiet_seeds_0_to_4() {
    stable_streams_stay_quiet(0..5);
}

#[test]
fn stable_streams_stay_quiet_seeds_5_to_9() {
    stable_streams_stay_quiet(5..10);
}

#[test]
fn stable_streams_stay_quiet_seeds_10_to_14() {
    stable_streams_stay_quiet(10..15);
}

#[test]
fn stable_streams_stay_quiet_seeds_15_to_19() {
    stable_streams_stay_quiet(15..20);
}

#[test]
fn topic_change_fires_once_per_episode_and_is_not_learnt() {
    let mut rng = StdRng::seed_from_u64(7);
    let (a, b) = (topic(&mut rng), topic(&mut rng));
    let mut run = Run::new();
    for _ in 0..80 {
        run.feed(&sample(&mut rng, &a, 0.05), 200, &defaults());
    }
    let reference_before = run.baseline.sample_count();
    for _ in 0..300 {
        run.feed(&sample(&mut rng, &b, 0.05), 200, &defaults());
    }
    let semantic: Vec<_> = run.signals.iter().filter(|(_, s)| s.kind == DriftKind::Semantic).collect();
    assert_eq!(semantic.len(), 1, "{:?}", run.signals);
    let (at, signal) = semantic[0];
    assert!((80..80 + 20).contains(at), "detected at {at}");
    assert!(signal.score < 0.7 && signal.threshold == 0.7 && signal.window_size == WINDOW);
    assert!(run.signals.iter().all(|(_, s)| s.kind != DriftKind::Length), "lengths did not change");
    // The distribution test sees the new topic too (once).
    assert_eq!(run.signals.iter().filter(|(_, s)| s.kind == DriftKind::Distribution).count(), 1, "{:?}", run.signals);
    // only the stable samples that left the window before the detection were absorbed; no
    // sample of the new topic ever entered the reference
    let grown = run.baseline.sample_count() - reference_before;
    assert!(grown <= at - 80 + 1, "{reference_before} -> {} (detected at {at})", run.baseline.sample_count());
    assert!(run.baseline.drift_open());
}

#[test]
fn episode_closes_after_a_clear_window_and_can_fire_again() {
    let mut rng = StdRng::seed_from_u64(8);
    let (a, b) = (topic(&mut rng), topic(&mut rng));
    let mut run = Run::new();
    let phases = [(&a, 60), (&b, 60), (&a, 80), (&b, 60)];
    for (centre, n) in phases {
        for _ in 0..n {
            run.feed(&sample(&mut rng, centre, 0.05), 200, &defaults());
        }
    }
    let at: Vec<usize> = run.signals.iter().filter(|(_, s)| s.kind == DriftKind::Semantic).map(|(i, _)| *i).collect();
    assert_eq!(at.len(), 2, "{:?}", run.signals);
    assert!((60..80).contains(&at[0]) && (200..220).contains(&at[1]), "{at:?}");
    // the first episode is reported resolved once, a whole window after the old topic returned
    let resolved: Vec<_> = run.resolved.iter().filter(|(_, s)| s.kind == DriftKind::Semantic).collect();
    assert_eq!(resolved.len(), 1, "{:?}", run.resolved);
    let (resolved_at, signal) = resolved[0];
    assert!((140..200).contains(resolved_at), "resolved at {resolved_at}");
    assert_eq!(signal.kind, DriftKind::Semantic);
    assert!(signal.score >= 0.7, "clear again: {}", signal.score);
}

#[test]
fn longer_and_shorter_responses_fire_length_drift() {
    for (factor, sign) in [(4.0, 1.0), (0.25, -1.0)] {
        let mut rng = StdRng::seed_from_u64(9);
        let centre = topic(&mut rng);
        let mut run = Run::new();
        for _ in 0..100 {
            let len = length(&mut rng, 300.0);
            run.feed(&sample(&mut rng, &centre, 0.05), len, &defaults());
        }
        for _ in 0..100 {
            let len = length(&mut rng, 300.0 * factor);
            run.feed(&sample(&mut rng, &centre, 0.05), len, &defaults());
        }
        assert_eq!(run.signals.len(), 1, "factor {factor}: {:?}", run.signals);
        let (at, s) = &run.signals[0];
        assert_eq!(s.kind, DriftKind::Length);
        assert!(s.score * sign > 1.5, "{s:?}");
        assert!((100..140).contains(at), "factor {factor}: at {at}");
    }
}

#[test]
fn thresholds_are_respected() {
    let mut rng = StdRng::seed_from_u64(10);
    let a = topic(&mut rng);
    let other = topic(&mut rng);
    // a related topic: its centre has cosine 0.5 with the first one
    let b: Vec<f64> = a.iter().zip(&other).map(|(x, y)| 0.5 * x + 0.75f64.sqrt() * y).collect();
    let lax =
        Thresholds { min_baseline_samples: 30, drift_threshold: 0.3, length_drift_threshold: 100.0, ..defaults() };
    let (mut defaults_run, mut lax_run) = (Run::new(), Run::new());
    let (mut lowest_semantic, mut highest_length) = (f64::MAX, f64::MIN);
    for i in 0..200 {
        let (centre, len) = if i < 80 { (&a, 100) } else { (&b, 1000) };
        let v = sample(&mut rng, centre, 0.05);
        defaults_run.feed(&v, len, &defaults());
        let out = lax_run.feed(&v, len, &lax);
        lowest_semantic = lowest_semantic.min(out.semantic_score.unwrap_or(f64::MAX));
        highest_length = highest_length.max(out.length_score.unwrap_or(f64::MIN));
    }
    // the change is there and the defaults flag both kinds...
    assert!(
        lowest_semantic < 0.7 && lowest_semantic > 0.3 && highest_length > 1.5,
        "{lowest_semantic} {highest_length}"
    );
    let thresholded = |run: &Run| {
        run.signals.iter().filter(|(_, s)| matches!(s.kind, DriftKind::Semantic | DriftKind::Length)).count()
    };
    assert_eq!(thresholded(&defaults_run), 2, "{:?}", defaults_run.signals);
    // ...but these thresholds say it is not drift (the distribution test has no threshold here)
    assert_eq!(thresholded(&lax_run), 0, "{:?}", lax_run.signals);
}

#[test]
fn state_survives_serialisation() {
    let mut rng = StdRng::seed_from_u64(11);
    let centre = topic(&mut rng);
    let mut a = Baseline::new();
    for _ in 0..70 {
        a.observe(&sample(&mut rng, &centre, 0.05), 120, &defaults());
    }
    let mut b = Baseline::from_stored(&a.to_bytes()).unwrap();
    let v = sample(&mut rng, &centre, 0.05);
    assert_eq!(a.observe(&v, 130, &defaults()), b.observe(&v, 130, &defaults()));
}

/// Feeds `n` samples of one topic to `baseline` and returns the outcomes.
fn feed(baseline: &mut Baseline, rng: &mut StdRng, centre: &[f64], n: usize) -> Vec<Outcome> {
    (0..n).map(|_| baseline.observe(&sample(rng, centre, 0.05), length(rng, 300.0), &defaults())).collect()
}

#[test]
fn binary_state_round_trips_in_every_phase_and_scores_the_same() {
    let mut rng = StdRng::seed_from_u64(31);
    let (centre, elsewhere) = (topic(&mut rng), topic(&mut rng));
    let mut baseline = Baseline::new();
    // learning (10 of 30), ready with a part-filled window, full window, then drifting
    for (n, centre) in [(10, &centre), (25, &centre), (40, &centre), (30, &elsewhere)] {
        feed(&mut baseline, &mut rng, centre, n);
        let restored = Baseline::from_stored(&baseline.to_bytes()).expect("binary state reads back");
        assert_eq!(restored.to_bytes(), baseline.to_bytes());
        // the restored engine answers the next samples exactly as the original does
        let (mut a, mut b) = (baseline.clone(), restored);
        let mut twin = rng.clone();
        assert_eq!(feed(&mut a, &mut rng, centre, 25), feed(&mut b, &mut twin, centre, 25));
    }
}

#[test]
fn json_states_written_by_earlier_versions_still_load() {
    let mut rng = StdRng::seed_from_u64(32);
    let centre = topic(&mut rng);
    for n in [12, 60] {
        let mut baseline = Baseline::new();
        feed(&mut baseline, &mut rng, &centre, n);
        let json = serde_json::to_vec(&baseline).unwrap();
        let mut from_json = Baseline::from_stored(&json).expect("a JSON state reads");
        assert_eq!((from_json.status(), from_json.sample_count()), (baseline.status(), baseline.sample_count()));
        // JSON decimals round-trip to within the last bit: the same answers, to 1e-9
        let mut twin = rng.clone();
        let original = feed(&mut baseline, &mut rng, &centre, 30);
        let restored = feed(&mut from_json, &mut twin, &centre, 30);
        for (a, b) in original.iter().zip(&restored) {
            assert_eq!(a.signals.len(), b.signals.len());
            for (x, y) in
                [(a.similarity, b.similarity), (a.semantic_score, b.semantic_score), (a.length_score, b.length_score)]
            {
                assert!(
                    x.zip(y).is_none_or(|(x, y)| (x - y).abs() < 1e-9) && x.is_some() == y.is_some(),
                    "{x:?} {y:?}"
                );
            }
        }
    }
}

#[test]
fn damaged_binary_states_are_errors_not_panics() {
    let mut rng = StdRng::seed_from_u64(33);
    let centre = topic(&mut rng);
    let mut baseline = Baseline::new();
    feed(&mut baseline, &mut rng, &centre, 50);
    let bytes = baseline.to_bytes();
    for cut in [0, 3, 4, 5, 100, bytes.len() - 1] {
        assert!(Baseline::from_stored(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut huge_length = bytes.clone();
    huge_length[5..13].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(Baseline::from_stored(&huge_length).is_err());
    assert!(Baseline::from_stored(b"XXXX").is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(Baseline::from_stored(&longer), Err(DecodeError::TrailingBytes)));
}

#[test]
fn a_learning_state_at_the_largest_baseline_stays_small() {
    let mut rng = StdRng::seed_from_u64(34);
    let centre = topic(&mut rng);
    let mut baseline = Baseline::new();
    let t = Thresholds { min_baseline_samples: 2_001, ..defaults() };
    for _ in 0..2_000 {
        baseline.observe(&sample(&mut rng, &centre, 0.05), 300, &t);
    }
    let (binary, json) = (baseline.to_bytes().len(), serde_json::to_vec(&baseline).unwrap().len());
    // 2,000 learning vectors plus the distribution test's 100 reference vectors.
    assert!(binary < 3_400_000, "{binary} bytes");
    assert!(binary * 2 < json, "binary {binary} vs JSON {json}");
}

#[test]
fn version_1_states_load_and_the_statistical_tests_start_afresh() {
    let mut rng = StdRng::seed_from_u64(35);
    let centre = topic(&mut rng);
    let mut baseline = Baseline::new();
    feed(&mut baseline, &mut rng, &centre, 80);
    let mut restored = Baseline::from_stored(&baseline.to_bytes_version_1()).expect("a version 1 state reads");
    assert_eq!((restored.status(), restored.sample_count()), (baseline.status(), baseline.sample_count()));
    assert_eq!(restored.reference_refusal_rate(), None);
    // The semantic and length scores go on exactly as before.
    let mut twin = rng.clone();
    let (a, b) = (feed(&mut baseline, &mut rng, &centre, 30), feed(&mut restored, &mut twin, &centre, 30));
    for (a, b) in a.iter().zip(&b) {
        assert_eq!((a.similarity, a.semantic_score, a.length_score), (b.similarity, b.semantic_score, b.length_score));
    }
    // The refusal test has learnt a reference from the samples absorbed since.
    assert!(restored.reference_refusal_rate().is_some());
}
