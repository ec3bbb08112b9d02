//! Dashboard sessions: an API key exchanged for a cookie. Only the SHA-256 of the session
//! token is stored; a session is valid while it has not expired and its key is not revoked.

use sqlx::Row;

use super::{get_bool, now_ms, Store, StoreResult};

/// A signed-in dashboard session.
#[derive(Debug, Clone)]
pub struct UiSession {
    pub project_id: i64,
    pub project_name: String,
    pub capture_content: bool,
    pub csrf_token: String,
}

impl Store {
    pub async fn create_ui_session(
        &self,
        token_hash: &str,
        key_hash: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let now = now_ms();
        // Expired sessions are swept on sign-in, so the table stays small without a timer.
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at < $1").bind(now).execute(&self.write).await?;
        sqlx::query(
            "INSERT INTO ui_sessions (token_hash, key_hash, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(key_hash)
        .bind(csrf_token)
        .bind(now)
        .bind(expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The live session with this token hash (not expired, key not revoked).
    pub async fn ui_session(&self, token_hash: &str) -> StoreResult<Option<UiSession>> {
        let row = sqlx::query(
            "SELECT k.project_id, p.name, p.capture_content, s.csrf_token FROM ui_sessions s \
             JOIN api_keys k ON k.key_hash = s.key_hash JOIN projects p ON p.id = k.project_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(UiSession {
                project_id: r.try_get("project_id")?,
                project_name: r.try_get("name")?,
                capture_content: get_bool(&r, "capture_content")?,
                csrf_token: r.try_get("csrf_token")?,
            })
        })
        .transpose()
    }

    pub async fn delete_ui_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE token_hash = $1").bind(token_hash).execute(&self.write).await?;
        Ok(())
    }
}
