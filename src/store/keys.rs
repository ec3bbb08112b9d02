//! Projects and API keys. Keys are stored only as a SHA-256 hash plus a short display prefix.

use sqlx::Row;

use super::{get_bool, get_enum, now_ms, Store, StoreResult};
use crate::domain::KeyScope;

/// Who a valid key belongs to.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub project_id: i64,
    /// The project's privacy setting: when false, request/response content is dropped from
    /// stored spans (read with the key so trace ingest needs no extra query).
    pub capture_content: bool,
    pub scope: KeyScope,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub prefix: String,
    pub scope: KeyScope,
    pub project_name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Returns the project's id, creating the project if it does not exist yet.
    pub async fn ensure_project(&self, name: &str) -> StoreResult<i64> {
        sqlx::query("INSERT INTO projects (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(now_ms())
            .execute(&self.write)
            .await?;
        Ok(sqlx::query("SELECT id FROM projects WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?
            .try_get("id")?)
    }

    /// Stores a new key; the row as listed.
    pub async fn insert_api_key(
        &self,
        project_id: i64,
        prefix: &str,
        key_hash: &str,
        scope: KeyScope,
    ) -> StoreResult<ApiKeyRow> {
        let created_at = now_ms();
        sqlx::query(
            "INSERT INTO api_keys (project_id, prefix, key_hash, created_at, scope) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project_id)
        .bind(prefix)
        .bind(key_hash)
        .bind(created_at)
        .bind(scope.as_str())
        .execute(&self.write)
        .await?;
        Ok(ApiKeyRow { prefix: prefix.to_string(), scope, project_name: String::new(), created_at, revoked_at: None })
    }

    /// The owner of an active (not revoked) key with this hash.
    pub async fn find_active_key(&self, key_hash: &str) -> StoreResult<Option<KeyOwner>> {
        let row = sqlx::query(
            "SELECT k.project_id, k.scope, p.capture_content FROM api_keys k JOIN projects p ON p.id = k.project_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(KeyOwner {
                project_id: r.try_get("project_id")?,
                capture_content: get_bool(&r, "capture_content")?,
                scope: get_enum(&r, "scope")?,
            })
        })
        .transpose()
    }

    /// The project's name and privacy setting.
    pub async fn project_settings(&self, project_id: i64) -> StoreResult<(String, bool)> {
        let row = sqlx::query("SELECT name, capture_content FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&self.read)
            .await?;
        Ok((row.try_get("name")?, get_bool(&row, "capture_content")?))
    }

    pub async fn set_capture_content(&self, project_id: i64, capture: bool) -> StoreResult<()> {
        sqlx::query("UPDATE projects SET capture_content = $1 WHERE id = $2")
            .bind(capture as i64)
            .bind(project_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn count_api_keys(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM api_keys").fetch_one(&self.read).await?.try_get("n")?)
    }

    pub async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT k.prefix, k.scope, p.name AS project_name, k.created_at, k.revoked_at FROM api_keys k \
             JOIN projects p ON p.id = k.project_id ORDER BY k.id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(key_row).collect()
    }

    /// A project's keys, oldest first.
    pub async fn project_api_keys(&self, project_id: i64) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT k.prefix, k.scope, p.name AS project_name, k.created_at, k.revoked_at FROM api_keys k \
             JOIN projects p ON p.id = k.project_id WHERE k.project_id = $1 ORDER BY k.id",
        )
        .bind(project_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(key_row).collect()
    }

    /// Revokes the project's active key with this prefix; the key as revoked, if there was one.
    pub async fn revoke_project_key(&self, project_id: i64, prefix: &str) -> StoreResult<Option<ApiKeyRow>> {
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE project_id = $2 AND prefix = $3 AND revoked_at IS NULL \
             RETURNING prefix, scope, '' AS project_name, created_at, revoked_at",
        )
        .bind(now_ms())
        .bind(project_id)
        .bind(prefix)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(key_row).transpose()
    }

    /// Revokes the active key shown as `prefix` by `keys list` (or whose full text hashes to
    /// `key_hash`); returns how many keys were revoked.
    pub async fn revoke_api_keys(&self, prefix: &str, key_hash: &str) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE revoked_at IS NULL AND (prefix = $2 OR key_hash = $3)",
        )
        .bind(now_ms())
        .bind(prefix)
        .bind(key_hash)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

fn key_row(r: &sqlx::any::AnyRow) -> StoreResult<ApiKeyRow> {
    Ok(ApiKeyRow {
        prefix: r.try_get("prefix")?,
        scope: get_enum(r, "scope")?,
        project_name: r.try_get("project_name")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}
