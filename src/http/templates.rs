//! Prompt templates and prompt A/B tests. The Fallom SDK reads `GET /prompts` and
//! `GET /prompt-ab-tests`; management REST publishes numbered versions at
//! `/api/v1/prompt-templates` and `/api/v1/prompt-ab-tests`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Auth;
use super::body::JsonBody;
use super::error::{ApiError, ApiResult};
use super::model_configs::{check_key, check_weights};
use super::query::ApiPath;
use super::AppState;
use crate::store::{PromptAbTestRow, PromptTemplateRow};
use crate::validate::{Fields, Problems, MAX_PROMPT_NAME_CHARS};

const MAX_TEMPLATE_CHARS: usize = 100_000;

fn template_json(t: &PromptTemplateRow) -> Value {
    json!({ "key": t.key, "version": t.version, "system_prompt": t.system_prompt,
            "user_template": t.user_template, "created_at": t.created_at })
}

fn ab_test_json(t: &PromptAbTestRow) -> Value {
    json!({ "key": t.key, "version": t.version,
            "variants": serde_json::from_str::<Value>(&t.variants).unwrap_or(Value::Array(vec![])),
            "created_at": t.created_at })
}

/// `GET /prompts`: every version of every template, oldest first per key, so the SDK ends up
/// with the latest as current and still finds versions an A/B test pins.
pub async fn sdk_prompts(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let templates = state.store.prompt_templates(owner.project_id, None).await?;
    Ok(Json(json!({ "prompts": templates.iter().map(template_json).collect::<Vec<_>>() })))
}

/// `GET /prompt-ab-tests`: the latest version of every prompt A/B test.
pub async fn sdk_ab_tests(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let tests = state.store.prompt_ab_tests(owner.project_id, None).await?;
    Ok(Json(json!({ "prompt_ab_tests": tests.iter().map(ab_test_json).collect::<Vec<_>>() })))
}

pub async fn publish_template(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut problems = Problems::default();
    let parsed = Fields::of(&body, "", &mut problems).map(|f| {
        let key = check_key(&f, &mut problems);
        // An empty system prompt is legitimate; the field must still be a string.
        let system = match f.get("system_prompt") {
            None => {
                problems.push("system_prompt", "is required (use \"\" for none)");
                None
            }
            Some(_) => f.optional_str("system_prompt", MAX_TEMPLATE_CHARS, &mut problems),
        };
        let user = f.required_str("user_template", MAX_TEMPLATE_CHARS, &mut problems);
        (key, system, user)
    });
    let Some((Some(key), Some(system), Some(user))) = parsed.filter(|_| problems.is_empty()) else {
        return Err(problems.fail("prompt template").into());
    };
    let stored = state.store.publish_prompt_template(owner.project_id, &key, &system, &user).await?;
    Ok((StatusCode::CREATED, Json(template_json(&stored))))
}

pub async fn list_templates(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let templates = state.store.prompt_templates(owner.project_id, None).await?;
    // The list shows each key once, at its latest version.
    let mut latest: Vec<&PromptTemplateRow> = Vec::new();
    for t in &templates {
        match latest.last_mut() {
            Some(last) if last.key == t.key => *last = t,
            _ => latest.push(t),
        }
    }
    Ok(Json(json!({ "prompt_templates": latest.into_iter().map(template_json).collect::<Vec<_>>() })))
}

pub async fn template_detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let versions = state.store.prompt_templates(owner.project_id, Some(&key)).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no prompt template with key `{key}` in this project")));
    }
    Ok(Json(json!({ "key": key, "versions": versions.iter().map(template_json).collect::<Vec<_>>() })))
}

/// Variants are `[{prompt_key, prompt_version?, weight}]`; the templates they name must exist
/// (a variant the SDK cannot resolve would raise in the app).
pub async fn publish_ab_test(
    State(state): State<AppState>,
    Auth(owner): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let templates = state.store.prompt_templates(owner.project_id, None).await?;
    let mut problems = Problems::default();
    let mut variants = Vec::new();
    let key = Fields::of(&body, "", &mut problems).and_then(|f| {
        let key = check_key(&f, &mut problems);
        if let Some(list) = f.required_array("variants", &mut problems) {
            check_weights(list, &mut problems, |v, problems| {
                let prompt_key = v.required_str("prompt_key", MAX_PROMPT_NAME_CHARS, problems).unwrap_or_default();
                let version = v.optional_i64("prompt_version", 1, problems);
                let exists = templates.iter().any(|t| t.key == prompt_key && version.is_none_or(|n| t.version == n));
                if !prompt_key.is_empty() && !exists {
                    let what = version.map_or(String::new(), |n| format!(" version {n}"));
                    problems
                        .push(v.path("prompt_key"), format!("no prompt template `{prompt_key}`{what} in this project"));
                }
                variants
                    .push(json!({ "prompt_key": prompt_key, "prompt_version": version, "weight": v.get("weight") }));
            });
        }
        key
    });
    let Some(key) = key.filter(|_| problems.is_empty()) else {
        return Err(problems.fail("prompt A/B test").into());
    };
    let stored =
        state.store.publish_prompt_ab_test(owner.project_id, &key, &Value::Array(variants).to_string()).await?;
    Ok((StatusCode::CREATED, Json(ab_test_json(&stored))))
}

pub async fn list_ab_tests(State(state): State<AppState>, Auth(owner): Auth) -> ApiResult<Json<Value>> {
    let tests = state.store.prompt_ab_tests(owner.project_id, None).await?;
    Ok(Json(json!({ "prompt_ab_tests": tests.iter().map(ab_test_json).collect::<Vec<_>>() })))
}

pub async fn ab_test_detail(
    State(state): State<AppState>,
    Auth(owner): Auth,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let versions = state.store.prompt_ab_tests(owner.project_id, Some(&key)).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no prompt A/B test with key `{key}` in this project")));
    }
    Ok(Json(json!({ "key": key, "versions": versions.iter().map(ab_test_json).collect::<Vec<_>>() })))
}
