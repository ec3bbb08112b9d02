//! Checks that more than one resource applies: keys that SDKs put into URL paths (model
//! configs, prompt templates, prompt A/B tests) and percentage-weighted variant lists (model
//! configs, prompt A/B tests).

use serde_json::Value;

use super::limits::{MAX_NAME_CHARS, MAX_VARIANTS, WEIGHT_SUM_TOLERANCE};
use super::{type_name, Fields, Problems};

/// Characters a key may not contain: the SDKs put keys into request paths unescaped
/// (`/configs/{key}/version/{n}`), where these would change the path's meaning.
pub fn is_forbidden_key_char(c: char) -> bool {
    matches!(c, '/' | '?' | '#' | '%' | '\\') || c.is_whitespace() || c.is_control()
}

/// The `key` field of a config, template or A/B test.
pub fn check_key(fields: &Fields, problems: &mut Problems) -> Option<String> {
    let key = fields.required_str("key", MAX_NAME_CHARS, problems)?;
    if let Some(c) = key.chars().find(|c| is_forbidden_key_char(*c)) {
        problems.push(fields.path("key"), format!("must not contain {c:?}: SDKs put the key into URL paths as is"));
        return None;
    }
    Some(key)
}

/// A `variants` list with percentage weights: 1 to [`MAX_VARIANTS`] objects, each `weight` a
/// number from 0 to 100, all summing to 100. `each` checks a variant's other fields.
pub fn check_weights(variants: &[Value], problems: &mut Problems, mut each: impl FnMut(&Fields, &mut Problems)) {
    if variants.is_empty() || variants.len() > MAX_VARIANTS {
        problems.push("variants", format!("must hold between 1 and {MAX_VARIANTS} variants, got {}", variants.len()));
        return;
    }
    // The sum is only meaningful when every weight could be read.
    let mut sum = Some(0.0);
    for (i, v) in variants.iter().enumerate() {
        let Some(f) = Fields::of(v, &format!("variants[{i}]"), problems) else {
            sum = None;
            continue;
        };
        let weight = match f.get("weight") {
            None => Err("is required".to_string()),
            Some(w) => match w.as_f64() {
                Some(w) if (0.0..=100.0).contains(&w) => Ok(w),
                Some(_) => Err("must be a percentage from 0 to 100".to_string()),
                None => Err(format!("must be a number, got {}", type_name(w))),
            },
        };
        match weight {
            Ok(w) => sum = sum.map(|s| s + w),
            Err(message) => {
                problems.push(f.path("weight"), message);
                sum = None;
            }
        }
        each(&f, problems);
    }
    if let Some(sum) = sum.filter(|s| (s - 100.0).abs() > WEIGHT_SUM_TOLERANCE) {
        problems.push("variants", format!("weights must sum to 100 (percent), they sum to {sum}"));
    }
}
