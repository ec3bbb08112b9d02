//! How the dashboard shows a cost (docs/cost.md).

use crate::cost::{CostStatus, CostView};

/// A cost as the pages show it: dollars to four significant digits, and what has no price said
/// in words (never a false 0).
pub(super) fn cost_text(cost: &CostView) -> String {
    let dollars = cost.usd.map(usd);
    match (cost.status, dollars) {
        (CostStatus::Priced, Some(d)) => d,
        (CostStatus::PartlyPriced, Some(d)) => format!("{d} + {} unpriced", cost.unpriced_calls),
        (CostStatus::NoPrice, _) => "no price".into(),
        _ => "–".into(),
    }
}

pub(super) fn usd(dollars: f64) -> String {
    if dollars <= 0.0 {
        return "$0".into();
    }
    if dollars >= 1.0 {
        return format!("${dollars:.2}");
    }
    // four significant digits below a dollar, trailing zeros dropped
    let decimals = ((-dollars.log10().floor()) as usize + 3).min(12);
    let text = format!("{dollars:.decimals$}");
    format!("${}", text.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_show_four_significant_digits_and_never_a_false_zero() {
        assert_eq!(usd(0.0000165), "$0.0000165");
        assert_eq!(usd(0.0035), "$0.0035");
        assert_eq!(usd(12.5), "$12.50");
        let none = CostView { usd: None, status: CostStatus::NoPrice, unpriced_calls: 2, unpriced_models: vec![] };
        assert_eq!(cost_text(&none), "no price");
        let part = CostView {
            usd: Some(0.0035),
            status: CostStatus::PartlyPriced,
            unpriced_calls: 1,
            unpriced_models: vec![],
        };
        assert_eq!(cost_text(&part), "$0.0035 + 1 unpriced");
    }
}
