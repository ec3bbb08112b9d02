//! What overload sampling reads and writes (the policy is `worker::sampling`): each prompt's
//! backlog, split at the prompt's `sampled_through` mark into samples already decided on and
//! new arrivals, and the thinning of new arrivals to a subsample.

use sqlx::Row;

use super::{now_ms, Store, StoreResult};

/// The samples of one prompt still waiting for the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptBacklog {
    pub prompt_id: i64,
    /// Samples at or below this id that still wait were kept by a thinning pass.
    pub sampled_through: i64,
    /// Waiting samples that are claimed, embedded, or at or below `sampled_through`: queued
    /// for scoring whatever happens.
    pub queued: i64,
    /// Pending, unclaimed samples above `sampled_through`: not decided on yet.
    pub undecided: i64,
    pub sampling_rate: f64,
}

/// Waiting samples not yet decided on: pending, unclaimed (or claim expired), above the mark.
/// The `state IN` term repeats the partial index's predicate word for word (SQLite needs that).
const UNDECIDED: &str = "s.state IN ('pending', 'embedded') AND s.state = 'pending' \
     AND s.id > p.sampled_through AND (s.claimed_until IS NULL OR s.claimed_until < $1)";

/// Ids per `UPDATE ... WHERE id IN (...)`, well under either backend's limit on parameters.
const IDS_PER_STATEMENT: usize = 500;

impl Store {
    /// Every prompt with samples waiting for the worker, with its backlog split as
    /// [`PromptBacklog`] describes. Reads the waiting samples only (the `samples_unscored`
    /// index), which sampling keeps short.
    pub async fn backlogs(&self) -> StoreResult<Vec<PromptBacklog>> {
        let sql = format!(
            "SELECT s.prompt_id, p.sampled_through, p.sampling_rate, COUNT(*) AS waiting, \
                 SUM(CASE WHEN {UNDECIDED} THEN 1 ELSE 0 END) AS undecided \
             FROM samples s JOIN prompts p ON p.id = s.prompt_id \
             WHERE s.state IN ('pending', 'embedded') \
             GROUP BY s.prompt_id, p.sampled_through, p.sampling_rate"
        );
        let rows = sqlx::query(&sql).bind(now_ms()).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                let waiting: i64 = r.try_get("waiting")?;
                let undecided: i64 = r.try_get("undecided")?;
                Ok(PromptBacklog {
                    prompt_id: r.try_get("prompt_id")?,
                    sampled_through: r.try_get("sampled_through")?,
                    queued: waiting - undecided,
                    undecided,
                    sampling_rate: r.try_get("sampling_rate")?,
                })
            })
            .collect()
    }

    /// The ids of a prompt's undecided samples (see [`PromptBacklog::undecided`]), oldest first.
    pub async fn undecided_samples(&self, prompt_id: i64, sampled_through: i64) -> StoreResult<Vec<i64>> {
        let sql = format!(
            "SELECT s.id FROM samples s JOIN prompts p ON p.id = s.prompt_id \
             WHERE s.prompt_id = $2 AND p.sampled_through = $3 AND {UNDECIDED} ORDER BY s.id"
        );
        let rows = sqlx::query(&sql).bind(now_ms()).bind(prompt_id).bind(sampled_through).fetch_all(&self.read).await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, sqlx::Error>>()?)
    }

    /// Decides a prompt's samples up to `through`: those in `skip` become `skipped`, the rest
    /// stay queued; the mark moves from `from` to `through` and the prompt's sampling rate is
    /// set to `rate`, in one transaction. Returns how many were skipped, or None when the mark
    /// was no longer `from` (another replica decided these samples first: nothing is changed).
    pub async fn thin_backlog(
        &self,
        prompt_id: i64,
        from: i64,
        through: i64,
        skip: &[i64],
        rate: f64,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE prompts SET sampled_through = $1, sampling_rate = $2 WHERE id = $3 AND sampled_through = $4",
        )
        .bind(through)
        .bind(rate)
        .bind(prompt_id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(None);
        }
        let now = now_ms();
        let mut skipped = 0;
        for ids in skip.chunks(IDS_PER_STATEMENT) {
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            // a sample claimed since it was listed goes on to be scored
            let sql = format!(
                "UPDATE samples SET state = 'skipped', processed_at = $1 \
                 WHERE id IN ({list}) AND prompt_id = $2 AND state = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until < $1)"
            );
            skipped += sqlx::query(&sql).bind(now).bind(prompt_id).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(Some(skipped))
    }

    /// The prompts whose sampling rate is below 1.
    pub async fn prompts_sampled_below_full(&self) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM prompts WHERE sampling_rate < 1").fetch_all(&self.read).await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, sqlx::Error>>()?)
    }

    /// Sets a prompt's reported sampling rate (back to 1 when the load has dropped).
    pub async fn set_sampling_rate(&self, prompt_id: i64, rate: f64) -> StoreResult<()> {
        sqlx::query("UPDATE prompts SET sampling_rate = $1 WHERE id = $2")
            .bind(rate)
            .bind(prompt_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
