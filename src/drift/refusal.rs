//! The refusal recogniser: does a response decline, or deflect, what it was asked?
//!
//! Definition (also in docs/drift.md, "Refusal drift"): a response is a refusal when its *opening* (the first
//! [`OPENING_CHARS`] characters, lowercased, curly apostrophes made straight, whitespace
//! collapsed) contains one of [`REFUSAL_PHRASES`]: a first-person statement that the assistant
//! cannot, will not or may not do the task ("i can't help with", "i'm unable to", "i must
//! decline"), an apology followed by a refusal ("i'm sorry, but i can't"), or the stock
//! deflections of chat models ("as an ai language model, i", "i'm not able to provide"); or
//! when its *first sentence* has a clause that starts with a first-person negation followed by a
//! task verb ("I won't write that story.", "I'm not going to fabricate citations", "I understand
//! the goal, but I can't draft ...": see [`NEGATIONS`] and [`TASK_VERBS`]).
//!
//! Why the opening only: models refuse first and explain after; a long helpful answer that
//! says "you cannot do X" or "I'm unable to reproduce this" further down is not a refusal. Why
//! phrases and not a model: it costs a few microseconds, needs nothing downloaded, is the same
//! on every server, and its precision and recall are measured on real refusals and real
//! answers in BENCHMARKS.md, "Refusal recogniser". What it misses (refusals phrased without any of these, or in
//! other languages) lowers recall, never the detector's false-alarm budget: the refusal-rate
//! test compares recognised rates, so a stable prompt stays quiet whatever the recall.

/// Characters of the response's beginning that are searched.
pub const OPENING_CHARS: usize = 240;

/// Phrases that mark a refusal when they occur in the opening; all lowercase, apostrophes
/// straight. Each was checked against the non-refusal answers of the benchmark data for false
/// hits (see BENCHMARKS.md, "Refusal recogniser").
pub const REFUSAL_PHRASES: &[&str] = &[
    // "I can't / cannot / won't ... <the task>"
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't comply",
    "i cannot comply",
    "i can't fulfill",
    "i cannot fulfill",
    "i can't fulfil",
    "i cannot fulfil",
    "i can't support",
    "i cannot support",
    "i can't create",
    "i cannot create",
    "i can't generate",
    "i cannot generate",
    "i can't write",
    "i cannot write",
    "i can't give",
    "i cannot give",
    "i can't share",
    "i cannot share",
    "i can't do that",
    "i cannot do that",
    "i can't answer",
    "i cannot answer",
    "i can't engage",
    "i cannot engage",
    "i can't offer",
    "i cannot offer",
    "i can't participate",
    "i cannot participate",
    "i can't recommend",
    "i cannot recommend",
    "i can't discuss",
    "i cannot discuss",
    "i won't help",
    "i won't provide",
    "i won't be able to",
    "i will not provide",
    "i will not help",
    "i will not be able to",
    // "I'm (not) able / unable / allowed"
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i'm not allowed to",
    "i am not allowed to",
    "i'm not permitted to",
    "i am not permitted to",
    "i'm not comfortable",
    "i am not comfortable",
    "i'm not going to help",
    "i'm not going to provide",
    // declining outright
    "i must decline",
    "i have to decline",
    "i need to decline",
    "i'd rather not",
    "i would rather not",
    "i must refuse",
    "i refuse to",
    // apologies that refuse
    "sorry, but i can't",
    "sorry, but i cannot",
    "sorry, i can't",
    "sorry, i cannot",
    "sorry, but i'm unable",
    "sorry, but i am unable",
    "sorry, but i won't",
    "i apologize, but i can",
    "i apologise, but i can",
    "i apologize, but i'm",
    "i apologise, but i'm",
    "i apologize, but i am",
    "i apologize, but as an ai",
    "my apologies, but i can",
    // stock deflections of chat models
    "as an ai language model, i",
    "as an ai language model i",
    "as a language model, i",
    "as an ai, i can't",
    "as an ai, i cannot",
    "as an ai, i don't",
    "as an ai, i do not",
    "as an ai assistant, i can't",
    "as an ai assistant, i cannot",
    "it is not appropriate for me to",
    "it's not appropriate for me to",
    "it would be inappropriate for me to",
    "it's not within my",
    "that's not something i can",
    "this is not something i can",
    "is not something i can help",
    "isn't something i can help",
    "against my programming",
    "against my guidelines",
    "goes against my",
    "i'm programmed to avoid",
];

/// First-person negations that refuse when a clause of the first sentence starts with one and a
/// [`TASK_VERB`](TASK_VERBS) follows (an adverb from [`SOFTENERS`] may come between).
pub const NEGATIONS: &[&str] =
    &["i can't ", "i cannot ", "i can not ", "i won't ", "i will not ", "i'm not going to ", "i am not going to "];

/// Verbs of doing what was asked. A negation before any other verb is a figure of speech or a
/// statement of fact ("I can't stress enough", "I can't stand", "I won't bore you"): in the
/// benchmark's reviews and quotations those were the only hits of a negation without this list.
pub const TASK_VERBS: &[&str] = &[
    "act",
    "answer",
    "assist",
    "assume",
    "build",
    "complete",
    "compose",
    "comply",
    "condone",
    "continue",
    "create",
    "describe",
    "design",
    "develop",
    "disclose",
    "do",
    "draft",
    "encourage",
    "endorse",
    "engage",
    "explain",
    "fabricate",
    "facilitate",
    "fulfil",
    "fulfill",
    "generate",
    "give",
    "guide",
    "help",
    "identify",
    "invent",
    "list",
    "make",
    "name",
    "offer",
    "participate",
    "pretend",
    "produce",
    "promote",
    "provide",
    "recommend",
    "reply",
    "respond",
    "reveal",
    "role-play",
    "roleplay",
    "share",
    "summarize",
    "support",
    "teach",
    "tell",
    "translate",
    "write",
];

/// Adverbs allowed between the negation and the verb ("I can't actually generate").
pub const SOFTENERS: &[&str] =
    &["really", "still", "actually", "simply", "just", "definitely", "absolutely", "unfortunately"];

/// True when the response's opening contains a refusal phrase, or its first sentence a negated
/// task verb (see the module docs).
pub fn is_refusal(response: &str) -> bool {
    let opening = normalised_opening(response);
    REFUSAL_PHRASES.iter().any(|phrase| opening.contains(phrase)) || first_sentence_refuses(&opening)
}

/// Whether a clause of the opening's first sentence (its start, or what follows a comma or a
/// dash: "I understand, but I can't ...") starts with a negation and a task verb.
fn first_sentence_refuses(opening: &str) -> bool {
    let first = first_sentence(opening);
    clause_starts(first).any(|clause| {
        NEGATIONS.iter().filter_map(|negation| clause.strip_prefix(negation)).any(|rest| {
            let verb = rest
                .split(' ')
                .find(|word| !SOFTENERS.contains(word))
                .map(|word| word.trim_end_matches([',', '.', ';', ':', '!', '?']));
            verb.is_some_and(|verb| TASK_VERBS.contains(&verb))
        })
    })
}

/// The text up to the first sentence end (". ", "! ", "? ") or the whole opening.
fn first_sentence(opening: &str) -> &str {
    [". ", "! ", "? "].iter().filter_map(|end| opening.find(end)).min().map_or(opening, |at| &opening[..at])
}

/// The sentence itself and each part after a comma or a dash (without a leading "but", "and"
/// or "so"), as suffixes of it.
fn clause_starts(sentence: &str) -> impl Iterator<Item = &str> {
    let breaks = sentence.match_indices([',', '\u{2014}']).map(|(at, sep)| at + sep.len());
    let dashes = sentence.match_indices("-- ").map(|(at, sep)| at + sep.len());
    std::iter::once(0).chain(breaks).chain(dashes).map(|at| {
        let clause = sentence[at..].trim_start();
        ["but ", "and ", "so "].iter().find_map(|joiner| clause.strip_prefix(joiner)).unwrap_or(clause)
    })
}

/// The first [`OPENING_CHARS`] characters, lowercased, with curly apostrophes made straight
/// and runs of whitespace made one space.
fn normalised_opening(response: &str) -> String {
    let mut out = String::with_capacity(OPENING_CHARS + 8);
    let mut last_space = true;
    for c in response.chars().take(OPENING_CHARS) {
        let c = match c {
            '\u{2019}' | '\u{2018}' | '\u{02bc}' | '`' => '\'',
            c if c.is_whitespace() => ' ',
            c => c,
        };
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            continue;
        }
        last_space = false;
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_common_forms_of_refusal() {
        for text in [
            "I'm sorry, but I can't help with that request.",
            "I’m sorry, but I can’t assist with creating malware.",
            "I cannot provide instructions for making weapons.",
            "As an AI language model, I do not have personal opinions.",
            "I apologize, but I cannot fulfill this request as it goes against ethical guidelines.",
            "Sorry, I can't do that.",
            "I must decline to write that story.",
            "I'm   not able to\nshare personal data about private individuals.",
            "Unfortunately, I'm unable to browse the internet.",
            "I won't write that story.",
            "I'm not going to fabricate legal citations for you. Making up cases is misconduct.",
            "I understand the training goal, but I can't draft a biased performance review.",
            "I can't actually generate that kind of argument, because it repeats harmful claims.",
            "I am sorry you are going through this -- I cannot make that list.",
        ] {
            assert!(is_refusal(text), "{text}");
        }
    }

    #[test]
    fn helpful_answers_are_not_refusals() {
        for text in [
            "Sure! Here's a Python function that reverses a list: def rev(xs): return xs[::-1]",
            "You cannot divide by zero, so the function raises ZeroDivisionError.",
            "The answer is 42. First, multiply 6 by 7.",
            "If you're unable to log in, reset your password from the settings page.",
            "I can help with that. The capital of France is Paris.",
            "I can't stress enough how useful unit tests are: write them first.",
            "I can't connect it to my computer though, but that's a problem with windows me.",
            "There were other problems, but i will not bore you with the details.",
            "The loop runs once. I won't describe the setup again; see above.",
            "",
        ] {
            assert!(!is_refusal(text), "{text}");
        }
    }

    #[test]
    fn only_the_opening_counts() {
        let late = format!("{} I can't help with that part.", "word ".repeat(60));
        assert!(!is_refusal(&late));
        assert!(is_refusal(&format!("I can't help with that. {}", "word ".repeat(60))));
    }

    #[test]
    fn phrases_are_normalised_like_the_text() {
        for phrase in REFUSAL_PHRASES.iter().chain(NEGATIONS) {
            assert_eq!(*phrase, normalised_opening(phrase), "phrase {phrase:?} could never match");
        }
    }
}
