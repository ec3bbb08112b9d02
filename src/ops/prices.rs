//! Model prices for `/api/v1/prices` and for costs: the list shipped with the server with the
//! project's own prices over it (docs/cost.md). Costs are computed when read, so a change here
//! applies to past spans as well, and every answer that changes a price says so.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::cost::{normalise_id, Price, PriceTable};
use crate::store::KeyOwner;
use crate::validate::{Fields, FromJson, Problems, ValidationError};
use crate::web::error::{ApiError, ApiResult};
use crate::web::AppState;

/// What a price change applies to, in every answer that changes one.
pub const APPLIES_TO: &str = "all spans, past and future: costs are computed when read, at the current prices";
/// Longest model id a project may price.
const MAX_MODEL_CHARS: usize = 200;
/// Highest price accepted, US dollars per million tokens (far above any list price: catches a
/// price given per token or per thousand by mistake only when absurd, so it stays permissive).
const MAX_PRICE: f64 = 1_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// config/model-prices.toml, shipped with the server.
    Shipped,
    /// This project's own price (replacing a shipped one of the same id, or added).
    Project,
}

/// A model's prices, US dollars per million tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceEntry {
    pub model: String,
    pub input: f64,
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; null: they cost `input`.
    pub cached_input: Option<f64>,
    pub source: PriceSource,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceList {
    /// The date of the shipped list.
    pub shipped_as_of: String,
    /// What a price change applies to.
    pub applies_to: &'static str,
    /// Every model with a price for this project, sorted by id.
    pub prices: Vec<PriceEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceSet {
    pub price: PriceEntry,
    /// True when the project had no price of its own for this id before.
    pub created: bool,
    pub applies_to: &'static str,
}

/// A price to set: `input` and `output` required, `cached_input` optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the body is read by `PriceChange::read`; serde's derive states the schema's closed object
pub struct PriceChange {
    #[schema(minimum = 0.0, maximum = 1000000.0)]
    pub input: f64,
    #[schema(minimum = 0.0, maximum = 1000000.0)]
    pub output: f64,
    #[schema(minimum = 0.0, maximum = 1000000.0)]
    pub cached_input: Option<f64>,
}

impl FromJson for PriceChange {
    const WHAT: &'static str = "model price";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        f.refuse_unknown(&["input", "output", "cached_input"], "a price field", problems);
        let required = |name: &str, problems: &mut Problems| {
            let number = f.optional_number(name, 0.0, MAX_PRICE, problems);
            if f.get(name).is_none() {
                problems.push(name, "is required (US dollars per million tokens)");
            }
            number
        };
        let input = required("input", problems);
        let output = required("output", problems);
        let cached_input = match f.get("cached_input") {
            None | Some(Value::Null) => None,
            Some(_) => Some(f.optional_number("cached_input", 0.0, MAX_PRICE, problems)?),
        };
        Some(PriceChange { input: input?, output: output?, cached_input })
    }
}

/// The prices costs of `project_id` are computed with.
pub async fn prices_for(state: &AppState, project_id: i64) -> ApiResult<PriceTable> {
    let own = state.store.project_prices(project_id).await?;
    Ok(PriceTable::shipped().with_overrides(own))
}

pub async fn list(state: &AppState, owner: &KeyOwner) -> ApiResult<PriceList> {
    let own = state.store.project_prices(owner.project_id).await?;
    let shipped = PriceTable::shipped();
    let mut prices: Vec<PriceEntry> = shipped
        .models()
        .into_iter()
        .filter(|(id, _)| !own.iter().any(|(own_id, _)| own_id == id))
        .map(|(id, p)| entry(id, p, PriceSource::Shipped))
        .chain(own.iter().map(|(id, p)| entry(id, *p, PriceSource::Project)))
        .collect();
    prices.sort_by(|a, b| a.model.cmp(&b.model));
    Ok(PriceList { shipped_as_of: shipped.as_of.clone(), applies_to: APPLIES_TO, prices })
}

/// Sets the project's price of `model`.
pub async fn set(state: &AppState, owner: &KeyOwner, model: &str, change: PriceChange) -> ApiResult<PriceSet> {
    let id = model_id(model)?;
    let price = Price { input: change.input, output: change.output, cached_input: change.cached_input };
    let created = state.store.set_project_price(owner.project_id, &id, price).await?;
    Ok(PriceSet { price: entry(&id, price, PriceSource::Project), created, applies_to: APPLIES_TO })
}

/// Removes the project's own price of `model` (a shipped price of that id applies again).
pub async fn delete(state: &AppState, owner: &KeyOwner, model: &str) -> ApiResult<StatusCode> {
    let id = model_id(model)?;
    if state.store.delete_project_price(owner.project_id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("this project has no price of its own for `{id}`")))
    }
}

fn model_id(model: &str) -> Result<String, ValidationError> {
    let id = normalise_id(model);
    if id.is_empty() || id.chars().count() > MAX_MODEL_CHARS {
        return Err(ValidationError::single(
            "model price",
            "model",
            format!("must be 1 to {MAX_MODEL_CHARS} characters"),
        ));
    }
    Ok(id)
}

fn entry(id: &str, p: Price, source: PriceSource) -> PriceEntry {
    PriceEntry { model: id.to_string(), input: p.input, output: p.output, cached_input: p.cached_input, source }
}
