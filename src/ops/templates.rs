//! Prompt templates and prompt A/B tests. The Fallom SDK reads `GET /prompts` and
//! `GET /prompt-ab-tests`; management REST publishes numbered versions at
//! `/api/v1/prompt-templates` and `/api/v1/prompt-ab-tests`.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::store::KeyOwner;
use crate::store::{PromptAbTestRow, PromptTemplateRow};
use crate::validate::limits::{MAX_NAME_CHARS, MAX_TEMPLATE_CHARS, MAX_VERSION};
use crate::validate::shared::{check_key, check_weights};
use crate::validate::{schemas, Fields, FromJson, Problems};
use crate::web::error::{ApiError, ApiResult};

use crate::web::AppState;

/// A new version of a prompt template (`{{variable}}` placeholders).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TemplatePublish {
    /// No `/ ? # % \` or white space: SDKs put keys into URL paths as they are.
    #[schema(schema_with = schemas::key)]
    pub key: String,
    /// May be empty (`""` for none).
    #[schema(schema_with = schemas::template)]
    pub system_prompt: String,
    #[schema(schema_with = schemas::required_template)]
    pub user_template: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub key: String,
    pub version: i64,
    pub system_prompt: String,
    pub user_template: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// The latest version of each template.
    pub prompt_templates: Vec<TemplateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateDetail {
    pub key: String,
    /// Oldest first.
    pub versions: Vec<TemplateView>,
}

/// What `GET /prompts` serves the SDK: every version of every template, oldest first per key.
#[derive(Debug, Serialize, ToSchema)]
pub struct SdkPrompts {
    pub prompts: Vec<TemplateView>,
}

/// One arm of a prompt A/B test: a template, optionally pinned to a version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AbVariant {
    #[schema(schema_with = schemas::name)]
    pub prompt_key: String,
    /// Absent or null = the template's latest version.
    #[schema(schema_with = schemas::optional_version)]
    pub prompt_version: Option<i64>,
    /// Percent; the weights of a test sum to 100.
    #[schema(schema_with = schemas::weight)]
    pub weight: serde_json::Number,
}

/// A new version of a prompt A/B test; every template it names must exist.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AbTestPublish {
    #[schema(schema_with = schemas::key)]
    pub key: String,
    /// 1 to 100 variants; weights sum to 100.
    #[schema(schema_with = schemas::ab_variants)]
    pub variants: Vec<AbVariant>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AbTestView {
    pub key: String,
    pub version: i64,
    pub variants: Vec<AbVariant>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AbTestList {
    /// The latest version of each test.
    pub prompt_ab_tests: Vec<AbTestView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AbTestDetail {
    pub key: String,
    /// Oldest first.
    pub versions: Vec<AbTestView>,
}

impl From<&PromptTemplateRow> for TemplateView {
    fn from(t: &PromptTemplateRow) -> Self {
        TemplateView {
            key: t.key.clone(),
            version: t.version,
            system_prompt: t.system_prompt.clone(),
            user_template: t.user_template.clone(),
            created_at: t.created_at,
        }
    }
}

impl From<&PromptAbTestRow> for AbTestView {
    /// Variants were validated before they were stored, so they parse.
    fn from(t: &PromptAbTestRow) -> Self {
        AbTestView {
            key: t.key.clone(),
            version: t.version,
            variants: serde_json::from_str(&t.variants).unwrap_or_default(),
            created_at: t.created_at,
        }
    }
}

impl FromJson for TemplatePublish {
    const WHAT: &'static str = "prompt template";

    fn read(value: &Value, problems: &mut Problems) -> Option<Self> {
        let f = Fields::of(value, "", problems)?;
        let key = check_key(&f, problems);
        // An empty system prompt is legitimate; the field must still be a string.
        let system_prompt = match f.get("system_prompt") {
            None => {
                problems.push("system_prompt", "is required (use \"\" for none)");
                None
            }
            Some(_) => f.optional_str("system_prompt", MAX_TEMPLATE_CHARS, problems),
        };
        let user_template = f.required_str("user_template", MAX_TEMPLATE_CHARS, problems);
        Some(TemplatePublish { key: key?, system_prompt: system_prompt?, user_template: user_template? })
    }
}

impl AbTestPublish {
    /// Reads the test; each variant must name a template of `templates` (and the version, if
    /// pinned): a variant the SDK cannot resolve would raise in the app.
    fn read(value: &Value, templates: &[PromptTemplateRow]) -> Result<AbTestPublish, crate::validate::ValidationError> {
        let mut problems = Problems::default();
        let read = Fields::of(value, "", &mut problems).and_then(|f| {
            let key = check_key(&f, &mut problems);
            let mut variants = Vec::new();
            if let Some(list) = f.required_array("variants", usize::MAX, &mut problems) {
                check_weights(list, &mut problems, |v, problems| {
                    let prompt_key = v.required_str("prompt_key", MAX_NAME_CHARS, problems);
                    let version = v.optional_int("prompt_version", 1, MAX_VERSION, problems);
                    let Some(prompt_key) = prompt_key else { return };
                    let exists =
                        templates.iter().any(|t| t.key == prompt_key && version.is_none_or(|n| t.version == n));
                    if !exists {
                        let what = version.map_or(String::new(), |n| format!(" version {n}"));
                        problems.push(
                            v.path("prompt_key"),
                            format!("no prompt template `{prompt_key}`{what} in this project"),
                        );
                    }
                    if let Some(Value::Number(weight)) = v.get("weight") {
                        variants.push(AbVariant { prompt_key, prompt_version: version, weight: weight.clone() });
                    }
                });
            }
            Some(AbTestPublish { key: key?, variants })
        });
        problems.finish("prompt A/B test", read)
    }
}

/// The Fallom SDK's template sync: every version of every template, oldest first per key, so
/// the SDK ends up with the latest as current and still finds versions an A/B test pins.
pub async fn sdk_prompts(state: &AppState, owner: &KeyOwner) -> ApiResult<SdkPrompts> {
    let templates = state.store.prompt_templates(owner.project_id, None).await?;
    Ok(SdkPrompts { prompts: templates.iter().map(TemplateView::from).collect() })
}

/// The Fallom SDK's A/B test sync: the latest version of every prompt A/B test.
pub async fn sdk_ab_tests(state: &AppState, owner: &KeyOwner) -> ApiResult<AbTestList> {
    list_ab_tests(state, owner).await
}

/// Publishes the next version of a prompt template.
pub async fn publish_template(
    state: &AppState,
    owner: &KeyOwner,
    t: TemplatePublish,
) -> ApiResult<(StatusCode, TemplateView)> {
    let stored =
        state.store.publish_prompt_template(owner.project_id, &t.key, &t.system_prompt, &t.user_template).await?;
    Ok((StatusCode::CREATED, (&stored).into()))
}

/// The latest version of each template.
pub async fn list_templates(state: &AppState, owner: &KeyOwner) -> ApiResult<TemplateList> {
    let templates = state.store.prompt_templates(owner.project_id, None).await?;
    // Rows come ordered by key, then version: the last of each key is its latest.
    let mut latest: Vec<&PromptTemplateRow> = Vec::new();
    for t in &templates {
        match latest.last_mut() {
            Some(last) if last.key == t.key => *last = t,
            _ => latest.push(t),
        }
    }
    Ok(TemplateList { prompt_templates: latest.into_iter().map(TemplateView::from).collect() })
}

/// One template with all its versions.
pub async fn template_detail(state: &AppState, owner: &KeyOwner, key: String) -> ApiResult<TemplateDetail> {
    let versions = state.store.prompt_templates(owner.project_id, Some(&key)).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no prompt template with key `{key}` in this project")));
    }
    Ok(TemplateDetail { key, versions: versions.iter().map(TemplateView::from).collect() })
}

/// Publishes the next version of a prompt A/B test.
pub async fn publish_ab_test(
    state: &AppState,
    owner: &KeyOwner,
    body: serde_json::Value,
) -> ApiResult<(StatusCode, AbTestView)> {
    let templates = state.store.prompt_templates(owner.project_id, None).await?;
    let test = AbTestPublish::read(&body, &templates)?;
    let variants = serde_json::to_string(&test.variants).map_err(|_| ApiError::internal())?;
    let stored = state.store.publish_prompt_ab_test(owner.project_id, &test.key, &variants).await?;
    Ok((StatusCode::CREATED, (&stored).into()))
}

/// The latest version of each prompt A/B test.
pub async fn list_ab_tests(state: &AppState, owner: &KeyOwner) -> ApiResult<AbTestList> {
    let tests = state.store.prompt_ab_tests(owner.project_id, None).await?;
    Ok(AbTestList { prompt_ab_tests: tests.iter().map(AbTestView::from).collect() })
}

/// One prompt A/B test with all its versions.
pub async fn ab_test_detail(state: &AppState, owner: &KeyOwner, key: String) -> ApiResult<AbTestDetail> {
    let versions = state.store.prompt_ab_tests(owner.project_id, Some(&key)).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no prompt A/B test with key `{key}` in this project")));
    }
    Ok(AbTestDetail { key, versions: versions.iter().map(AbTestView::from).collect() })
}
