//! What the drift engine costs per scored sample, with the distribution and refusal-rate
//! detectors (issue 31), against what embedding a sample costs. No server, no database: the
//! engine alone, fed 384-dimension unit vectors around one direction (the cost does not depend
//! on what the vectors mean), in the phases a prompt version goes through.
//!
//! `cargo bench --bench detectors` (or `make bench-detectors`) prints microseconds per sample.

use std::time::Instant;

use driftballoon::drift::budget::Budget;
use driftballoon::drift::distribution::DistributionTest;
use driftballoon::drift::{Baseline, SampleInput, Thresholds};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn unit(rng: &mut StdRng, centre: &[f64]) -> Vec<f32> {
    let v: Vec<f64> = centre.iter().map(|c| c + 0.05 * (rng.gen::<f64>() - 0.5) * 3.46).collect();
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / n) as f32).collect()
}

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    let centre: Vec<f64> = {
        let v: Vec<f64> = (0..DIM).map(|_| rng.gen::<f64>() - 0.5).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect()
    };
    let vectors: Vec<Vec<f32>> = (0..3_000).map(|_| unit(&mut rng, &centre)).collect();
    let t = Thresholds {
        min_baseline_samples: 30,
        drift_threshold: 0.7,
        length_drift_threshold: 1.5,
        budget: Budget::default(),
    };

    // The whole engine, sample by sample, as the worker calls it; the first 300 samples fill
    // the references and windows, the rest is the steady state.
    let mut baseline = Baseline::new();
    for (i, v) in vectors[..300].iter().enumerate() {
        baseline.observe_sample(SampleInput { vector: v, response_chars: 200 + i % 50, refusal: i % 40 == 0 }, &t);
    }
    let started = Instant::now();
    for (i, v) in vectors[300..].iter().enumerate() {
        baseline.observe_sample(SampleInput { vector: v, response_chars: 200 + i % 50, refusal: i % 40 == 0 }, &t);
    }
    let steady = started.elapsed().as_secs_f64() * 1e6 / (vectors.len() - 300) as f64;

    // One distribution look alone (every 5th sample makes one).
    let mut test = DistributionTest::default();
    for (seq, v) in vectors[..100].iter().enumerate() {
        test.offer_reference(seq as u64, v);
    }
    let (mut looks, started) = (0, Instant::now());
    for (seq, v) in vectors[100..].iter().enumerate() {
        looks += test.observe(100 + seq as u64, v).is_some() as usize;
    }
    let per_look = started.elapsed().as_secs_f64() * 1e6 / looks as f64;

    // The stored state a ready version carries, rewritten with every scored batch.
    let state = baseline.to_bytes().len();
    println!("engine, steady state (all four detectors): {steady:.1} us per sample");
    println!("distribution look (50 recent vs 100 reference, 200 permutations): {per_look:.0} us per look, one look per 5 samples");
    println!("stored state of a ready version: {:.0} KB", state as f64 / 1024.0);
}
