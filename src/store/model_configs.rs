//! Model A/B configs: a config is a key with immutable numbered versions; the SDK assigns a
//! model per session itself and reports each assignment, which is stored once per config,
//! version and session with a repeat count.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, Store, StoreResult};

/// One published version of a config. `variants` and `targeting` are JSON text, validated
/// before they were stored.
#[derive(Debug, Clone)]
pub struct ModelConfigVersion {
    pub key: String,
    pub version: i64,
    pub variants: String,
    pub targeting: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ModelConfigRow {
    pub key: String,
    pub latest_version: i64,
    pub archived_at: Option<i64>,
    pub created_at: i64,
}

pub struct SessionAssignment<'a> {
    pub config_key: &'a str,
    pub config_version: i64,
    pub session_id: &'a str,
    pub assigned_model: &'a str,
}

const VERSION_COLUMNS: &str = "c.key, v.version, v.variants, v.targeting, v.created_at";

fn version_from_row(r: &AnyRow) -> StoreResult<ModelConfigVersion> {
    Ok(ModelConfigVersion {
        key: r.try_get("key")?,
        version: r.try_get("version")?,
        variants: r.try_get("variants")?,
        targeting: r.try_get("targeting")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Creates the config or publishes its next version (which also un-archives it).
    pub async fn publish_model_config(
        &self,
        project_id: i64,
        key: &str,
        variants: &str,
        targeting: Option<&str>,
    ) -> StoreResult<ModelConfigVersion> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO model_configs (project_id, key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, key) DO NOTHING",
        )
        .bind(project_id)
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The UPDATE row-locks the config on Postgres, so concurrent publishers of one key
        // queue here and each then reads the other's committed version number.
        let config_id: i64 =
            sqlx::query("UPDATE model_configs SET archived_at = NULL WHERE project_id = $1 AND key = $2 RETURNING id")
                .bind(project_id)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
        let version: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 AS next_version FROM model_config_versions WHERE config_id = $1",
        )
        .bind(config_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("next_version")?;
        sqlx::query(
            "INSERT INTO model_config_versions (config_id, version, variants, targeting, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(config_id)
        .bind(version)
        .bind(variants)
        .bind(targeting)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ModelConfigVersion {
            key: key.to_string(),
            version,
            variants: variants.to_string(),
            targeting: targeting.map(str::to_string),
            created_at: now,
        })
    }

    /// The latest version of every config that is not archived, by key.
    pub async fn latest_model_configs(&self, project_id: i64) -> StoreResult<Vec<ModelConfigVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM model_configs c \
             JOIN model_config_versions v ON v.config_id = c.id \
             WHERE c.project_id = $1 AND c.archived_at IS NULL \
               AND v.version = (SELECT MAX(version) FROM model_config_versions WHERE config_id = c.id) \
             ORDER BY c.key"
        );
        let rows = sqlx::query(&sql).bind(project_id).fetch_all(&self.read).await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Every version of one config, oldest first (archived configs included: pinned versions
    /// keep working).
    pub async fn model_config_versions(&self, project_id: i64, key: &str) -> StoreResult<Vec<ModelConfigVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM model_configs c JOIN model_config_versions v ON v.config_id = c.id \
             WHERE c.project_id = $1 AND c.key = $2 ORDER BY v.version"
        );
        let rows = sqlx::query(&sql).bind(project_id).bind(key).fetch_all(&self.read).await?;
        rows.iter().map(version_from_row).collect()
    }

    pub async fn model_config_version(
        &self,
        project_id: i64,
        key: &str,
        version: i64,
    ) -> StoreResult<Option<ModelConfigVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM model_configs c JOIN model_config_versions v ON v.config_id = c.id \
             WHERE c.project_id = $1 AND c.key = $2 AND v.version = $3"
        );
        let row = sqlx::query(&sql).bind(project_id).bind(key).bind(version).fetch_optional(&self.read).await?;
        row.as_ref().map(version_from_row).transpose()
    }

    /// The project's configs, or only the one with `key`.
    pub async fn model_configs(&self, project_id: i64, key: Option<&str>) -> StoreResult<Vec<ModelConfigRow>> {
        let rows = sqlx::query(
            "SELECT c.key, (SELECT MAX(version) FROM model_config_versions WHERE config_id = c.id) AS latest_version, \
                    c.archived_at, c.created_at \
             FROM model_configs c WHERE c.project_id = $1 AND ($2 IS NULL OR c.key = $2) ORDER BY c.key",
        )
        .bind(project_id)
        .bind(key)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ModelConfigRow {
                    key: r.try_get("key")?,
                    latest_version: r.try_get("latest_version")?,
                    archived_at: r.try_get("archived_at")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Hides the config from `GET /configs`; its versions stay readable. False if no such key.
    pub async fn archive_model_config(&self, project_id: i64, key: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE model_configs SET archived_at = COALESCE(archived_at, $3) WHERE project_id = $1 AND key = $2",
        )
        .bind(project_id)
        .bind(key)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores the assignment the first time; a repeat only bumps its count and last-seen time.
    pub async fn record_session(&self, project_id: i64, a: &SessionAssignment<'_>) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO model_sessions (project_id, config_key, config_version, session_id, assigned_model, \
                                         seen_count, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7) \
             ON CONFLICT (project_id, config_key, config_version, session_id) DO UPDATE \
             SET seen_count = model_sessions.seen_count + 1, last_seen_at = excluded.last_seen_at",
        )
        .bind(project_id)
        .bind(a.config_key)
        .bind(a.config_version)
        .bind(a.session_id)
        .bind(a.assigned_model)
        .bind(now)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
