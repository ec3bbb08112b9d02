//! The distribution test: do a prompt version's recent responses come from the same
//! distribution as its reference? A kernel two-sample test (maximum mean discrepancy, MMD) on
//! the embeddings, so it sees any change of the distribution: a move of the mean in any
//! direction (a flip of tone on one topic), a new cluster (a share of refusals), a shifted
//! mixture of answer kinds, a narrower or wider spread; the centroid's cosine sees only the
//! first of these, and only when the move is large.
//!
//! Definition (also in docs/drift.md, "Distribution drift"):
//! - Reference `R`: the first [`REFERENCE`] reference vectors (the warm-up samples, then the
//!   ones the baseline absorbs). Recent window `W`: the last up to [`WINDOW`] samples that are
//!   not in `R` (so the two never share a sample); a look needs at least [`MIN_WINDOW`].
//! - Kernel: Gaussian on the squared distance of unit vectors,
//!   `k(x, y) = exp(-|x - y|^2 / h)`, `h` the median squared distance between reference
//!   vectors (the usual median heuristic, fixed by the reference, not by the window).
//! - Statistic: the biased MMD^2 = mean k(W, W) + mean k(R, R) - 2 mean k(W, R).
//! - p-value: a permutation test. [`PERMUTATIONS`] random relabellings of the pooled samples
//!   give the statistic's mean and variance when the labels carry no information; a Gamma
//!   distribution with those moments (Gretton et al., 2009) gives the tail probability of the
//!   observed statistic, so p-values far below `1 / PERMUTATIONS` are available, which a
//!   false-alarm budget of one per 100,000 samples needs.
//! - Evidence = `-log10(p)`. A look happens every [`STEP`] samples.
//!
//! Cost of a look with a full reference and window: 11,175 dot products of the embedding
//! dimension and `PERMUTATIONS x WINDOW^2 / 2` additions (measured in BENCHMARKS.md, "Detector cost"). Storage:
//! the reference and window vectors, `(REFERENCE + WINDOW) x dimension x 4` bytes (230 KB for
//! 384 dimensions) per prompt version.

use rand::rngs::StdRng;
use rand::seq::index::sample as sample_indices;
use rand::SeedableRng;
use statrs::distribution::{ContinuousCDF, Gamma};

use std::collections::{HashMap, HashSet, VecDeque};

/// Reference vectors the test keeps.
pub const REFERENCE: usize = 100;
/// Most recent samples a look compares with the reference.
pub const WINDOW: usize = 50;
/// Fewest window samples for a look.
pub const MIN_WINDOW: usize = 20;
/// Samples between looks.
pub const STEP: usize = 5;
/// Random relabellings per look.
pub const PERMUTATIONS: usize = 200;
/// Looks in a row whose evidence must reach the threshold before the test fires: each look
/// fits its tail to new permutations, so one look's fitting noise cannot fire it alone. Two
/// were not enough: on the most mixed stream of real answers (llm-answers, BENCHMARKS.md, "Three looks for the distribution test") two
/// looks in a row once reached 4.63 against a line of 4.60.
pub const PERSISTENCE: usize = 3;

/// The test's state for one prompt version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DistributionTest {
    pub(super) reference: Vec<Vec<f32>>,
    /// (sample sequence number, vector), oldest first.
    pub(super) window: VecDeque<(u64, Vec<f32>)>,
    /// Samples observed since the last look.
    pub(super) since_look: usize,
    /// Evidence (`-log10 p`) of the latest look, 0 before the first.
    pub(super) evidence: f64,
    /// Looks made so far (seeds each look's permutations, so a replay gives the same result).
    pub(super) looks: u64,
    /// Looks in a row whose evidence reached the threshold.
    pub(super) above_run: usize,
    /// Dot products kept between looks (not stored: rebuilt after a restart).
    cache: DotCache,
}

/// Dot products the next look can reuse: each reference pair once, each window sample's with
/// the reference once. A look then computes only the window's own pairs.
#[derive(Debug, Clone, Default, PartialEq)]
struct DotCache {
    /// `reference[i][j]` = reference `i` . reference `j`, for `j < i`.
    reference: Vec<Vec<f64>>,
    /// Window sample (by sequence number) -> its dots with the reference vectors, in order.
    window: HashMap<u64, Vec<f64>>,
    /// (reference size, median squared distance of its pairs).
    bandwidth: Option<(usize, f64)>,
}

/// The result of a look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub evidence: f64,
    pub statistic: f64,
    pub window_size: usize,
}

impl DistributionTest {
    pub fn reference_full(&self) -> bool {
        self.reference.len() >= REFERENCE
    }

    /// Adds a warm-up or absorbed sample to the reference while it has room; a sample that
    /// joins the reference leaves the window. Returns whether it was taken.
    pub fn offer_reference(&mut self, seq: u64, vector: &[f32]) -> bool {
        if self.reference_full() {
            return false;
        }
        self.reference.push(vector.to_vec());
        self.window.retain(|(s, _)| *s != seq);
        true
    }

    /// Records a new sample; looks when a look is due. Returns the look, if any.
    pub fn observe(&mut self, seq: u64, vector: &[f32]) -> Option<Look> {
        self.window.push_back((seq, vector.to_vec()));
        if self.window.len() > WINDOW {
            self.window.pop_front();
        }
        self.since_look += 1;
        if self.since_look < STEP || self.window.len() < MIN_WINDOW || self.reference.len() < MIN_WINDOW {
            return None;
        }
        self.since_look = 0;
        self.looks += 1;
        let look = self.look();
        self.evidence = look.evidence;
        Some(look)
    }

    /// Kernel similarity of two unit vectors under the current reference's bandwidth (for
    /// explanations: which responses are least like the other side).
    pub fn kernel(&self) -> Kernel {
        Kernel { bandwidth: self.bandwidth() }
    }

    /// Brings the cache up to the current reference and window.
    fn sync_cache(&mut self) {
        let reference = &self.reference;
        let cache = &mut self.cache;
        while cache.reference.len() < reference.len() {
            let i = cache.reference.len();
            cache.reference.push((0..i).map(|j| dot(&reference[i], &reference[j])).collect());
        }
        let seqs: HashSet<u64> = self.window.iter().map(|(seq, _)| *seq).collect();
        cache.window.retain(|seq, _| seqs.contains(seq));
        for (seq, vector) in &self.window {
            let dots = cache.window.entry(*seq).or_default();
            while dots.len() < reference.len() {
                dots.push(dot(vector, &reference[dots.len()]));
            }
        }
        if cache.bandwidth.is_none_or(|(n, _)| n != reference.len()) {
            let mut distances: Vec<f64> =
                cache.reference.iter().flat_map(|row| row.iter().map(|d| squared_distance(*d))).collect();
            let h = median(&mut distances).filter(|h| *h > 1e-6).unwrap_or(1.0);
            cache.bandwidth = Some((reference.len(), h));
        }
    }

    fn bandwidth(&self) -> f64 {
        let mut distances = Vec::with_capacity(self.reference.len() * self.reference.len() / 2);
        for (i, a) in self.reference.iter().enumerate() {
            for b in &self.reference[i + 1..] {
                distances.push(squared_distance(dot(a, b)));
            }
        }
        median(&mut distances).filter(|h| *h > 1e-6).unwrap_or(1.0)
    }

    fn look(&mut self) -> Look {
        self.sync_cache();
        let (m, n) = (self.window.len(), self.reference.len());
        let total = m + n;
        let bandwidth = self.cache.bandwidth.map_or(1.0, |(_, h)| h);
        let kernel = |dot: f64| (-squared_distance(dot) / bandwidth).exp();
        // The pooled Gram matrix of kernel values: window first, then reference.
        let mut gram = vec![0.0f64; total * total];
        let mut set = |i: usize, j: usize, k: f64| {
            gram[i * total + j] = k;
            gram[j * total + i] = k;
        };
        let window: Vec<&(u64, Vec<f32>)> = self.window.iter().collect();
        for (a, (seq, vector)) in window.iter().enumerate() {
            set(a, a, 1.0);
            for (b, (_, other)) in window.iter().enumerate().skip(a + 1) {
                set(a, b, kernel(dot(vector, other)));
            }
            for (r, d) in self.cache.window[seq].iter().enumerate() {
                set(a, m + r, kernel(*d));
            }
        }
        for (i, row) in self.cache.reference.iter().enumerate() {
            set(m + i, m + i, 1.0);
            for (j, d) in row.iter().enumerate() {
                set(m + i, m + j, kernel(*d));
            }
        }
        let row_sums: Vec<f64> = (0..total).map(|i| gram[i * total..(i + 1) * total].iter().sum()).collect();
        let grand: f64 = row_sums.iter().sum();

        // MMD^2 of a labelling from the sum over window pairs and the window's row sums.
        let statistic_of = |window_pairs: f64, window_rows: f64| {
            let cross = window_rows - window_pairs;
            let reference_pairs = grand - 2.0 * window_rows + window_pairs;
            window_pairs / (m * m) as f64 + reference_pairs / (n * n) as f64 - 2.0 * cross / (m * n) as f64
        };
        let observed = {
            let pairs: f64 = (0..m).map(|i| gram[i * total..i * total + m].iter().sum::<f64>()).sum();
            statistic_of(pairs, row_sums[..m].iter().sum())
        };

        let mut rng = StdRng::seed_from_u64(self.looks);
        let mut null = Vec::with_capacity(PERMUTATIONS);
        let mut chosen = Vec::with_capacity(m);
        for _ in 0..PERMUTATIONS {
            chosen.clear();
            chosen.extend(sample_indices(&mut rng, total, m));
            // Each pair once (the Gram matrix is symmetric), the diagonal of ones apart.
            let mut pairs = 0.0;
            let mut rows = 0.0;
            for (a, &i) in chosen.iter().enumerate() {
                let row = &gram[i * total..(i + 1) * total];
                rows += row_sums[i];
                pairs += chosen[a + 1..].iter().map(|&j| row[j]).sum::<f64>();
            }
            let pairs = 2.0 * pairs + m as f64;
            null.push(statistic_of(pairs, rows));
        }
        Look { evidence: pearson_iii_evidence(observed, &null), statistic: observed, window_size: m }
    }
}

/// `-log10` of the upper tail probability of `x` under a Pearson type III distribution (a
/// shifted Gamma) with the mean, variance and skewness of `null`; a normal tail when the
/// skewness is about zero. 0 when `x` is not above the mean or the null is degenerate.
///
/// Why three moments: the statistic's null distribution starts well above zero (the kernel's
/// diagonal), so a Gamma fitted by two moments has far too light a tail; measured against
/// 200,000 permutations it put 1e-3 tail events at 1e-6 and below. The shift the skewness
/// gives puts them back within a factor of a few, and `DISTRIBUTION_PERSISTENCE` absorbs what
/// is left of one look's fitting noise (each look draws new permutations).
fn pearson_iii_evidence(x: f64, null: &[f64]) -> f64 {
    let n = null.len() as f64;
    if null.len() < 3 || !x.is_finite() {
        return 0.0;
    }
    let mean = null.iter().sum::<f64>() / n;
    let m2 = null.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let m3 = null.iter().map(|v| (v - mean).powi(3)).sum::<f64>() / n;
    if m2 <= 0.0 || m2.is_nan() || x <= mean {
        return 0.0;
    }
    let sd = (m2 * n / (n - 1.0)).sqrt();
    // Sample skewness, adjusted for bias (the usual G1).
    let skew = m3 / m2.powf(1.5) * (n * (n - 1.0)).sqrt() / (n - 2.0);
    let p = if skew < 0.05 {
        standard_normal_tail((x - mean) / sd)
    } else {
        let shape = 4.0 / (skew * skew);
        let scale = sd * skew / 2.0;
        let origin = mean - shape * scale;
        match Gamma::new(shape, 1.0 / scale) {
            Ok(gamma) => gamma.sf(x - origin),
            Err(_) => return 0.0,
        }
    };
    if p > 0.0 {
        -p.log10()
    } else {
        // Below f64's range: the tail is at least this small.
        300.0
    }
}

fn standard_normal_tail(z: f64) -> f64 {
    statrs::distribution::Normal::new(0.0, 1.0).expect("valid parameters").sf(z)
}

/// The test's kernel, for explanations.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    bandwidth: f64,
}

impl Kernel {
    pub fn similarity(&self, a: &[f32], b: &[f32]) -> f64 {
        (-squared_distance(dot(a, b)) / self.bandwidth).exp()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    // f32 products summed in f32 lanes vectorise; the sum of 384 terms stays accurate to 1e-6.
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() as f64
}

/// `|x - y|^2` of unit vectors from their dot product.
fn squared_distance(dot: f64) -> f64 {
    (2.0 - 2.0 * dot).max(0.0)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn unit(rng: &mut StdRng, centre: &[f64], noise: f64) -> Vec<f32> {
        let v: Vec<f64> = centre.iter().map(|c| c + noise * (rng.gen::<f64>() - 0.5) * 3.46).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| (x / n) as f32).collect()
    }

    fn direction(rng: &mut StdRng, dim: usize) -> Vec<f64> {
        let v: Vec<f64> = (0..dim).map(|_| rng.gen::<f64>() - 0.5).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Feeds `reference` samples to the reference, then `stream`; returns the largest evidence
    /// that [`PERSISTENCE`] looks in a row all reached (what firing needs).
    fn max_evidence(reference: &[Vec<f32>], stream: &[Vec<f32>]) -> f64 {
        let mut test = DistributionTest::default();
        let mut seq = 0;
        for v in reference {
            seq += 1;
            assert!(test.offer_reference(seq, v));
        }
        let mut looks = Vec::new();
        for v in stream {
            seq += 1;
            if let Some(look) = test.observe(seq, v) {
                looks.push(look.evidence);
            }
        }
        looks.windows(PERSISTENCE).map(|w| w.iter().copied().fold(f64::MAX, f64::min)).fold(0.0, f64::max)
    }

    #[test]
    fn same_distribution_gives_little_evidence_and_a_mixture_shift_gives_much() {
        let mut rng = StdRng::seed_from_u64(7);
        let (a, b) = (direction(&mut rng, 64), direction(&mut rng, 64));
        // A stable 50/50 mixture of two clusters...
        let mixture = |rng: &mut StdRng, share_a: f64| -> Vec<f32> {
            let centre = if rng.gen::<f64>() < share_a { &a } else { &b };
            unit(rng, centre, 0.08)
        };
        let reference: Vec<Vec<f32>> = (0..REFERENCE).map(|_| mixture(&mut rng, 0.5)).collect();
        let stable: Vec<Vec<f32>> = (0..400).map(|_| mixture(&mut rng, 0.5)).collect();
        let quiet = max_evidence(&reference, &stable);
        // Below the default budget's 4.6 (a two-cluster mixture is the hardest null to fit).
        assert!(quiet < 4.6, "stable evidence {quiet}");
        // ...shifted to 90/10: the centroid moves little, the distribution a lot.
        let shifted: Vec<Vec<f32>> = (0..2 * WINDOW).map(|_| mixture(&mut rng, 0.9)).collect();
        let loud = max_evidence(&reference, &shifted);
        assert!(loud > 6.0, "shifted evidence {loud}");
    }

    #[test]
    fn a_reference_sample_leaves_the_window() {
        let mut test = DistributionTest::default();
        test.observe(1, &[1.0, 0.0]);
        test.observe(2, &[0.0, 1.0]);
        assert!(test.offer_reference(1, &[1.0, 0.0]));
        assert_eq!(test.window.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn degenerate_inputs_give_no_evidence() {
        assert_eq!(pearson_iii_evidence(1.0, &[0.0, 0.0, 0.0]), 0.0);
        assert_eq!(pearson_iii_evidence(f64::NAN, &[0.0, 1.0, 2.0]), 0.0);
        assert_eq!(pearson_iii_evidence(0.5, &[0.0, 1.0, 2.0]), 0.0);
        assert_eq!(pearson_iii_evidence(5.0, &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn the_tail_fit_matches_known_distributions() {
        // A symmetric null: the normal tail. 2,001 evenly spaced normal quantiles.
        let normal = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
        let null: Vec<f64> = (1..=2001).map(|i| normal.inverse_cdf(i as f64 / 2002.0)).collect();
        let e = pearson_iii_evidence(4.0, &null);
        assert!((e - 4.5).abs() < 0.3, "P(Z > 4) is 3.2e-5: evidence {e}");
        // A skewed null: chi-square with 2 degrees of freedom (exponential, P(X > 20) = e^-10).
        let null: Vec<f64> = (1..=2001).map(|i| -2.0 * (1.0 - i as f64 / 2002.0).ln()).collect();
        let e = pearson_iii_evidence(20.0, &null);
        assert!((e - 10.0 / std::f64::consts::LN_10).abs() < 0.6, "evidence {e}");
    }
}
