//! Prompt templates and prompt A/B tests for the Fallom SDK's `prompts` module. Both are keys
//! with immutable numbered versions; publishing picks the next number in the same statement.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, Store, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct PromptTemplateRow {
    pub key: String,
    pub version: i64,
    pub system_prompt: String,
    pub user_template: String,
    pub created_at: i64,
}

/// `variants` is validated JSON text: `[{"prompt_key", "prompt_version"?, "weight"}]`.
#[derive(Debug, Clone)]
pub struct PromptAbTestRow {
    pub key: String,
    pub version: i64,
    pub variants: String,
    pub created_at: i64,
}

/// Two publishers of one key can pick the same next number; the primary key turns the loser
/// into a unique violation, and it simply tries again with the new maximum. Each lost try
/// means another publisher's version committed, so a publisher loses at most once per
/// concurrent publisher: 5 tries gave a 500 with 12 at once on Postgres. 64 covers any
/// realistic burst of publishes to one key.
const PUBLISH_ATTEMPTS: usize = 64;

/// Runs one "insert the next version" statement, again if a concurrent publisher took the number.
async fn with_publish_retries<F, Fut>(mut attempt: F) -> StoreResult<AnyRow>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<AnyRow, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await.map_err(StoreError::from) {
            Err(StoreError::Conflict(_)) if tries < PUBLISH_ATTEMPTS => continue,
            other => return other,
        }
    }
}

fn template_from_row(r: &AnyRow) -> StoreResult<PromptTemplateRow> {
    Ok(PromptTemplateRow {
        key: r.try_get("key")?,
        version: r.try_get("version")?,
        system_prompt: r.try_get("system_prompt")?,
        user_template: r.try_get("user_template")?,
        created_at: r.try_get("created_at")?,
    })
}

fn ab_test_from_row(r: &AnyRow) -> StoreResult<PromptAbTestRow> {
    Ok(PromptAbTestRow {
        key: r.try_get("key")?,
        version: r.try_get("version")?,
        variants: r.try_get("variants")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    pub async fn publish_prompt_template(
        &self,
        project_id: i64,
        key: &str,
        system_prompt: &str,
        user_template: &str,
    ) -> StoreResult<PromptTemplateRow> {
        let now = now_ms();
        let row = with_publish_retries(|| {
            sqlx::query(
                "INSERT INTO prompt_templates (project_id, key, version, system_prompt, user_template, created_at) \
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5 FROM prompt_templates \
                 WHERE project_id = $1 AND key = $2 \
                 RETURNING key, version, system_prompt, user_template, created_at",
            )
            .bind(project_id)
            .bind(key)
            .bind(system_prompt)
            .bind(user_template)
            .bind(now)
            .fetch_one(&self.write)
        })
        .await?;
        template_from_row(&row)
    }

    pub async fn publish_prompt_ab_test(
        &self,
        project_id: i64,
        key: &str,
        variants: &str,
    ) -> StoreResult<PromptAbTestRow> {
        let now = now_ms();
        let row = with_publish_retries(|| {
            sqlx::query(
                "INSERT INTO prompt_ab_tests (project_id, key, version, variants, created_at) \
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4 FROM prompt_ab_tests \
                 WHERE project_id = $1 AND key = $2 \
                 RETURNING key, version, variants, created_at",
            )
            .bind(project_id)
            .bind(key)
            .bind(variants)
            .bind(now)
            .fetch_one(&self.write)
        })
        .await?;
        ab_test_from_row(&row)
    }

    /// Every version of every template (or of one key), ordered by key then version: the SDK
    /// keeps the last version it reads per key as the current one, and needs older versions
    /// for A/B variants pinned to them.
    pub async fn prompt_templates(&self, project_id: i64, key: Option<&str>) -> StoreResult<Vec<PromptTemplateRow>> {
        let rows = sqlx::query(
            "SELECT key, version, system_prompt, user_template, created_at FROM prompt_templates \
             WHERE project_id = $1 AND ($2 IS NULL OR key = $2) ORDER BY key, version",
        )
        .bind(project_id)
        .bind(key)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    /// The latest version of every prompt A/B test (or every version of one key), by key.
    pub async fn prompt_ab_tests(&self, project_id: i64, key: Option<&str>) -> StoreResult<Vec<PromptAbTestRow>> {
        let rows = match key {
            Some(key) => {
                sqlx::query(
                    "SELECT key, version, variants, created_at FROM prompt_ab_tests \
                     WHERE project_id = $1 AND key = $2 ORDER BY version",
                )
                .bind(project_id)
                .bind(key)
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT t.key, t.version, t.variants, t.created_at FROM prompt_ab_tests t \
                     WHERE t.project_id = $1 AND t.version = \
                       (SELECT MAX(version) FROM prompt_ab_tests WHERE project_id = t.project_id AND key = t.key) \
                     ORDER BY t.key",
                )
                .bind(project_id)
                .fetch_all(&self.read)
                .await?
            }
        };
        rows.iter().map(ab_test_from_row).collect()
    }
}
