//! Pure computations behind a drift explanation: which responses sit farthest from / closest to the
//! baseline centroid, which terms gained or lost ground, and how response lengths are spread.
//! No I/O; every function accepts any input (empty slices, `n == 0`, NaN) without panicking.

use serde::Serialize;
use std::cmp::Ordering;
use std::collections::HashMap;

/// A response quoted in an explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quoted {
    pub sample_id: i64,
    pub similarity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A candidate: sample id, cosine similarity to the baseline centroid, and its text.
pub struct Candidate<'a> {
    pub sample_id: i64,
    pub similarity: f64,
    pub text: &'a str,
}

/// The `n` candidates with the lowest similarity (farthest from the centroid), lowest first; ties by
/// `sample_id` ascending. NaN similarities come after every finite one. With `with_text`, text is cut
/// to `max_chars` chars (plus "…" when cut), otherwise omitted.
pub fn farthest(candidates: &[Candidate], n: usize, with_text: bool, max_chars: usize) -> Vec<Quoted> {
    pick(candidates, n, with_text, max_chars, |a, b| a.total_cmp(&b))
}

/// The `n` candidates with the highest similarity (closest to the centroid), highest first; same rules
/// as [`farthest`].
pub fn closest(candidates: &[Candidate], n: usize, with_text: bool, max_chars: usize) -> Vec<Quoted> {
    pick(candidates, n, with_text, max_chars, |a, b| b.total_cmp(&a))
}

fn pick(
    candidates: &[Candidate],
    n: usize,
    with_text: bool,
    max_chars: usize,
    by: impl Fn(f64, f64) -> Ordering,
) -> Vec<Quoted> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    // NaN is handled before `by` so it lands last in *both* directions (total_cmp alone would put
    // positive NaN first when sorting descending); NaNs tie with each other and fall back to the id.
    order.sort_by(|a, b| {
        let (x, y) = (a.similarity, b.similarity);
        match (x.is_nan(), y.is_nan()) {
            (false, false) => by(x, y),
            (x_nan, y_nan) => x_nan.cmp(&y_nan),
        }
        .then(a.sample_id.cmp(&b.sample_id))
    });
    order
        .into_iter()
        .take(n)
        .map(|c| Quoted {
            sample_id: c.sample_id,
            similarity: c.similarity,
            text: with_text.then(|| cut(c.text, max_chars)),
        })
        .collect()
}

/// Cuts at a char boundary (never inside a UTF-8 sequence); grapheme clusters such as ZWJ emoji may
/// still be split, which is acceptable for a preview.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TermShift {
    pub term: String,
    pub baseline_share: f64,
    pub recent_share: f64,
}

/// Smallest change in document share worth reporting.
const MIN_SHIFT: f64 = 0.1;
/// A term must be in this many responses on its more frequent side, so one odd response can't dominate.
const MIN_DOCS: u32 = 2;
/// Longer tokens are usually URLs, hashes or base64, not vocabulary.
const MAX_TOKEN_CHARS: usize = 40;

/// English function words (only those of 3+ chars: shorter tokens are dropped anyway). Must stay
/// sorted (bytewise) for the binary search; a test checks this.
const STOPWORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "among",
    "and",
    "any",
    "are",
    "aren",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "can",
    "cannot",
    "could",
    "couldn",
    "did",
    "didn",
    "does",
    "doesn",
    "doing",
    "don",
    "down",
    "during",
    "each",
    "either",
    "else",
    "etc",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "hadn",
    "has",
    "hasn",
    "have",
    "haven",
    "having",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "into",
    "isn",
    "its",
    "itself",
    "just",
    "let",
    "may",
    "might",
    "more",
    "most",
    "much",
    "must",
    "mustn",
    "nor",
    "not",
    "now",
    "off",
    "once",
    "one",
    "only",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "same",
    "shall",
    "she",
    "should",
    "shouldn",
    "since",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "too",
    "under",
    "until",
    "upon",
    "very",
    "via",
    "was",
    "wasn",
    "were",
    "weren",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "won",
    "would",
    "wouldn",
    "yes",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Terms whose document share (fraction of responses containing the term) rose most and fell most from
/// `baseline` to `recent`: `(rose, fell)`, each at most `n`, by |change| descending then term ascending.
/// A term is listed only if its share changed by at least 0.1 and it occurs in at least 2 responses on
/// the side where its share is higher. Shares are rounded to 3 decimals. Empty when either side is
/// empty, since a share of zero responses means nothing.
pub fn term_shifts(baseline: &[&str], recent: &[&str], n: usize) -> (Vec<TermShift>, Vec<TermShift>) {
    if baseline.is_empty() || recent.is_empty() || n == 0 {
        return (Vec::new(), Vec::new());
    }
    let (base, rec) = (doc_counts(baseline), doc_counts(recent));
    let (nb, nr) = (baseline.len() as f64, recent.len() as f64);
    let (mut rose, mut fell) = (Vec::new(), Vec::new());
    let only_recent = rec.keys().filter(|t| !base.contains_key(*t));
    for term in base.keys().chain(only_recent) {
        let cb = base.get(term).map_or(0, |e| e.0);
        let cr = rec.get(term).map_or(0, |e| e.0);
        let (sb, sr) = (cb as f64 / nb, cr as f64 / nr);
        // The epsilon keeps exact 10-point changes (e.g. 3/10 - 2/10 = 0.0999…) from being dropped.
        if (sr - sb).abs() < MIN_SHIFT - 1e-9 {
            continue;
        }
        let (side, docs) = if sr > sb { (&mut rose, cr) } else { (&mut fell, cb) };
        if docs >= MIN_DOCS {
            let shift = TermShift { term: term.clone(), baseline_share: round3(sb), recent_share: round3(sr) };
            side.push((sr - sb, shift));
        }
    }
    (top(rose, n), top(fell, n))
}

/// Orders by the unrounded change, so rounding never reorders or ties terms that differ.
fn top(mut v: Vec<(f64, TermShift)>, n: usize) -> Vec<TermShift> {
    v.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then_with(|| a.1.term.cmp(&b.1.term)));
    v.into_iter().take(n).map(|(_, t)| t).collect()
}

type Counts = HashMap<String, (u32, usize)>;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Number of texts containing each term. Each entry also remembers the last text that counted it, so a
/// term repeated within one text is counted once without a per-text set; one pass, O(total chars).
fn doc_counts(texts: &[&str]) -> Counts {
    let mut counts = Counts::new();
    let mut token = String::new();
    for (doc, text) in texts.iter().enumerate() {
        let (mut len, mut all_digits) = (0usize, true);
        // A trailing separator flushes the last token without a second code path.
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() {
                len += 1;
                all_digits &= c.is_numeric();
                // Stop growing past the cap: the token will be skipped, no need to store it.
                if len > MAX_TOKEN_CHARS {
                } else if c.is_ascii() {
                    // Fast path: the Unicode lowercase iterator costs ~3x more per char.
                    token.push(c.to_ascii_lowercase());
                } else {
                    token.extend(c.to_lowercase());
                }
                continue;
            }
            if len >= 3 && len <= MAX_TOKEN_CHARS && !all_digits && STOPWORDS.binary_search(&token.as_str()).is_err() {
                match counts.get_mut(token.as_str()) {
                    Some(e) if e.1 == doc => {}
                    Some(e) => *e = (e.0 + 1, doc),
                    None => {
                        counts.insert(token.clone(), (1, doc));
                    }
                }
            }
            token.clear();
            (len, all_digits) = (0, true);
        }
    }
    counts
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthQuantiles {
    pub samples: usize,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
}

/// Quantiles by linear interpolation between closest ranks (R-7, numpy's default). NaN lengths are
/// ignored (and not counted in `samples`); all zeros when nothing is left.
pub fn length_quantiles(lengths: &[f64]) -> LengthQuantiles {
    let mut v: Vec<f64> = lengths.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let Some(&last) = v.last() else { return 0.0 };
        let h = (v.len() - 1) as f64 * p;
        let lo = h.floor() as usize;
        v.get(lo + 1).map_or(last, |&hi| v[lo] + (h - lo as f64) * (hi - v[lo]))
    };
    LengthQuantiles { samples: v.len(), p10: q(0.1), p25: q(0.25), p50: q(0.5), p75: q(0.75), p90: q(0.9) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sample_id: i64, similarity: f64, text: &str) -> Candidate<'_> {
        Candidate { sample_id, similarity, text }
    }
    fn ids(q: &[Quoted]) -> Vec<i64> {
        q.iter().map(|q| q.sample_id).collect()
    }
    fn terms(v: &[TermShift]) -> Vec<&str> {
        v.iter().map(|t| t.term.as_str()).collect()
    }
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn farthest_and_closest_order_ties_nan() {
        let cs =
            [c(5, 0.9, "a"), c(3, f64::NAN, "b"), c(4, 0.2, "c"), c(1, 0.5, "d"), c(2, 0.2, "e"), c(0, -f64::NAN, "")];
        assert_eq!(ids(&farthest(&cs, 3, false, 10)), [2, 4, 1]);
        assert_eq!(ids(&closest(&cs, 3, false, 10)), [5, 1, 2]);
        // n beyond the input returns everything, NaNs last in both directions (tied by id).
        assert_eq!(ids(&farthest(&cs, 99, false, 10)), [2, 4, 1, 5, 0, 3]);
        assert_eq!(ids(&closest(&cs, 99, false, 10)), [5, 1, 2, 4, 0, 3]);
        assert!(farthest(&cs, 0, true, 10).is_empty() && closest(&[], 5, true, 10).is_empty());
        assert_eq!(farthest(&cs, 1, false, 10)[0], Quoted { sample_id: 2, similarity: 0.2, text: None });
        let json = serde_json::to_string(&closest(&cs, 1, false, 10)).unwrap();
        assert_eq!(json, r#"[{"sample_id":5,"similarity":0.9}]"#);
    }

    #[test]
    fn text_cut_respects_chars() {
        let text = |s: &str, max: usize| farthest(&[c(1, 0.0, s)], 1, true, max).remove(0).text.unwrap();
        assert_eq!(text("héllo wörld", 5), "héllo…");
        assert_eq!(text("日本語のテキスト", 3), "日本語…");
        assert_eq!(text("🎈🎈🎈", 2), "🎈🎈…");
        assert_eq!(text("🎈🎈", 2), "🎈🎈");
        assert_eq!(text("abc", 0), "…");
        assert_eq!(text("", 0), "");
    }

    const SUPPORT: &[&str] = &[
        "Please reset your password from the account settings page and contact support.",
        "Your support ticket was escalated; our agent will reply to the account email.",
        "To reset the password, open settings, then contact the support desk if it fails.",
        "Refund requests go through support; check your account billing settings.",
    ];
    const BIOLOGY: &[&str] = &[
        "The cell membrane regulates transport of proteins and ions.",
        "Mitochondria produce energy for the cell through respiration of glucose.",
        "Proteins fold inside the cell; enzymes catalyse reactions in the membrane.",
        "DNA encodes proteins, and each cell copies its DNA before division.",
    ];

    #[test]
    fn term_shifts_topic_change() {
        let (rose, fell) = term_shifts(SUPPORT, BIOLOGY, 5);
        assert_eq!(terms(&rose), ["cell", "proteins", "membrane"]);
        assert_eq!(rose[0], TermShift { term: "cell".into(), baseline_share: 0.0, recent_share: 1.0 });
        assert_eq!(terms(&fell), ["support", "account", "settings", "contact", "password"]);
        assert_eq!(fell[1].baseline_share, 0.75);
        let (rose1, fell1) = term_shifts(SUPPORT, BIOLOGY, 1);
        assert_eq!((terms(&rose1), terms(&fell1)), (vec!["cell"], vec!["support"]));
        // Deterministic despite HashMap iteration order.
        for _ in 0..5 {
            assert_eq!(term_shifts(SUPPORT, BIOLOGY, 5), (rose.clone(), fell.clone()));
        }
    }

    #[test]
    fn term_shifts_edge_cases() {
        let none = (vec![], vec![]);
        assert_eq!(term_shifts(SUPPORT, SUPPORT, 10), none);
        assert_eq!(term_shifts(&[], BIOLOGY, 10), none);
        assert_eq!(term_shifts(SUPPORT, &[], 10), none);
        assert_eq!(term_shifts(SUPPORT, BIOLOGY, 0), none);
        // Stopwords, short tokens, pure numbers, over-long tokens and apostrophe fragments never count.
        let long = "x".repeat(41);
        let noisy = format!("The and it's an 2024 ok {long} don't ２０２４ zebra");
        let (rose, _) = term_shifts(&["quiet"], &[&noisy, &noisy], 10);
        assert_eq!(terms(&rose), ["zebra"]);
        // Repeats within one response count once; a single response is never enough.
        let (rose, fell) = term_shifts(&["alpha", "beta", "alpha"], &["gamma gamma gamma", "delta", "Delta"], 10);
        assert_eq!((terms(&rose), terms(&fell)), (vec!["delta"], vec!["alpha"]));
        // An exact 10-point change counts (kiwi 0.2 -> 0.3); 40-char tokens count; case folding is Unicode.
        let a40 = "a".repeat(40);
        let b: Vec<String> = (0..10).map(|i| if i < 2 { "Straße kiwi" } else { "Straße" }.to_string()).collect();
        let r: Vec<String> = (0..10)
            .map(|i| match i {
                0 => format!("ÉCOLE kiwi {a40}"),
                1 => format!("école kiwi {a40}"),
                2 => "kiwi".into(),
                _ => "y".into(),
            })
            .collect();
        let (rose, fell) = term_shifts(&strs(&b), &strs(&r), 10);
        assert_eq!((terms(&rose), terms(&fell)), (vec![a40.as_str(), "école", "kiwi"], vec!["straße"]));
        assert_eq!(rose[2], TermShift { term: "kiwi".into(), baseline_share: 0.2, recent_share: 0.3 });
    }

    #[test]
    fn stopwords_sorted_lowercase_and_long_enough() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STOPWORDS.iter().all(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase())));
    }

    /// ~1,000-char pseudo-random texts, 200 baseline and 20 recent, as the server would pass.
    fn big_input() -> (Vec<String>, Vec<String>) {
        let words =
            ["latency", "token", "model", "the", "and", "response", "quality", "refund", "2024", "café", "日本"];
        let mut seed = 42u64;
        let mut text = |shift: usize| {
            let mut s = String::new();
            while s.len() < 1000 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                s.push_str(words[((seed >> 33) as usize + shift) % words.len()]);
                s.push_str(if seed % 7 == 0 { ". " } else { " " });
                s.push_str(&format!("w{} ", (seed >> 40) % 500));
            }
            s
        };
        ((0..200).map(|_| text(0)).collect(), (0..20).map(|_| text(3)).collect())
    }

    #[test]
    fn term_shifts_large_input_runs() {
        let (b, r) = big_input();
        let (rose, fell) = term_shifts(&strs(&b), &strs(&r), 10);
        assert!(rose.len() <= 10 && fell.len() <= 10);
    }

    #[test]
    #[ignore = "micro-timer: cargo test --release -- --ignored --nocapture"]
    fn time_term_shifts() {
        let (b, r) = big_input();
        let (b, r) = (strs(&b), strs(&r));
        let runs = 200;
        let start = std::time::Instant::now();
        for _ in 0..runs {
            std::hint::black_box(term_shifts(std::hint::black_box(&b), std::hint::black_box(&r), 10));
        }
        let chars: usize = b.iter().chain(&r).map(|s| s.chars().count()).sum();
        println!("term_shifts, 200+20 texts, {chars} chars: {:?} per call", start.elapsed() / runs);
    }

    #[test]
    fn quantiles() {
        let q = length_quantiles(&(1..=10).rev().map(f64::from).collect::<Vec<_>>());
        let got = [q.p10, q.p25, q.p50, q.p75, q.p90];
        for (g, want) in got.iter().zip([1.9, 3.25, 5.5, 7.75, 9.1]) {
            assert!((g - want).abs() < 1e-9, "{got:?}");
        }
        assert_eq!(q.samples, 10);
        let one = length_quantiles(&[42.0, f64::NAN]);
        assert_eq!(one, LengthQuantiles { samples: 1, p10: 42.0, p25: 42.0, p50: 42.0, p75: 42.0, p90: 42.0 });
        let zero = LengthQuantiles { samples: 0, p10: 0.0, p25: 0.0, p50: 0.0, p75: 0.0, p90: 0.0 };
        assert_eq!(length_quantiles(&[]), zero);
        assert_eq!(length_quantiles(&[f64::NAN]), zero);
    }
}
