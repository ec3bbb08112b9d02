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
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub sample_id: i64,
    pub similarity: f64,
    pub text: &'a str,
}

/// The `n` candidates with the lowest similarity (farthest from the centroid), lowest first; ties by
/// `sample_id` ascending. NaN similarities come after every finite one. With `with_text`, text is cut
/// to `max_chars` chars (plus "…" when cut), otherwise omitted.
pub fn farthest(candidates: &[Candidate], n: usize, with_text: bool, max_chars: usize) -> Vec<Quoted> {
    pick(candidates, n, with_text, max_chars, false)
}

/// The `n` candidates with the highest similarity (closest to the centroid), highest first; same rules
/// as [`farthest`].
pub fn closest(candidates: &[Candidate], n: usize, with_text: bool, max_chars: usize) -> Vec<Quoted> {
    pick(candidates, n, with_text, max_chars, true)
}

fn pick(candidates: &[Candidate], n: usize, with_text: bool, max_chars: usize, descending: bool) -> Vec<Quoted> {
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    // NaN is handled before the value order so it lands last in *both* directions (total_cmp alone would
    // put positive NaN first when sorting descending); NaNs tie with each other and fall back to the id.
    order.sort_by(|a, b| {
        let (x, y) = (a.similarity, b.similarity);
        match (x.is_nan(), y.is_nan()) {
            // partial_cmp, not total_cmp, so that -0.0 and 0.0 tie; neither is NaN here.
            (false, false) if descending => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
            (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
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
pub fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A term whose document share moved between the baseline and the recent window.
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

/// English function words, only those of 3+ chars (shorter tokens are dropped anyway); sorted bytewise for
/// the binary search (a test checks). Refusal and answer words such as "cannot" and "yes" are deliberately
/// absent: a rise in them is exactly the kind of drift worth showing.
#[rustfmt::skip] // Packed rows; rustfmt would put each word on its own line.
const STOPWORDS: &[&str] = &[
    "about", "above", "after", "again", "against", "all", "also", "and", "any", "are", "aren", "because", "been",
    "before", "being", "below", "between", "both", "but", "can", "could", "couldn", "did", "didn", "does", "doesn",
    "doing", "don", "down", "during", "each", "else", "even", "every", "few", "for", "from", "get", "got", "had", "has",
    "hasn", "have", "haven", "having", "her", "here", "herself", "him", "himself", "his", "how", "however", "into",
    "isn", "its", "itself", "just", "let", "may", "might", "more", "most", "much", "must", "nor", "not", "now", "off",
    "once", "one", "only", "other", "our", "ourselves", "out", "over", "own", "per", "same", "she", "should", "shouldn",
    "since", "some", "such", "than", "that", "the", "their", "them", "themselves", "then", "there", "these", "they",
    "this", "those", "though", "through", "too", "under", "until", "very", "via", "was", "wasn", "were", "weren",
    "what", "when", "where", "whether", "which", "while", "who", "whose", "why", "will", "with", "within", "without",
    "won", "would", "wouldn", "yet", "you", "your", "yourself", "yourselves",
];

/// Terms whose document share (fraction of responses containing the term) rose most and fell most from
/// `baseline` to `recent`: `(rose, fell)`, each at most `n`, by |change| descending then term ascending.
/// A term is listed only if its share changed by at least 0.1 and it occurs in at least 2 responses on
/// the side where its share is higher. Shares are rounded to 3 decimals. Empty when either side is
/// empty, since a share of zero responses means nothing. Terms are lowercased runs of alphanumeric chars
/// (apostrophes split), 3 to 40 chars long, not all digits and not in `STOPWORDS`.
pub fn term_shifts(baseline: &[&str], recent: &[&str], n: usize) -> (Vec<TermShift>, Vec<TermShift>) {
    if baseline.is_empty() || recent.is_empty() || n == 0 {
        return (Vec::new(), Vec::new());
    }
    let (base, rec) = (doc_counts(baseline), doc_counts(recent));
    let (nb, nr) = (baseline.len() as f64, recent.len() as f64);
    let (mut rose, mut fell) = (Vec::new(), Vec::new());
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
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

/// Term -> (documents containing it, last document counted), or `(0, STOP)` for a stopword.
type Counts = HashMap<String, (u32, usize)>;
const STOP: usize = usize::MAX;

/// Number of texts containing each term. Each entry also remembers the last text that counted it, so a
/// term repeated within one text is counted once without a per-text set; one pass, O(total chars).
fn doc_counts(texts: &[&str]) -> Counts {
    let mut counts = Counts::new();
    for (doc, text) in texts.iter().enumerate() {
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            let chars = if word.is_ascii() { word.len() } else { word.chars().count() };
            if !(3..=MAX_TOKEN_CHARS).contains(&chars) || word.chars().all(char::is_numeric) {
                continue;
            }
            // Most words are already lowercase ASCII: borrow those instead of allocating.
            let lower;
            let term = if word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                word
            } else {
                lower = word.to_lowercase();
                lower.as_str()
            };
            match counts.get_mut(term) {
                Some(e) if e.1 == doc || e.1 == STOP => {}
                Some(e) => *e = (e.0 + 1, doc),
                // The stopword search runs once per distinct term: a stopword is then stored with no
                // documents, which term_shifts never lists (its share is 0 on both sides).
                None => {
                    let stop = STOPWORDS.binary_search(&term).is_ok();
                    counts.insert(term.to_string(), if stop { (0, STOP) } else { (1, doc) });
                }
            }
        }
    }
    counts
}

/// Spread of response lengths (characters) over `samples` responses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthQuantiles {
    pub samples: usize,
    pub p10: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
}

/// Quantiles by linear interpolation between closest ranks (R-7, numpy's default). Non-finite lengths are
/// ignored and not counted in `samples` (two infinities would interpolate to NaN); all zeros when none left.
pub fn length_quantiles(lengths: &[f64]) -> LengthQuantiles {
    let mut v: Vec<f64> = lengths.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    // The rank (n - 1) * p is kept in integer thousandths, so it is exact and needs no float-to-index cast.
    let q = |per_mille: usize| {
        let Some(&last) = v.last() else { return 0.0 };
        let rank = (v.len() - 1) * per_mille;
        let (lo, frac) = (rank / 1000, (rank % 1000) as f64 / 1000.0);
        v.get(lo + 1).map_or(last, |&hi| v[lo] + frac * (hi - v[lo]))
    };
    LengthQuantiles { samples: v.len(), p10: q(100), p25: q(250), p50: q(500), p75: q(750), p90: q(900) }
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

    #[test]
    fn farthest_and_closest_order_ties_nan() {
        let cs =
            [c(5, 0.9, "a"), c(3, f64::NAN, "b"), c(4, 0.2, "c"), c(1, 0.5, "d"), c(2, 0.2, "e"), c(0, -f64::NAN, "")];
        assert_eq!(ids(&farthest(&cs, 3, false, 10)), [2, 4, 1]);
        assert_eq!(ids(&farthest(&[c(9, 0.0, ""), c(8, -0.0, "")], 2, false, 0)), [8, 9]);
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
        // Deterministic despite HashMap iteration order (each call gets a fresh random hasher seed).
        assert!((0..5).all(|_| term_shifts(SUPPORT, BIOLOGY, 5) == (rose.clone(), fell.clone())));
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
        let (e1, e2) = (format!("ÉCOLE kiwi {a40}"), format!("école kiwi {a40}"));
        let b = [vec!["Straße kiwi"; 2], vec!["Straße"; 8]].concat();
        let (rose, fell) = term_shifts(&b, &[vec![e1.as_str(), &e2, "kiwi"], vec!["y"; 7]].concat(), 10);
        assert_eq!((terms(&rose), terms(&fell)), (vec![a40.as_str(), "école", "kiwi"], vec!["straße"]));
        assert_eq!(rose[2], TermShift { term: "kiwi".into(), baseline_share: 0.2, recent_share: 0.3 });
    }

    #[test]
    fn stopwords_sorted_lowercase_and_long_enough() {
        assert!(STOPWORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STOPWORDS.iter().all(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_lowercase())));
    }

    /// term_shifts over 220 pseudo-random ~1,000-char texts (200 baseline + 20 recent), English-like:
    /// ~40% stopwords, a long tail of rare words, capitals, digits, punctuation, some non-ASCII. (Its
    /// speed is measured by benches/alerts.rs.)
    #[test]
    fn term_shifts_large_input_runs() {
        let words: Vec<&str> = "the and you for with this is of to a model response latency token quality Refund \
            account 2024 café naïve 日本語 that"
            .split_whitespace()
            .collect();
        // Fibonacci hashing gives cheap deterministic noise; recent texts (i >= 200) lean towards other words.
        let word = |i: u64, j: u64| {
            let r = (i * 1000 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
            let w = if r.is_multiple_of(4) {
                format!("w{}", r % 3000)
            } else {
                words[((r + i / 200 * (r % 3)) % 22) as usize].into()
            };
            w + if r.is_multiple_of(13) { ". " } else { " " }
        };
        let texts: Vec<String> = (0..220).map(|i| (0..185).map(|j| word(i, j)).collect()).collect();
        let t: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (rose, fell) = term_shifts(&t[..200], &t[200..], 10);
        assert!(!rose.is_empty() && rose.len() <= 10 && fell.len() <= 10, "{rose:?} {fell:?}");
    }

    #[test]
    fn quantiles() {
        // Hand-computed R-7 values; the inputs are unsorted on purpose.
        let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        for (input, want) in
            [(&ten[..], [1.9, 3.25, 5.5, 7.75, 9.1]), (&[40.0, 10.0, 20.0], [12.0, 15.0, 20.0, 30.0, 36.0])]
        {
            let q = length_quantiles(input);
            let got = [q.p10, q.p25, q.p50, q.p75, q.p90];
            assert!(q.samples == input.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-9), "{got:?}");
        }
        let one = length_quantiles(&[42.0, f64::NAN, f64::INFINITY]);
        assert_eq!(one, LengthQuantiles { samples: 1, p10: 42.0, p25: 42.0, p50: 42.0, p75: 42.0, p90: 42.0 });
        let zero = LengthQuantiles { samples: 0, p10: 0.0, p25: 0.0, p50: 0.0, p75: 0.0, p90: 0.0 };
        assert_eq!(length_quantiles(&[]), zero);
        assert_eq!(length_quantiles(&[f64::NAN]), zero);
    }
}
