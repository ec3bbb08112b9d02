//! Model A/B configs. Management REST under `/api/v1/model-configs` publishes immutable
//! numbered versions; the Fallom SDK reads them at `/configs` and `/configs/{key}/version/{n}`
//! and reports each session's assignment to `/sessions`. Assignment itself happens in the SDK
//! (an MD5 bucket of the session id against the weights), so the server's job is to serve
//! valid configs and remember who got what.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::cost::{CostTotal, CostView};
use crate::domain::TargetingOperator;
use crate::store::KeyOwner;
use crate::store::{ModelConfigVersion, SessionAssignment, SessionMetricRow, VariantSummaryRow};
use crate::validate::limits::{MAX_ID_CHARS, MAX_MODEL_CHARS, MAX_NAME_CHARS, MAX_TARGETS, MAX_VERSION};
use crate::validate::shared::{check_key, check_weights};
use crate::validate::{schemas, Fields, FromJson, Problems, ValidationError};
use crate::web::error::{ApiError, ApiResult};
use crate::web::query::{FromQuery, QueryFields};
use crate::web::AppState;

/// One model and its share of sessions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelVariant {
    #[schema(schema_with = schemas::model)]
    pub model: String,
    /// Percent of sessions; the weights of a config sum to 100. Kept as sent (`70` stays `70`).
    #[schema(schema_with = schemas::weight)]
    pub weight: serde_json::Number,
}

/// Who gets which variant before the weights apply, in the Fallom SDK's shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Targeting {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Exact matches on a context field (checked first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::individual_targets)]
    pub individual_targets: Option<Vec<IndividualTarget>>,
    /// The first rule whose conditions all hold picks the variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schemas::targeting_rules)]
    pub rules: Option<Vec<TargetingRule>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IndividualTarget {
    #[schema(schema_with = schemas::id)]
    pub field: String,
    #[schema(schema_with = schemas::target_value)]
    pub value: String,
    /// Index into `variants`.
    #[schema(schema_with = schemas::variant_index)]
    pub variant_index: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetingRule {
    #[schema(min_items = 1)]
    pub conditions: Vec<Condition>,
    #[schema(schema_with = schemas::variant_index)]
    pub variant_index: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Condition {
    #[schema(schema_with = schemas::id)]
    pub field: String,
    pub operator: TargetingOperator,
    /// A list of strings for `in` / `nin`, a string for the others.
    pub value: ConditionValue,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConditionValue {
    One(String),
    Many(Vec<String>),
}

/// A new version of a config (the config is created by its first version).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ModelConfigPublish {
    /// No `/ ? # % \` or white space: SDKs put keys into URL paths as they are.
    #[schema(schema_with = schemas::key)]
    pub key: String,
    /// 1 to 100 variants with distinct models; weights sum to 100.
    #[schema(schema_with = schemas::model_variants)]
    pub variants: Vec<ModelVariant>,
    pub targeting: Option<Targeting>,
}

/// A config version in the shape the SDK reads.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SdkModelConfig {
    pub key: String,
    pub version: i64,
    pub variants: Vec<ModelVariant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targeting: Option<Targeting>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfigVersionView {
    #[serde(flatten)]
    pub config: SdkModelConfig,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfigListItem {
    pub key: String,
    pub latest_version: i64,
    pub archived: bool,
    pub archived_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfigList {
    pub model_configs: Vec<ModelConfigListItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfigDetail {
    pub key: String,
    pub latest_version: i64,
    pub archived: bool,
    /// Oldest first.
    pub versions: Vec<ModelConfigVersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfigArchived {
    pub key: String,
    pub archived: bool,
}

/// What `GET /configs` serves the SDK: the latest version of every active config.
#[derive(Debug, Serialize, ToSchema)]
pub struct SdkConfigs {
    pub configs: Vec<SdkModelConfig>,
}

/// One assignment the SDK made; it must name a published config version.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionRecord {
    #[schema(schema_with = schemas::name)]
    pub config_key: String,
    #[schema(schema_with = schemas::version)]
    pub config_version: i64,
    #[schema(schema_with = schemas::id)]
    pub session_id: String,
    #[schema(schema_with = schemas::model)]
    pub assigned_model: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    #[schema(example = "recorded")]
    pub status: &'static str,
}

/// One variant's traffic and outcomes.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantSummary {
    pub model: String,
    /// The weight in the shown version; null for models assigned only under other versions.
    #[schema(value_type = Option<f64>)]
    pub weight: Option<serde_json::Number>,
    pub sessions: i64,
    /// Assignments reported, repeats counted.
    pub assignments: i64,
    pub traces: i64,
    pub spans: i64,
    pub mean_latency_ms: Option<f64>,
    /// Sums over the spans (saturating at 2^63 - 1).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub errors: i64,
    pub error_rate: Option<f64>,
    /// Each numeric custom metric's latest value per session, averaged over the sessions.
    pub metrics: BTreeMap<String, f64>,
    /// The variant's calls' cost at the current prices (priced by the model each span reported).
    pub cost: CostView,
    /// The mean cost of its priced calls: what a call of this variant costs, to compare with
    /// the others. Null when none is priced.
    pub cost_per_call_usd: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelConfigSummary {
    pub key: String,
    /// The version asked for, or null for all versions.
    pub version: Option<i64>,
    pub latest_version: i64,
    pub variants: Vec<VariantSummary>,
}

/// A model may appear once per config: the summary and the SDK's assignments go by model name.
fn read_variants(variants: &[Value], problems: &mut Problems) -> Vec<ModelVariant> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    check_weights(variants, problems, |f, problems| {
        if let Some(model) = f.required_str("model", MAX_MODEL_CHARS, problems) {
            if let Some(first) = seen.insert(model.clone(), f.path("model")) {
                problems.push(f.path("model"), format!("repeats {first} ({model:?})"));
            }
            if let Some(Value::Number(weight)) = f.get("weight") {
                out.push(ModelVariant { model, weight: weight.clone() });
            }
        }
    });
    out
}

fn read_variant_index(f: &Fields, variant_count: usize, problems: &mut Problems) -> Option<i64> {
    let i = f.required_int("variantIndex", 0, crate::validate::limits::MAX_VARIANT_INDEX, problems)?;
    if i as usize >= variant_count {
        problems.push(
            f.path("variantIndex"),
            format!("is {i} but there are only {variant_count} variants (indexes start at 0)"),
        );
        return None;
    }
    Some(i)
}

fn read_condition(f: &Fields, problems: &mut Problems) -> Option<Condition> {
    let field = f.required_str("field", MAX_ID_CHARS, problems);
    let operator = f.required_str("operator", 20, problems)?;
    let Ok(op) = operator.parse::<TargetingOperator>() else {
        let known: Vec<&str> = TargetingOperator::ALL.iter().map(|o| o.as_str()).collect();
        problems.push(f.path("operator"), format!("must be one of {}; got {operator:?}", known.join(", ")));
        return None;
    };
    let wants_list = matches!(op, TargetingOperator::In | TargetingOperator::Nin);
    let value = match (f.get("value"), wants_list) {
        (None, _) => {
            problems.push(f.path("value"), "is required");
            None
        }
        (Some(Value::Array(items)), true) if items.iter().all(Value::is_string) => {
            Some(ConditionValue::Many(items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()))
        }
        (Some(_), true) => {
            problems.push(f.path("value"), format!("must be an array of strings for `{operator}`"));
            None
        }
        (Some(Value::String(s)), false) => Some(ConditionValue::One(s.clone())),
        (Some(_), false) => {
            problems.push(f.path("value"), format!("must be a string for `{operator}`"));
            None
        }
    };
    Some(Condition { field: field?, operator: op, value: value? })
}

/// The SDK's targeting shape, checked so that the SDK can never be served something it would
/// misread: known keys and operators, and variant indexes that exist.
fn read_targeting(targeting: &Value, variant_count: usize, problems: &mut Problems) -> Option<Targeting> {
    let t = Fields::of(targeting, "targeting", problems)?;
    t.refuse_unknown(&["enabled", "individualTargets", "rules"], "a targeting field", problems);
    let enabled = t.optional_bool("enabled", problems);
    let individual_targets = t.optional_array("individualTargets", MAX_TARGETS, problems).map(|targets| {
        let read = targets.iter().enumerate().filter_map(|(i, target)| {
            let f = Fields::of(target, &format!("targeting.individualTargets[{i}]"), problems)?;
            let field = f.required_str("field", MAX_ID_CHARS, problems);
            if f.get("value").is_none() {
                problems.push(f.path("value"), "is required");
            }
            let value = f.optional_str("value", MAX_ID_CHARS, problems);
            let variant_index = read_variant_index(&f, variant_count, problems);
            Some(IndividualTarget { field: field?, value: value?, variant_index: variant_index? })
        });
        read.collect::<Vec<_>>()
    });
    let rules = t.optional_array("rules", MAX_TARGETS, problems).map(|rules| {
        let read = rules.iter().enumerate().filter_map(|(i, rule)| {
            let f = Fields::of(rule, &format!("targeting.rules[{i}]"), problems)?;
            let conditions = match f.required_array("conditions", MAX_TARGETS, problems) {
                Some(conditions) if conditions.is_empty() => {
                    problems.push(f.path("conditions"), "must not be empty");
                    None
                }
                Some(conditions) => {
                    let read: Vec<Option<Condition>> = conditions
                        .iter()
                        .enumerate()
                        .map(|(j, c)| {
                            let cf = Fields::of(c, &f.path(&format!("conditions[{j}]")), problems)?;
                            read_condition(&cf, problems)
                        })
                        .collect();
                    read.into_iter().collect::<Option<Vec<_>>>()
                }
                None => None,
            };
            let variant_index = read_variant_index(&f, variant_count, problems);
            Some(TargetingRule { conditions: conditions?, variant_index: variant_index? })
        });
        read.collect::<Vec<_>>()
    });
    Some(Targeting { enabled, individual_targets, rules })
}

impl FromJson for ModelConfigPublish {
    const WHAT: &'static str = "model config";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        let key = check_key(&f, problems);
        let raw_variants = f.required_array("variants", usize::MAX, problems);
        let variants = raw_variants.map(|v| read_variants(v, problems));
        let targeting = match f.get("targeting") {
            Some(t) => Some(read_targeting(t, raw_variants.map_or(0, Vec::len), problems)?),
            None => None,
        };
        Some(ModelConfigPublish { key: key?, variants: variants?, targeting })
    }
}

impl FromJson for SessionRecord {
    const WHAT: &'static str = "session";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        let config_key = f.required_str("config_key", MAX_NAME_CHARS, problems);
        let config_version = f.required_int("config_version", 1, MAX_VERSION, problems);
        let session_id = f.required_str("session_id", MAX_ID_CHARS, problems);
        let assigned_model = f.required_str("assigned_model", MAX_MODEL_CHARS, problems);
        Some(SessionRecord {
            config_key: config_key?,
            config_version: config_version?,
            session_id: session_id?,
            assigned_model: assigned_model?,
        })
    }
}

impl From<&ModelConfigVersion> for SdkModelConfig {
    /// Variants and targeting were validated before they were stored, so they parse.
    fn from(v: &ModelConfigVersion) -> Self {
        SdkModelConfig {
            key: v.key.clone(),
            version: v.version,
            variants: serde_json::from_str(&v.variants).unwrap_or_default(),
            targeting: v.targeting.as_deref().and_then(|t| serde_json::from_str(t).ok()),
        }
    }
}

impl From<&ModelConfigVersion> for ModelConfigVersionView {
    fn from(v: &ModelConfigVersion) -> Self {
        ModelConfigVersionView { config: v.into(), created_at: v.created_at }
    }
}

pub const KEY_PARAM: &str = "The config key";

/// Publishes the next immutable version of a config (creating it, or un-archiving it).
pub async fn publish(
    state: &AppState,
    owner: &KeyOwner,
    config: ModelConfigPublish,
) -> ApiResult<(StatusCode, ModelConfigVersionView)> {
    let variants = serde_json::to_string(&config.variants).map_err(|_| ApiError::internal())?;
    let targeting =
        config.targeting.as_ref().map(serde_json::to_string).transpose().map_err(|_| ApiError::internal())?;
    let stored =
        state.store.publish_model_config(owner.project_id, &config.key, &variants, targeting.as_deref()).await?;
    Ok((StatusCode::CREATED, (&stored).into()))
}

/// Every config of the project, archived ones included.
pub async fn list(state: &AppState, owner: &KeyOwner) -> ApiResult<ModelConfigList> {
    let configs = state.store.model_configs(owner.project_id, None).await?;
    let model_configs = configs
        .into_iter()
        .map(|c| ModelConfigListItem {
            key: c.key,
            latest_version: c.latest_version,
            archived: c.archived_at.is_some(),
            archived_at: c.archived_at,
            created_at: c.created_at,
        })
        .collect();
    Ok(ModelConfigList { model_configs })
}

async fn versions_or_404(state: &AppState, project_id: i64, key: &str) -> ApiResult<Vec<ModelConfigVersion>> {
    let versions = state.store.model_config_versions(project_id, key).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no model config with key `{key}` in this project")));
    }
    Ok(versions)
}

/// One config with all its versions.
pub async fn detail(state: &AppState, owner: &KeyOwner, key: String) -> ApiResult<ModelConfigDetail> {
    let versions = versions_or_404(state, owner.project_id, &key).await?;
    let config = state.store.model_configs(owner.project_id, Some(&key)).await?;
    Ok(ModelConfigDetail {
        key,
        latest_version: versions.last().map_or(0, |v| v.version),
        archived: config.first().is_some_and(|c| c.archived_at.is_some()),
        versions: versions.iter().map(ModelConfigVersionView::from).collect(),
    })
}

async fn one_version(state: &AppState, project_id: i64, key: &str, version: i64) -> ApiResult<ModelConfigVersion> {
    state
        .store
        .model_config_version(project_id, key, version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("model config `{key}` has no version {version} in this project")))
}

/// One version of a config.
pub async fn version(
    state: &AppState,
    owner: &KeyOwner,
    (key, version): (String, i64),
) -> ApiResult<ModelConfigVersionView> {
    Ok((&one_version(state, owner.project_id, &key, version).await?).into())
}

/// Hides a config from `GET /configs`; pinned versions keep answering.
pub async fn archive(state: &AppState, owner: &KeyOwner, key: String) -> ApiResult<ModelConfigArchived> {
    if !state.store.archive_model_config(owner.project_id, &key).await? {
        return Err(ApiError::not_found(format!("no model config with key `{key}` in this project")));
    }
    Ok(ModelConfigArchived { key, archived: true })
}

/// The Fallom SDK's config sync: the latest version of every active config.
pub async fn sdk_configs(state: &AppState, owner: &KeyOwner) -> ApiResult<SdkConfigs> {
    let configs = state.store.latest_model_configs(owner.project_id).await?;
    Ok(SdkConfigs { configs: configs.iter().map(SdkModelConfig::from).collect() })
}

/// The Fallom SDK's version pinning: one config version.
pub async fn sdk_config_version(
    state: &AppState,
    owner: &KeyOwner,
    (key, version): (String, i64),
) -> ApiResult<SdkModelConfig> {
    Ok((&one_version(state, owner.project_id, &key, version).await?).into())
}

/// The Fallom SDK's record of one assignment (repeats are counted, not stored twice). A config
/// or version that was never published is a 422; the SDK sends this fire-and-forget and
/// ignores the answer, so that never disturbs an app.
pub async fn record_session(
    state: &AppState,
    owner: &KeyOwner,
    record: SessionRecord,
) -> ApiResult<(StatusCode, Recorded)> {
    let (key, version) = (&record.config_key, record.config_version);
    if state.store.model_config_version(owner.project_id, key, version).await?.is_none() {
        let message = format!("model config `{key}` has no version {version} in this project");
        return Err(ValidationError::single(SessionRecord::WHAT, "config_version", message).into());
    }
    let assignment = SessionAssignment {
        config_key: key,
        config_version: version,
        session_id: &record.session_id,
        assigned_model: &record.assigned_model,
    };
    state.store.record_session(owner.project_id, &assignment).await?;
    Ok((StatusCode::ACCEPTED, Recorded { status: "recorded" }))
}

/// Mean of each numeric custom metric per model, over the sessions assigned that model. Means
/// that are not finite (sums of huge values) are left out rather than served as null.
fn metric_means(
    metrics: &[SessionMetricRow],
    session_models: &[(String, String)],
) -> HashMap<String, BTreeMap<String, f64>> {
    let mut models_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (session, model) in session_models {
        models_of.entry(session).or_default().insert(model);
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
        .map(|(model, fields)| {
            let means = fields.into_iter().map(|(f, (sum, n))| (f, sum / n as f64)).filter(|(_, m)| m.is_finite());
            (model, means.collect())
        })
        .collect()
}

fn variant_summary(
    v: VariantSummaryRow,
    weight: Option<serde_json::Number>,
    metrics: Option<&BTreeMap<String, f64>>,
    cost: Option<CostTotal>,
) -> VariantSummary {
    let cost = cost.unwrap_or_default();
    VariantSummary {
        cost_per_call_usd: cost.per_priced_call(),
        cost: cost.view(),
        error_rate: (v.spans > 0).then(|| v.errors as f64 / v.spans as f64),
        model: v.model,
        weight,
        sessions: v.sessions,
        assignments: v.assignments,
        traces: v.traces,
        spans: v.spans,
        mean_latency_ms: v.mean_latency_ms,
        input_tokens: v.input_tokens.unwrap_or(0),
        output_tokens: v.output_tokens.unwrap_or(0),
        errors: v.errors,
        metrics: metrics.cloned().unwrap_or_default(),
    }
}

/// Optional version filter of the summary.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// Only the sessions assigned under this version.
    #[param(minimum = 1)]
    pub version: Option<i64>,
}

impl FromQuery for SummaryParams {
    fn read(q: &mut QueryFields) -> Self {
        SummaryParams { version: q.int("version", 1, i64::MAX) }
    }
}

/// Per variant: sessions, traces, latency, tokens, error rate and the sessions' latest custom
/// metrics averaged.
pub async fn summary(
    state: &AppState,
    owner: &KeyOwner,
    key: String,
    SummaryParams { version }: SummaryParams,
) -> ApiResult<ModelConfigSummary> {
    let versions = versions_or_404(state, owner.project_id, &key).await?;
    let shown = match version {
        Some(n) => versions
            .iter()
            .find(|v| v.version == n)
            .ok_or_else(|| ApiError::not_found(format!("model config `{key}` has no version {n} in this project")))?,
        None => versions.last().expect("versions_or_404 returns at least one"),
    };
    let mut rows = state.store.variant_summaries(owner.project_id, &key, version).await?;
    let metrics = state.store.session_metrics(owner.project_id, &key, None).await?;
    let session_models = state.store.session_models(owner.project_id, &key, version).await?;
    let means = metric_means(&metrics, &session_models);
    let prices = super::prices::prices_for(state, owner.project_id).await?;
    let mut costs: HashMap<String, CostTotal> = HashMap::new();
    for u in state.store.usage_by_variant_and_model(owner.project_id, &key, version).await? {
        let total = costs.entry(u.group).or_default();
        total.add(&prices, u.model.as_deref(), u.input_tokens, u.output_tokens, u.calls);
    }

    // Variants of the shown version come first, in config order, even before any traffic.
    let mut variants = Vec::new();
    for v in SdkModelConfig::from(shown).variants {
        let row = match rows.iter().position(|r| r.model == v.model) {
            Some(i) => rows.remove(i),
            None => VariantSummaryRow { model: v.model.clone(), ..Default::default() },
        };
        let cost = costs.remove(&v.model);
        variants.push(variant_summary(row, Some(v.weight), means.get(&v.model), cost));
    }
    // Models assigned under other versions (or a fallback) are listed after, without a weight.
    variants.extend(rows.into_iter().map(|r| {
        let metrics = means.get(&r.model).cloned();
        let cost = costs.remove(&r.model);
        variant_summary(r, None, metrics.as_ref(), cost)
    }));
    let latest_version = versions.last().map_or(0, |v| v.version);
    Ok(ModelConfigSummary { key, version, latest_version, variants })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(body: Value) -> Vec<String> {
        match ModelConfigPublish::from_json(&body) {
            Ok(_) => vec![],
            Err(e) => e.problems.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn accepts_the_sdk_shape_and_stores_it_as_sent() {
        let body = json!({"key": "summarizer", "variants": [{"model": "gpt-4o", "weight": 70},
            {"model": "claude", "weight": 30}], "targeting": {"enabled": true,
            "individualTargets": [{"field": "customerId", "value": "u1", "variantIndex": 1}],
            "rules": [{"conditions": [{"field": "plan", "operator": "in", "value": ["pro"]}], "variantIndex": 0}]}});
        let parsed = ModelConfigPublish::from_json(&body).unwrap();
        assert_eq!(serde_json::to_value(&parsed.targeting).unwrap(), body["targeting"]);
        assert_eq!(serde_json::to_value(&parsed.variants).unwrap(), body["variants"]);
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
    fn sessions_refuse_versions_out_of_range() {
        let body = json!({"config_key": "k", "config_version": 1e300, "session_id": "s", "assigned_model": "m"});
        let err = SessionRecord::from_json(&body).unwrap_err();
        assert_eq!(err.problems[0].path, "config_version");
        assert!(err.problems[0].message.contains("from 1 to 2147483647"), "{:?}", err.problems);
    }

    #[test]
    fn metric_means_follow_assignments() {
        let row = |session: &str, field: &str, value: Value| SessionMetricRow {
            config_key: "k".into(),
            session_id: session.into(),
            field: field.into(),
            value,
            updated_at: 0,
        };
        let metrics = [
            row("s1", "score", json!(1.0)),
            row("s2", "score", json!(3.0)),
            row("s3", "label", json!("x")),
            row("s1", "huge", json!(1e308)),
            row("s2", "huge", json!(1e308)),
        ];
        let pairs = [("s1".to_string(), "a".to_string()), ("s2".to_string(), "a".to_string())];
        let means = metric_means(&metrics, &pairs);
        assert_eq!(means["a"]["score"], 2.0);
        assert!(!means["a"].contains_key("huge"));
        assert!(!means.contains_key("b"));
    }
}
