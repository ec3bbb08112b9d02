//! Model A/B configs. Management REST under `/api/v1/model-configs` publishes immutable
//! numbered versions; the Fallom SDK reads them at `/configs` and `/configs/{key}/version/{n}`
//! and reports each session's assignment to `/sessions`. Assignment itself happens in the SDK
//! (an MD5 bucket of the session id against the weights), so the server's job is to serve
//! valid configs and remember who got what.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::query::{ApiPath, ApiQuery};
use super::AppState;
use crate::store::{ModelConfigVersion, SessionAssignment, VariantSummaryRow};
use crate::validate::{type_name, Fields, Problems, MAX_PROMPT_NAME_CHARS};

const MAX_VARIANTS: usize = 100;
const MAX_TARGETS: usize = 10_000;
const MAX_MODEL_CHARS: usize = 200;
const MAX_ID_CHARS: usize = 200;
/// Weights are percentages; floating-point sums like 33.3 + 33.3 + 33.4 need a little room.
const WEIGHT_SUM_TOLERANCE: f64 = 1e-6;
const OPERATORS: &[&str] = &["eq", "neq", "in", "nin", "contains", "startsWith", "endsWith"];
const TARGETING_KEYS: &[&str] = &["enabled", "individualTargets", "rules"];

/// Keys go into SDK request paths unescaped (`/configs/{key}/version/{n}`), so characters
/// that would change the path's meaning are refused.
pub fn check_key(fields: &Fields, problems: &mut Problems) -> Option<String> {
    let key = fields.required_str("key", MAX_PROMPT_NAME_CHARS, problems)?;
    if let Some(c) =
        key.chars().find(|c| matches!(c, '/' | '?' | '#' | '%' | '\\') || c.is_whitespace() || c.is_control())
    {
        problems.push(fields.path("key"), format!("must not contain {c:?}: SDKs put the key into URL paths as is"));
        return None;
    }
    Some(key)
}

/// Variant lists with percentage weights: each weight in 0..=100, all summing to 100. `each`
/// checks a variant's other fields.
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
                Some(_) => Err("must be a percentage between 0 and 100".to_string()),
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

/// A model may appear once per config: the summary and the SDK's assignments go by model name.
fn check_models(variants: &[Value], problems: &mut Problems) {
    let mut seen: HashMap<String, String> = HashMap::new();
    check_weights(variants, problems, |f, problems| {
        if let Some(model) = f.required_str("model", MAX_MODEL_CHARS, problems) {
            if let Some(first) = seen.insert(model.clone(), f.path("model")) {
                problems.push(f.path("model"), format!("repeats {first} ({model:?})"));
            }
        }
    });
}

fn check_variant_index(f: &Fields, variant_count: usize, problems: &mut Problems) {
    if let Some(i) = f.required_i64("variantIndex", 0, problems) {
        if i as usize >= variant_count {
            problems.push(
                f.path("variantIndex"),
                format!("is {i} but there are only {variant_count} variants (indexes start at 0)"),
            );
        }
    }
}

fn check_condition(f: &Fields, problems: &mut Problems) {
    f.required_str("field", MAX_ID_CHARS, problems);
    let Some(operator) = f.required_str("operator", 20, problems) else { return };
    if !OPERATORS.contains(&operator.as_str()) {
        problems.push(f.path("operator"), format!("must be one of {}; got {operator:?}", OPERATORS.join(", ")));
        return;
    }
    let wants_list = operator == "in" || operator == "nin";
    match (f.get("value"), wants_list) {
        (None, _) => problems.push(f.path("value"), "is required"),
        (Some(Value::Array(items)), true) if items.iter().all(Value::is_string) => {}
        (Some(_), true) => problems.push(f.path("value"), format!("must be an array of strings for `{operator}`")),
        (Some(Value::String(_)), false) => {}
        (Some(_), false) => problems.push(f.path("value"), format!("must be a string for `{operator}`")),
    }
}

/// The SDK's targeting shape, checked so that the SDK can never be served something it would
/// misread: known keys and operators, and variant indexes that exist.
fn check_targeting(targeting: &Value, variant_count: usize, problems: &mut Problems) {
    let Some(t) = Fields::of(targeting, "targeting", problems) else { return };
    for key in t.object().keys().filter(|k| !TARGETING_KEYS.contains(&k.as_str())) {
        problems.push(t.path(key), format!("is not a targeting field (known: {})", TARGETING_KEYS.join(", ")));
    }
    t.optional_bool("enabled", problems);
    let too_many = |name: &str, n: usize, problems: &mut Problems| {
        if n > MAX_TARGETS {
            problems.push(t.path(name), format!("has {n} entries; at most {MAX_TARGETS} are accepted"));
        }
    };
    if let Some(targets) = t.optional_array("individualTargets", problems) {
        too_many("individualTargets", targets.len(), problems);
        for (i, target) in targets.iter().enumerate() {
            let Some(f) = Fields::of(target, &format!("targeting.individualTargets[{i}]"), problems) else { continue };
            f.required_str("field", MAX_ID_CHARS, problems);
            if f.get("value").is_none() {
                problems.push(f.path("value"), "is required");
            }
            f.optional_str("value", MAX_ID_CHARS, problems);
            check_variant_index(&f, variant_count, problems);
        }
    }
    if let Some(rules) = t.optional_array("rules", problems) {
        too_many("rules", rules.len(), problems);
        for (i, rule) in rules.iter().enumerate() {
            let Some(f) = Fields::of(rule, &format!("targeting.rules[{i}]"), problems) else { continue };
            match f.required_array("conditions", problems) {
                Some(conditions) if conditions.is_empty() => problems.push(f.path("conditions"), "must not be empty"),
                Some(conditions) => {
                    for (j, c) in conditions.iter().enumerate() {
                        if let Some(cf) = Fields::of(c, &f.path(&format!("conditions[{j}]")), problems) {
                            check_condition(&cf, problems);
                        }
                    }
                }
                None => {}
            }
            check_variant_index(&f, variant_count, problems);
        }
    }
}

struct NewConfig {
    key: String,
    variants: Value,
    targeting: Option<Value>,
}

fn validate_config(body: &Value) -> Result<NewConfig, crate::validate::ValidationError> {
    let mut problems = Problems::default();
    let Some(f) = Fields::of(body, "", &mut problems) else { return Err(problems.fail("model config")) };
    let key = check_key(&f, &mut problems);
    let variants = f.required_array("variants", &mut problems);
    if let Some(variants) = variants {
        check_models(variants, &mut problems);
    }
    let targeting = f.get("targeting");
    if let Some(t) = targeting {
        check_targeting(t, variants.map_or(0, Vec::len), &mut problems);
    }
    let key = key.unwrap_or_default();
    // Only what the SDK reads is kept: unknown variant fields are dropped.
    let variants = variants
        .map(|vs| Value::Array(vs.iter().map(|v| json!({ "model": v["model"], "weight": v["weight"] })).collect()));
    problems.finish(
        "model config",
        NewConfig { key, variants: variants.unwrap_or_default(), targeting: targeting.cloned() },
    )
}

/// The shape the SDK reads: `{key, version, variants, targeting?}`.
fn sdk_json(v: &ModelConfigVersion) -> Value {
    let mut out = json!({
        "key": v.key,
        "version": v.version,
        "variants": serde_json::from_str::<Value>(&v.variants).unwrap_or(Value::Array(vec![])),
    });
    if let Some(t) = v.targeting.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        out["targeting"] = t;
    }
    out
}

fn version_json(v: &ModelConfigVersion) -> Value {
    let mut out = sdk_json(v);
    out["created_at"] = json!(v.created_at);
    out
}

pub async fn publish(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let config = validate_config(&body)?;
    let targeting = config.targeting.as_ref().map(Value::to_string);
    let stored = state
        .store
        .publish_model_config(owner.project_id, &config.key, &config.variants.to_string(), targeting.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(version_json(&stored))))
}

pub async fn list(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let configs = state.store.model_configs(owner.project_id, None).await?;
    let list: Vec<Value> = configs
        .iter()
        .map(|c| {
            json!({ "key": c.key, "latest_version": c.latest_version, "archived": c.archived_at.is_some(),
                    "archived_at": c.archived_at, "created_at": c.created_at })
        })
        .collect();
    Ok(Json(json!({ "model_configs": list })))
}

async fn versions_or_404(state: &AppState, project_id: i64, key: &str) -> ApiResult<Vec<ModelConfigVersion>> {
    let versions = state.store.model_config_versions(project_id, key).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no model config with key `{key}` in this project")));
    }
    Ok(versions)
}

pub async fn detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let versions = versions_or_404(&state, owner.project_id, &key).await?;
    let config = state.store.model_configs(owner.project_id, Some(&key)).await?;
    Ok(Json(json!({
        "key": key,
        "latest_version": versions.last().map(|v| v.version),
        "archived": config.first().is_some_and(|c| c.archived_at.is_some()),
        "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
    })))
}

async fn one_version(state: &AppState, project_id: i64, key: &str, version: i64) -> ApiResult<ModelConfigVersion> {
    state
        .store
        .model_config_version(project_id, key, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model config `{key}` has no version {version} in this project")))
}

pub async fn version(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath((key, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(version_json(&one_version(&state, owner.project_id, &key, version).await?)))
}

pub async fn archive(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    if !state.store.archive_model_config(owner.project_id, &key).await? {
        return Err(ApiError::not_found(format!("no model config with key `{key}` in this project")));
    }
    Ok(Json(json!({ "key": key, "archived": true })))
}

/// `GET /configs`: the latest version of every active config, for the SDK.
pub async fn sdk_configs(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let configs = state.store.latest_model_configs(owner.project_id).await?;
    Ok(Json(json!({ "configs": configs.iter().map(sdk_json).collect::<Vec<_>>() })))
}

/// `GET /configs/{key}/version/{n}`: one pinned version, for the SDK.
pub async fn sdk_config_version(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath((key, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(sdk_json(&one_version(&state, owner.project_id, &key, version).await?)))
}

fn parse_assignment(body: &Value) -> Result<(String, i64, String, String), crate::validate::ValidationError> {
    let mut problems = Problems::default();
    let mut read = || {
        let f = Fields::of(body, "", &mut problems)?;
        let key = f.required_str("config_key", MAX_PROMPT_NAME_CHARS, &mut problems);
        let version = f.required_i64("config_version", 1, &mut problems);
        let session = f.required_str("session_id", MAX_ID_CHARS, &mut problems);
        let model = f.required_str("assigned_model", MAX_MODEL_CHARS, &mut problems);
        Some((key?, version?, session?, model?))
    };
    match read() {
        Some(parsed) => Ok(parsed),
        None => Err(problems.fail("session")),
    }
}

/// `POST /sessions`: the SDK's record of one assignment.
pub async fn record_session(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (key, version, session, model) = parse_assignment(&body)?;
    let assignment =
        SessionAssignment { config_key: &key, config_version: version, session_id: &session, assigned_model: &model };
    state.store.record_session(owner.project_id, &assignment).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "status": "recorded" }))))
}

#[derive(Deserialize)]
pub struct SummaryQuery {
    version: Option<i64>,
}

/// Mean of each numeric custom metric per model, over the sessions assigned that model.
fn metric_means(
    metrics: &[crate::store::SessionMetricRow],
    session_models: &[(String, String)],
) -> HashMap<String, BTreeMap<String, f64>> {
    let mut models_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for (session, model) in session_models {
        models_of.entry(session).or_default().push(model);
    }
    let mut sums: HashMap<String, BTreeMap<String, (f64, u64)>> = HashMap::new();
    for m in metrics {
        let Some(value) = m.value.as_f64() else { continue };
        for model in models_of.get(m.session_id.as_str()).into_iter().flatten() {
            let entry = sums.entry(model.to_string()).or_default().entry(m.field.clone()).or_default();
            entry.0 += value;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(model, fields)| (model, fields.into_iter().map(|(f, (sum, n))| (f, sum / n as f64)).collect()))
        .collect()
}

fn variant_json(v: &VariantSummaryRow, weight: Option<&Value>, metrics: Option<&BTreeMap<String, f64>>) -> Value {
    json!({
        "model": v.model, "weight": weight, "sessions": v.sessions, "assignments": v.assignments,
        "traces": v.traces, "spans": v.spans, "mean_latency_ms": v.mean_latency_ms,
        "input_tokens": v.input_tokens.unwrap_or(0), "output_tokens": v.output_tokens.unwrap_or(0),
        "errors": v.errors, "error_rate": if v.spans > 0 { Some(v.errors as f64 / v.spans as f64) } else { None },
        "metrics": metrics.cloned().unwrap_or_default(),
    })
}

/// `GET /api/v1/model-configs/{key}/summary`: per variant, sessions, traces, latency, tokens,
/// error rate and the sessions' latest custom metrics averaged.
pub async fn summary(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> ApiResult<Json<Value>> {
    let versions = versions_or_404(&state, owner.project_id, &key).await?;
    let shown = match q.version {
        Some(n) => versions
            .iter()
            .find(|v| v.version == n)
            .ok_or_else(|| ApiError::not_found(format!("model config `{key}` has no version {n} in this project")))?,
        None => versions.last().expect("versions_or_404 returns at least one"),
    };
    let mut rows = state.store.variant_summaries(owner.project_id, &key, q.version).await?;
    let metrics = state.store.session_metrics(owner.project_id, &key, None).await?;
    let session_models = state.store.session_models(owner.project_id, &key, q.version).await?;
    let means = metric_means(&metrics, &session_models);

    // Variants of the shown version come first, in config order, even before any traffic.
    let configured: Vec<Value> = serde_json::from_str(&shown.variants).unwrap_or_default();
    let mut out = Vec::new();
    for v in &configured {
        let model = v["model"].as_str().unwrap_or_default();
        let row = match rows.iter().position(|r| r.model == model) {
            Some(i) => rows.remove(i),
            None => VariantSummaryRow { model: model.to_string(), ..Default::default() },
        };
        out.push(variant_json(&row, Some(&v["weight"]), means.get(model)));
    }
    // Models assigned under other versions (or a fallback) are listed after, without a weight.
    out.extend(rows.iter().map(|r| variant_json(r, None, means.get(&r.model))));
    Ok(Json(json!({
        "key": key, "version": q.version, "latest_version": versions.last().map(|v| v.version), "variants": out,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(body: Value) -> Vec<String> {
        match validate_config(&body) {
            Ok(_) => vec![],
            Err(e) => e.problems.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn accepts_the_sdk_shape() {
        let body = json!({"key": "summarizer", "variants": [{"model": "gpt-4o", "weight": 70},
            {"model": "claude", "weight": 30}], "targeting": {"enabled": true,
            "individualTargets": [{"field": "customerId", "value": "u1", "variantIndex": 1}],
            "rules": [{"conditions": [{"field": "plan", "operator": "in", "value": ["pro"]}], "variantIndex": 0}]}});
        assert!(paths(body).is_empty());
        assert!(paths(json!({"key": "k", "variants": [{"model": "a", "weight": 33.3}, {"model": "b", "weight": 33.3},
            {"model": "c", "weight": 33.4}]}))
        .is_empty());
    }

    #[test]
    fn names_bad_weights_operators_and_indexes() {
        assert_eq!(
            paths(json!({"key": "k", "variants": [{"model": "a", "weight": 60}, {"model": "b", "weight": 30}]})),
            ["variants"]
        );
        assert_eq!(paths(json!({"key": "k", "variants": [{"model": "a", "weight": "100"}]})), ["variants[0].weight"]);
        assert_eq!(paths(json!({"key": "a/b", "variants": [{"model": "a", "weight": 100}]})), ["key"]);
        let bad_targeting = json!({"key": "k", "variants": [{"model": "a", "weight": 100}], "targeting": {
            "rules": [{"conditions": [{"field": "plan", "operator": "like", "value": "x"},
                                      {"field": "plan", "operator": "in", "value": "x"}], "variantIndex": 1}],
            "individual_targets": []}});
        assert_eq!(
            paths(bad_targeting),
            [
                "targeting.individual_targets",
                "targeting.rules[0].conditions[0].operator",
                "targeting.rules[0].conditions[1].value",
                "targeting.rules[0].variantIndex"
            ]
        );
    }

    #[test]
    fn metric_means_follow_assignments() {
        let row = |session: &str, field: &str, value: Value| crate::store::SessionMetricRow {
            config_key: "k".into(),
            session_id: session.into(),
            field: field.into(),
            value,
            updated_at: 0,
        };
        let metrics = [row("s1", "score", json!(1.0)), row("s2", "score", json!(3.0)), row("s3", "label", json!("x"))];
        let pairs = [("s1".to_string(), "a".to_string()), ("s2".to_string(), "a".to_string())];
        let means = metric_means(&metrics, &pairs);
        assert_eq!(means["a"]["score"], 2.0);
        assert!(!means.contains_key("b"));
    }
}
