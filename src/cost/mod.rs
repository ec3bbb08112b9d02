//! What a model call costs: a price list per model (US dollars per million tokens) and the cost
//! of a span's token usage under it.
//!
//! The list shipped with the server is `config/model-prices.toml` (compiled in; its date and
//! source are in the file and in docs/cost.md). A span's model finds its price by the rules in
//! [`matching`]; a model with no price has no cost, never a cost of 0.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod matching;

/// Prices of one model, US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; without it they cost `input`.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    /// Why the price cannot be used, if it cannot (negative or not a number).
    pub fn problem(&self) -> Option<String> {
        let fields = [("input", Some(self.input)), ("output", Some(self.output)), ("cached_input", self.cached_input)];
        fields.into_iter().find_map(|(name, value)| match value {
            Some(v) if !v.is_finite() || v < 0.0 => Some(format!("{name} must be a number >= 0 (got {v})")),
            _ => None,
        })
    }

    /// The cost in US dollars of these token counts (one call's, or sums over calls), or None
    /// without any count. `cached_input` tokens are counted inside `input` (as OpenAI and the
    /// OpenTelemetry GenAI conventions report them) and priced at `cached_input` when the model
    /// has that price.
    pub fn cost_usd(&self, input: Option<f64>, output: Option<f64>, cached_input: Option<f64>) -> Option<f64> {
        if input.is_none() && output.is_none() {
            return None;
        }
        let input = input.unwrap_or(0.0).max(0.0);
        let output = output.unwrap_or(0.0).max(0.0);
        let cached = cached_input.unwrap_or(0.0).clamp(0.0, input);
        let cached_price = self.cached_input.unwrap_or(self.input);
        Some(((input - cached) * self.input + cached * cached_price + output * self.output) / 1_000_000.0)
    }
}

/// The shipped list as the file holds it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    as_of: String,
    models: HashMap<String, Price>,
    #[serde(default)]
    aliases: HashMap<String, String>,
}

/// A price list: models by id, and other names for them.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    pub as_of: String,
    models: HashMap<String, Price>,
    aliases: HashMap<String, String>,
}

/// The price a model id found, and the list entry it found it under.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceMatch {
    pub id: String,
    pub price: Price,
}

const SHIPPED: &str = include_str!("../../config/model-prices.toml");

/// A model id as the list keys it: trimmed, lower case.
pub fn normalise_id(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

impl PriceTable {
    /// The list shipped with the server (parsed once; a test keeps the file valid).
    pub fn shipped() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| PriceTable::parse(SHIPPED).expect("config/model-prices.toml is valid (tested)"))
    }

    fn parse(text: &str) -> Result<PriceTable, String> {
        let file: PriceFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let lower = |s: &str| normalise_id(s);
        let models: HashMap<String, Price> = file.models.into_iter().map(|(id, p)| (lower(&id), p)).collect();
        if let Some((id, problem)) = models.iter().find_map(|(id, p)| Some((id, p.problem()?))) {
            return Err(format!("model {id}: {problem}"));
        }
        let aliases: HashMap<String, String> =
            file.aliases.into_iter().map(|(a, id)| (lower(&a), lower(&id))).collect();
        if let Some((alias, id)) = aliases.iter().find(|(_, id)| !models.contains_key(*id)) {
            return Err(format!("alias {alias} names {id}, which has no price"));
        }
        Ok(PriceTable { as_of: file.as_of, models, aliases })
    }

    /// The price of `model` by the rules in [`matching`], or None ("no price").
    pub fn find(&self, model: &str) -> Option<PriceMatch> {
        matching::candidates(model).into_iter().find_map(|candidate| {
            let id =
                if self.models.contains_key(&candidate) { candidate } else { self.aliases.get(&candidate)?.clone() };
            let price = self.models[&id];
            Some(PriceMatch { id, price })
        })
    }

    /// This list with `overrides` (model id, price) replacing or adding entries: a project's
    /// own prices. An override is found before the shipped entry or alias of the same id.
    pub fn with_overrides(&self, overrides: impl IntoIterator<Item = (String, Price)>) -> PriceTable {
        let mut table = self.clone();
        for (id, price) in overrides {
            let id = normalise_id(&id);
            table.aliases.remove(&id);
            table.models.insert(id, price);
        }
        table
    }

    /// Every model with its price, sorted by id.
    pub fn models(&self) -> Vec<(&str, Price)> {
        let mut all: Vec<(&str, Price)> = self.models.iter().map(|(id, p)| (id.as_str(), *p)).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }
}

/// Whether a cost covers everything it sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CostStatus {
    /// Every call with token usage has a price.
    Priced,
    /// Some calls' models have no price: `usd` is the priced calls' cost only.
    PartlyPriced,
    /// Calls with token usage, none of whose models has a price: no cost (never 0).
    NoPrice,
    /// No call reported token usage.
    NoUsage,
}

/// The cost of a span, a trace or a group of them, at the current prices.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CostView {
    /// US dollars; null when nothing in it has a price.
    pub usd: Option<f64>,
    pub status: CostStatus,
    /// Calls (spans with token usage) whose model has no price.
    pub unpriced_calls: i64,
    /// Their models, sorted (`""` for calls that name no model).
    pub unpriced_models: Vec<String>,
}

/// Sums calls' costs into a [`CostView`].
#[derive(Debug, Default)]
pub struct CostTotal {
    usd: f64,
    priced_calls: i64,
    unpriced_calls: i64,
    unpriced_models: std::collections::BTreeSet<String>,
}

impl CostTotal {
    /// Adds `calls` calls of `model` with these token sums (nothing when neither is known).
    pub fn add(
        &mut self,
        prices: &PriceTable,
        model: Option<&str>,
        input: Option<f64>,
        output: Option<f64>,
        calls: i64,
    ) {
        if input.is_none() && output.is_none() {
            return;
        }
        match model.and_then(|m| prices.find(m)) {
            Some(found) => {
                // cached-input counts are not stored yet (docs/cost.md)
                self.usd += found.price.cost_usd(input, output, None).unwrap_or(0.0);
                self.priced_calls += calls;
            }
            None => {
                self.unpriced_calls += calls;
                self.unpriced_models.insert(model.unwrap_or("").to_string());
            }
        }
    }

    /// The priced calls' mean cost, or None when no call is priced.
    pub fn per_priced_call(&self) -> Option<f64> {
        (self.priced_calls > 0).then(|| self.usd / self.priced_calls as f64)
    }

    pub fn view(self) -> CostView {
        let status = match (self.priced_calls > 0, self.unpriced_calls > 0) {
            (true, false) => CostStatus::Priced,
            (true, true) => CostStatus::PartlyPriced,
            (false, true) => CostStatus::NoPrice,
            (false, false) => CostStatus::NoUsage,
        };
        CostView {
            usd: (self.priced_calls > 0).then_some(self.usd),
            status,
            unpriced_calls: self.unpriced_calls,
            unpriced_models: self.unpriced_models.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_says_what_it_left_out_and_is_never_a_false_zero() {
        let table = PriceTable::shipped();
        let mut total = CostTotal::default();
        total.add(table, Some("gpt-4o-mini"), Some(1_000_000.0), Some(1_000_000.0), 3);
        total.add(table, Some("my-finetune"), Some(10.0), None, 2);
        total.add(table, Some("gpt-4o"), None, None, 1); // no usage: not a call to price
        let view = total.view();
        assert_eq!(view.status, CostStatus::PartlyPriced);
        assert!((view.usd.unwrap() - 0.75).abs() < 1e-12, "{view:?}");
        assert_eq!((view.unpriced_calls, view.unpriced_models), (2, vec!["my-finetune".to_string()]));

        let mut unknown = CostTotal::default();
        unknown.add(table, Some("my-finetune"), Some(10.0), Some(5.0), 1);
        assert_eq!(unknown.view().usd, None);
        assert_eq!(CostTotal::default().view().status, CostStatus::NoUsage);
    }

    #[test]
    fn the_shipped_list_is_valid_and_covers_the_four_providers() {
        let table = PriceTable::parse(SHIPPED).unwrap();
        assert!(!table.as_of.is_empty());
        for model in ["gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash", "mistral-large"] {
            assert!(table.find(model).is_some(), "{model}");
        }
    }

    #[test]
    fn snapshots_find_their_base_price_unless_they_have_their_own() {
        let table = PriceTable::shipped();
        assert_eq!(table.find("gpt-4o-2024-08-06").unwrap().id, "gpt-4o");
        assert_eq!(table.find("gpt-4o-2024-05-13").unwrap().price.input, 5.0);
        assert_eq!(table.find("claude-sonnet-4-0").unwrap().id, "claude-sonnet-4");
        assert_eq!(table.find("mistral-nemo-2407").unwrap().id, "open-mistral-nemo");
        assert_eq!(table.find("my-finetune"), None);
        assert_eq!(table.find("gpt-4o-mini-realtime"), None);
    }

    #[test]
    fn a_projects_price_replaces_or_adds_to_the_shipped_list() {
        let own = Price { input: 1.0, output: 2.0, cached_input: None };
        let table = PriceTable::shipped().with_overrides([("GPT-4o".to_string(), own), ("my-finetune".into(), own)]);
        assert_eq!(table.find("gpt-4o-2024-08-06").unwrap().price, own);
        assert_eq!(table.find("my-finetune").unwrap().price, own);
        assert_eq!(table.find("gpt-4o-mini").unwrap().price.input, 0.15);
        // an override of an alias's name wins over the alias
        let table = PriceTable::shipped().with_overrides([("claude-opus-4-0".to_string(), own)]);
        assert_eq!(table.find("claude-opus-4-0").unwrap(), PriceMatch { id: "claude-opus-4-0".into(), price: own });
    }

    #[test]
    fn a_call_costs_its_tokens_at_their_prices() {
        let price = Price { input: 2.5, output: 10.0, cached_input: Some(1.25) };
        // 1,000 in (400 of them cached), 200 out
        let cost = price.cost_usd(Some(1000.0), Some(200.0), Some(400.0)).unwrap();
        assert!((cost - (600.0 * 2.5 + 400.0 * 1.25 + 200.0 * 10.0) / 1e6).abs() < 1e-15);
        assert_eq!(price.cost_usd(None, None, None), None);
        assert_eq!(price.cost_usd(Some(0.0), Some(0.0), None), Some(0.0));
        // no cached price: cached tokens cost the input price
        let plain = Price { cached_input: None, ..price };
        assert_eq!(plain.cost_usd(Some(1000.0), None, Some(400.0)), plain.cost_usd(Some(1000.0), None, None));
    }

    #[test]
    fn a_bad_list_is_refused_with_the_entry_named() {
        let negative = "as_of = \"x\"\n[models]\n\"m\" = { input = -1.0, output = 1.0 }\n";
        assert!(PriceTable::parse(negative).unwrap_err().contains("model m: input"));
        let dangling = "as_of = \"x\"\n[models]\n\"m\" = { input = 1.0, output = 1.0 }\n[aliases]\n\"a\" = \"n\"\n";
        assert!(PriceTable::parse(dangling).unwrap_err().contains("alias a names n"));
    }
}
