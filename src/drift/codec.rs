//! The stored form of a [`Baseline`]: a compact little-endian binary encoding (vectors as f32,
//! as they come from the model), versioned by a 4-byte tag. States written before it are JSON;
//! [`Baseline::from_stored`] reads both, so no migration has to rewrite them.
//!
//! Why binary: the JSON of a learning baseline with 2,000 samples is about 8 MB of decimal
//! text that is parsed and printed on every scored batch; the same state is 3 MB here and is
//! copied, not parsed. A ready version (the steady state, with the distribution and refusal
//! tests' state) measured 156 KB (BENCHMARKS.md, "Detector cost").

use std::collections::VecDeque;

use super::distribution::DistributionTest;
use super::rate::RateTest;
use super::{Baseline, BaselineStatus, Episode, RunningStats, WindowEntry};

/// The current format: version 1 plus the distribution and refusal-rate tests' state.
const TAG: &[u8; 4] = b"DBB2";
/// The first binary format, still read: the new tests start from an empty reference.
const TAG_V1: &[u8; 4] = b"DBB1";

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the state ends early")]
    Truncated,
    #[error("unknown state format {0:?}")]
    UnknownFormat(Vec<u8>),
    #[error("JSON state: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bytes left over after the state")]
    TrailingBytes,
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn usize(&mut self, v: usize) {
        self.u64(v as u64);
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, v: bool) {
        self.0.push(v as u8);
    }
    fn f32s(&mut self, v: &[f32]) {
        self.usize(v.len());
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn f64s(&mut self, v: &[f64]) {
        self.usize(v.len());
        for x in v {
            self.f64(*x);
        }
    }
    fn episode(&mut self, e: &Episode) {
        self.bool(e.open);
        self.usize(e.clear_run);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn usize(&mut self) -> Result<usize, DecodeError> {
        Ok(self.u64()? as usize)
    }
    /// A length that must fit in what is left (each element at least `element` bytes), so a
    /// corrupt length cannot make us allocate gigabytes.
    fn len(&mut self, element: usize) -> Result<usize, DecodeError> {
        let n = self.usize()?;
        if n.saturating_mul(element) > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }
    fn f32s(&mut self) -> Result<Vec<f32>, DecodeError> {
        let n = self.len(4)?;
        Ok(self.take(n * 4)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
    fn f64s(&mut self) -> Result<Vec<f64>, DecodeError> {
        let n = self.len(8)?;
        Ok(self.take(n * 8)?.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
    fn episode(&mut self) -> Result<Episode, DecodeError> {
        Ok(Episode { open: self.bool()?, clear_run: self.usize()? })
    }

    /// The fields version 2 added, after version 1's.
    fn version_2(&mut self, b: &mut Baseline) -> Result<(), DecodeError> {
        b.seen = self.u64()?;
        for e in b.window.iter_mut() {
            e.seq = self.u64()?;
            e.refusal = self.bool()?;
        }
        let d = &mut b.distribution;
        let reference_len = self.len(8)?;
        for _ in 0..reference_len {
            d.reference.push(self.f32s()?);
        }
        let window_len = self.len(16)?;
        for _ in 0..window_len {
            d.window.push_back((self.u64()?, self.f32s()?));
        }
        d.since_look = self.usize()?;
        d.evidence = self.f64()?;
        d.looks = self.u64()?;
        d.above_run = self.usize()?;
        let rt = &mut b.refusals;
        rt.reference_n = self.u64()?;
        rt.reference_k = self.u64()?;
        let recent_len = self.len(9)?;
        for _ in 0..recent_len {
            rt.recent.push_back((self.u64()?, self.bool()?));
        }
        rt.evidence = self.f64()?;
        b.distribution_episode = self.episode()?;
        b.refusal_episode = self.episode()?;
        Ok(())
    }
}

impl Baseline {
    /// The state in its stored binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let dim = self.sum.len().max(self.learning.first().map_or(0, |(v, _)| v.len()));
        let mut w = Writer(Vec::with_capacity(
            64 + (self.learning.len() + self.window.len()) * (dim * 4 + 32) + (dim + self.log_lengths.len()) * 8,
        ));
        w.0.extend_from_slice(TAG);
        w.bool(self.status == BaselineStatus::Ready);
        w.usize(self.learning.len());
        for (vector, log_length) in &self.learning {
            w.f32s(vector);
            w.f64(*log_length);
        }
        w.f64s(&self.sum);
        w.usize(self.reference_size);
        let (n, mean, m2) = self.similarity.parts();
        w.u64(n);
        w.f64(mean);
        w.f64(m2);
        w.f64s(&self.log_lengths);
        w.usize(self.window.len());
        for e in &self.window {
            w.f32s(&e.vector);
            w.f64(e.similarity);
            w.f64(e.log_length);
            w.bool(e.tainted);
        }
        w.episode(&self.semantic);
        w.episode(&self.length);
        w.usize(self.semantic_run);
        w.f64(self.last_semantic_t);
        w.f64(self.last_length_score);
        w.bool(self.frozen);
        self.write_version_2(&mut w);
        w.0
    }

    /// What version 2 appends to version 1's fields.
    fn write_version_2(&self, w: &mut Writer) {
        w.u64(self.seen);
        for e in &self.window {
            w.u64(e.seq);
            w.bool(e.refusal);
        }
        let d = &self.distribution;
        w.usize(d.reference.len());
        for v in &d.reference {
            w.f32s(v);
        }
        w.usize(d.window.len());
        for (seq, v) in &d.window {
            w.u64(*seq);
            w.f32s(v);
        }
        w.usize(d.since_look);
        w.f64(d.evidence);
        w.u64(d.looks);
        w.usize(d.above_run);
        let r = &self.refusals;
        w.u64(r.reference_n);
        w.u64(r.reference_k);
        w.usize(r.recent.len());
        for (seq, flagged) in &r.recent {
            w.u64(*seq);
            w.bool(*flagged);
        }
        w.f64(r.evidence);
        w.episode(&self.distribution_episode);
        w.episode(&self.refusal_episode);
    }

    /// The state as version 1 wrote it (the version 2 form is version 1's plus a tail), for
    /// the test that version 1 states still load.
    #[cfg(test)]
    pub(super) fn to_bytes_version_1(&self) -> Vec<u8> {
        let mut tail = Writer(Vec::new());
        self.write_version_2(&mut tail);
        let mut bytes = self.to_bytes();
        bytes.truncate(bytes.len() - tail.0.len());
        bytes[..4].copy_from_slice(TAG_V1);
        bytes
    }

    /// Reads a stored state: the binary form, or the JSON that earlier versions wrote.
    pub fn from_stored(bytes: &[u8]) -> Result<Baseline, DecodeError> {
        if bytes.first() == Some(&b'{') {
            return Ok(serde_json::from_slice(bytes)?);
        }
        let mut r = Reader(bytes);
        let tag = r.take(4).map_err(|_| DecodeError::UnknownFormat(bytes.to_vec()))?;
        let version = match tag {
            t if t == TAG => 2,
            t if t == TAG_V1 => 1,
            _ => return Err(DecodeError::UnknownFormat(tag.to_vec())),
        };
        let status = if r.bool()? { BaselineStatus::Ready } else { BaselineStatus::Learning };
        let learning_len = r.len(16)?;
        let mut learning = Vec::with_capacity(learning_len);
        for _ in 0..learning_len {
            learning.push((r.f32s()?, r.f64()?));
        }
        let sum = r.f64s()?;
        let reference_size = r.usize()?;
        let similarity = RunningStats::from_parts(r.u64()?, r.f64()?, r.f64()?);
        let log_lengths = r.f64s()?;
        let window_len = r.len(33)?;
        let mut window = VecDeque::with_capacity(window_len);
        for _ in 0..window_len {
            window.push_back(WindowEntry {
                // Version 1 had no sequence numbers: number the window 0.. (set below).
                seq: 0,
                refusal: false,
                vector: r.f32s()?,
                similarity: r.f64()?,
                log_length: r.f64()?,
                tainted: r.bool()?,
            });
        }
        let mut baseline = Baseline {
            status,
            learning,
            sum,
            reference_size,
            similarity,
            log_lengths,
            window,
            semantic: r.episode()?,
            length: r.episode()?,
            semantic_run: r.usize()?,
            last_semantic_t: r.f64()?,
            last_length_score: r.f64()?,
            frozen: r.bool()?,
            seen: 0,
            distribution: DistributionTest::default(),
            refusals: RateTest::default(),
            distribution_episode: Episode::default(),
            refusal_episode: Episode::default(),
        };
        if version == 1 {
            for (i, e) in baseline.window.iter_mut().enumerate() {
                e.seq = i as u64;
            }
            baseline.seen = baseline.window.len() as u64;
        } else {
            r.version_2(&mut baseline)?;
        }
        if !r.0.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(baseline)
    }
}
