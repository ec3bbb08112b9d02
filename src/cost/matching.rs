//! How a span's model id finds its price: the ids instrumentations report vary (dated
//! snapshots, provider prefixes, cloud vendors' decorations) while a price list names each
//! model once. The rules, in order (docs/cost.md repeats them for users):
//!
//! 1. the id as given (case-insensitive, trimmed);
//! 2. without a routing prefix up to the last `/` (`openai/gpt-4o`, `models/gemini-2.0-flash`)
//!    or a Bedrock vendor prefix (`anthropic.claude-3-haiku-...`);
//! 3. then, one at a time, without a trailing decoration: a Vertex `@version`, a Bedrock
//!    `-v1:0`, `-latest`, a date (`-2024-08-06`, `-20241022`), or a 3- or 4-digit version
//!    (`-002`, `-2411`, `-0125`);
//!
//! each candidate is looked up as a model and as an alias. The first hit wins; no hit is "no
//! price". There is deliberately no general prefix rule: `gpt-4o-mini-...` must never fall back
//! to `gpt-4o`'s price.

/// The ids to look up for `model`, most specific first (no duplicates).
pub fn candidates(model: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if !id.is_empty() && !out.iter().any(|c| c == id) {
            out.push(id.to_string());
        }
    };
    let id = model.trim().to_ascii_lowercase();
    push(&id);
    let mut rest = strip_prefix(&id);
    push(rest);
    while let Some(shorter) = strip_suffix(rest) {
        rest = shorter;
        push(rest);
    }
    out
}

/// Bedrock model ids start with the vendor and a dot; nothing else in a model id does before
/// its first dash.
const VENDOR_PREFIXES: [&str; 5] = ["anthropic.", "mistral.", "meta.", "amazon.", "cohere."];

fn strip_prefix(id: &str) -> &str {
    let id = id.rsplit('/').next().unwrap_or(id);
    VENDOR_PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id)
}

/// One trailing decoration removed, or None when there is none.
fn strip_suffix(id: &str) -> Option<&str> {
    if let Some((base, _)) = id.rsplit_once('@') {
        return Some(base);
    }
    if let Some(base) = id.strip_suffix("-latest") {
        return Some(base);
    }
    let (base, last) = id.rsplit_once('-')?;
    // Bedrock `-v1:0`, `-v2`
    if let Some(version) = last.strip_prefix('v') {
        if !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == ':') {
            return Some(base);
        }
    }
    if !last.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match last.len() {
        // -20241022, -002, -2411, -0125
        8 | 3 | 4 => {}
        // the day of -2024-08-06: drop the month and the year with it
        2 => {
            let (year_month, month) = base.rsplit_once('-')?;
            let (before_year, year) = year_month.rsplit_once('-')?;
            let is_date = month.len() == 2
                && year.len() == 4
                && month.chars().all(|c| c.is_ascii_digit())
                && year.chars().all(|c| c.is_ascii_digit());
            return is_date.then_some(before_year);
        }
        _ => return None,
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::candidates;

    fn last(model: &str) -> String {
        candidates(model).pop().unwrap()
    }

    #[test]
    fn dated_snapshots_and_decorations_reduce_to_the_base_id() {
        assert_eq!(last("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(last("gpt-4o-mini-2024-07-18"), "gpt-4o-mini");
        assert_eq!(last("claude-3-5-sonnet-20241022"), "claude-3-5-sonnet");
        assert_eq!(last("claude-3-5-sonnet-latest"), "claude-3-5-sonnet");
        assert_eq!(last("anthropic.claude-3-haiku-20240307-v1:0"), "claude-3-haiku");
        assert_eq!(last("claude-3-5-sonnet@20240620"), "claude-3-5-sonnet");
        assert_eq!(last("models/gemini-1.5-pro-002"), "gemini-1.5-pro");
        assert_eq!(last("mistral-large-2411"), "mistral-large");
        assert_eq!(last("mistral-small-latest"), "mistral-small");
        assert_eq!(last("openai/gpt-3.5-turbo-0125"), "gpt-3.5-turbo");
        assert_eq!(last("GPT-4O "), "gpt-4o");
    }

    #[test]
    fn the_exact_id_is_tried_first_and_names_are_never_shortened_otherwise() {
        assert_eq!(candidates("gpt-4o-2024-05-13"), vec!["gpt-4o-2024-05-13", "gpt-4o"]);
        // no general prefix rule: a mini model never falls back to its big sibling
        assert_eq!(candidates("gpt-4o-mini"), vec!["gpt-4o-mini"]);
        assert_eq!(candidates("claude-3-7-sonnet"), vec!["claude-3-7-sonnet"]);
        assert_eq!(candidates("o4-mini"), vec!["o4-mini"]);
        assert_eq!(candidates(""), Vec::<String>::new());
    }
}
