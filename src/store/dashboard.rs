//! Reads only the dashboard needs: the prompts overview (filtered, sorted and paged in SQL, so a
//! project with thousands of prompts costs one page), the recent scores behind its sparklines,
//! and the scored samples behind a prompt's chart. Every query here is bounded by a LIMIT.

use sqlx::Row;

use super::drift_events::EVENT_COLUMNS;
use super::prompts::PROMPT_COLUMNS;
use super::samples::newest_of_each_version;
use super::{get_enum, DriftEventRow, PromptConfigRow, PromptRow, Store, StoreResult};
use crate::domain::PromptVersion;

/// What the overview shows a prompt as: drifted wins over the baseline's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverviewStatus {
    Learning,
    Ready,
    Drifted,
}

impl OverviewStatus {
    pub const ALL: &'static [OverviewStatus] = &[Self::Drifted, Self::Learning, Self::Ready];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Learning => "learning",
            Self::Ready => "ready",
            Self::Drifted => "drifted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// The SQL condition selecting prompts shown with this status (tables `p` and `b`).
    fn condition(self) -> &'static str {
        match self {
            Self::Drifted => "p.status = 'drifted'",
            Self::Learning => "p.status <> 'drifted' AND COALESCE(b.status, 'learning') = 'learning'",
            Self::Ready => "p.status <> 'drifted' AND b.status = 'ready'",
        }
    }
}

/// The overview's sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverviewSort {
    Name,
    Status,
    Semantic,
    Length,
}

impl OverviewSort {
    pub const ALL: &'static [OverviewSort] = &[Self::Name, Self::Status, Self::Semantic, Self::Length];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Status => "status",
            Self::Semantic => "semantic",
            Self::Length => "length",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// The ORDER BY expression; prompts without a score sort last either way.
    fn order_by(self, descending: bool) -> String {
        let dir = if descending { "DESC" } else { "ASC" };
        match self {
            Self::Name => format!("p.name {dir}"),
            Self::Status => format!(
                "CASE WHEN p.status = 'drifted' THEN 0 WHEN COALESCE(b.status, 'learning') = 'learning' THEN 1 \
                 ELSE 2 END {dir}, p.name"
            ),
            Self::Semantic => format!("(b.semantic_score IS NULL), b.semantic_score {dir}, p.name"),
            // the size of a length score is what matters (negative = shorter)
            Self::Length => format!("(b.length_score IS NULL), ABS(b.length_score) {dir}, p.name"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OverviewQuery {
    /// Part of the name, matched case-insensitively.
    pub search: String,
    pub status: Option<OverviewStatus>,
    pub sort: OverviewSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// A prompt as the overview lists it: its config and the active version's latest scores.
#[derive(Debug, Clone)]
pub struct OverviewRow {
    pub config: PromptConfigRow,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
}

impl OverviewRow {
    pub fn status(&self) -> OverviewStatus {
        use crate::domain::{BaselineStatus, PromptStatus};
        match (self.config.prompt.status, self.config.baseline_status) {
            (PromptStatus::Drifted, _) => OverviewStatus::Drifted,
            (_, BaselineStatus::Learning) => OverviewStatus::Learning,
            (_, BaselineStatus::Ready) => OverviewStatus::Ready,
        }
    }
}

/// One scored sample as a chart plots it.
#[derive(Debug, Clone)]
pub struct ScorePoint {
    pub sample_id: i64,
    pub received_at: i64,
    pub version: PromptVersion,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    pub distribution_score: Option<f64>,
    pub refusal_rate: Option<f64>,
}

/// `LIKE` pattern for "contains `text`", with the wildcard characters of `text` escaped.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// A page of the project's prompts and how many match the filter in all.
    pub async fn prompt_overview(&self, project_id: i64, q: &OverviewQuery) -> StoreResult<(Vec<OverviewRow>, i64)> {
        let mut filter = String::from("p.project_id = $1 AND ($2 = '%%' OR LOWER(p.name) LIKE $2 ESCAPE '\\')");
        if let Some(status) = q.status {
            filter.push_str(" AND ");
            filter.push_str(status.condition());
        }
        let from = "FROM prompts p LEFT JOIN prompt_baselines b ON b.prompt_id = p.id AND b.version = p.active_prompt";
        let pattern = contains_pattern(q.search.trim());
        let sql = format!(
            "SELECT {PROMPT_COLUMNS}, COALESCE(b.status, 'learning') AS baseline_status, \
                    COALESCE(b.sample_count, 0) AS baseline_sample_count, b.semantic_score, b.length_score \
             {from} WHERE {filter} ORDER BY {} LIMIT $3 OFFSET $4",
            q.sort.order_by(q.descending)
        );
        let count_sql = format!("SELECT COUNT(*) AS n {from} WHERE {filter}");
        let rows = sqlx::query(&sql)
            .bind(project_id)
            .bind(&pattern)
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.read)
            .await?;
        let total: i64 =
            sqlx::query(&count_sql).bind(project_id).bind(&pattern).fetch_one(&self.read).await?.try_get("n")?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(OverviewRow {
                    config: PromptConfigRow {
                        prompt: PromptRow::from_row(r)?,
                        baseline_status: get_enum(r, "baseline_status")?,
                        baseline_sample_count: r.try_get("baseline_sample_count")?,
                    },
                    semantic_score: r.try_get("semantic_score")?,
                    length_score: r.try_get("length_score")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((rows, total))
    }

    /// The latest drift event of each of `prompt_ids` (one page of the overview).
    pub async fn latest_drift_events_of(&self, prompt_ids: &[i64]) -> StoreResult<Vec<DriftEventRow>> {
        if prompt_ids.is_empty() {
            return Ok(Vec::new());
        }
        // ids are integers from our own rows, so listing them inline is safe
        let ids = prompt_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM drift_events WHERE id IN \
             (SELECT MAX(id) FROM drift_events WHERE prompt_id IN ({ids}) GROUP BY prompt_id)"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.read).await?;
        rows.iter().map(DriftEventRow::from_row).collect()
    }

    /// The newest `limit` semantic scores of a prompt (either version), oldest first: a
    /// sparkline keeps showing the drift after an auto-switch made the other version active.
    pub async fn recent_scores(&self, prompt_id: i64, limit: i64) -> StoreResult<Vec<f64>> {
        let per_version = "SELECT id, semantic_score FROM samples WHERE prompt_id = $1 AND prompt_version = '{v}' \
             AND semantic_score IS NOT NULL ORDER BY id DESC LIMIT $2";
        let rows = sqlx::query(&newest_of_each_version(per_version, "$2"))
            .bind(prompt_id)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        let mut scores = rows.iter().map(|r| r.try_get("semantic_score")).collect::<Result<Vec<f64>, _>>()?;
        scores.reverse();
        Ok(scores)
    }

    /// The newest `limit` scored samples of a prompt (both versions), oldest first.
    pub async fn score_history(&self, prompt_id: i64, limit: i64) -> StoreResult<Vec<ScorePoint>> {
        // One index range per version (prompt_id, prompt_version, id), merged: ordering the
        // whole prompt by id would sort every sample it ever had.
        let per_version = "SELECT id, received_at, prompt_version, semantic_score, length_score, distribution_score, \
                    refusal_rate FROM samples \
             WHERE prompt_id = $1 AND prompt_version = '{v}' \
               AND (semantic_score IS NOT NULL OR length_score IS NOT NULL OR refusal_rate IS NOT NULL) \
             ORDER BY id DESC LIMIT $2";
        let rows = sqlx::query(&newest_of_each_version(per_version, "$2"))
            .bind(prompt_id)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        let mut points = rows
            .iter()
            .map(|r| {
                Ok(ScorePoint {
                    sample_id: r.try_get("id")?,
                    received_at: r.try_get("received_at")?,
                    version: get_enum(r, "prompt_version")?,
                    semantic_score: r.try_get("semantic_score")?,
                    length_score: r.try_get("length_score")?,
                    distribution_score: r.try_get("distribution_score")?,
                    refusal_rate: r.try_get("refusal_rate")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        points.reverse();
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_matched_literally() {
        assert_eq!(contains_pattern("Bot"), "%bot%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn names_round_trip() {
        for s in OverviewSort::ALL {
            assert_eq!(OverviewSort::parse(s.as_str()), Some(*s));
        }
        for s in OverviewStatus::ALL {
            assert_eq!(OverviewStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(OverviewSort::parse("drop table"), None);
    }
}
