//! Claiming pending samples for the embedding worker, fairly: every prompt with work gets a
//! share of each batch, projects take turns first and their prompts within them, so one
//! project's backlog of 100,000 samples does not hold back another project's new sample.
//! Within a prompt samples are always claimed oldest first (scoring keeps arrival order).

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::{now_ms, Backend, Store, StoreResult};

/// A sample claimed for embedding.
#[derive(Debug, Clone)]
pub struct ClaimedSample {
    pub id: i64,
    pub prompt_id: i64,
    pub response_text: String,
    pub attempts: i64,
}

/// Where the last claim's turn ended, so the next one starts with the following project and,
/// within each project, the following prompt. Kept by the worker, in memory.
#[derive(Debug, Default)]
pub struct ClaimCursor {
    project: i64,
    prompt_of_project: HashMap<i64, i64>,
}

impl ClaimCursor {
    /// How many samples to claim of each prompt: prompts are dealt one slot at a time, one
    /// prompt of each project per round, starting after the cursor, until `limit` slots are
    /// dealt. `with_work` is (project, prompt) pairs, each prompt once.
    fn deal(&mut self, with_work: &[(i64, i64)], limit: usize) -> Vec<(i64, usize)> {
        let mut by_project: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (project, prompt) in with_work {
            by_project.entry(*project).or_default().push(*prompt);
        }
        if by_project.is_empty() || limit == 0 {
            return Vec::new();
        }
        // each project's prompts in turn order: those after its cursor first
        let mut queues: Vec<(i64, Vec<i64>)> = rotate_after(by_project.keys().copied().collect(), self.project)
            .into_iter()
            .map(|project| {
                let mut prompts = by_project.remove(&project).unwrap_or_default();
                prompts.sort_unstable();
                let after = self.prompt_of_project.get(&project).copied().unwrap_or(i64::MIN);
                (project, rotate_after(prompts, after))
            })
            .collect();
        let mut slots: Vec<(i64, usize)> = Vec::new();
        let mut index_of: HashMap<i64, usize> = HashMap::new();
        let mut dealt = 0;
        let mut last_in_first_round = self.project;
        'rounds: for round in 0.. {
            let mut any = false;
            for (project, prompts) in &mut queues {
                // a prompt comes round again once every prompt of its project had a turn
                let Some(prompt) = prompts.get(round % prompts.len()).copied() else { continue };
                any = true;
                let slot = *index_of.entry(prompt).or_insert_with(|| {
                    slots.push((prompt, 0));
                    slots.len() - 1
                });
                slots[slot].1 += 1;
                if round < prompts.len() {
                    self.prompt_of_project.insert(*project, prompt);
                }
                if round == 0 {
                    last_in_first_round = *project;
                }
                dealt += 1;
                if dealt == limit {
                    break 'rounds;
                }
            }
            if !any {
                break;
            }
        }
        self.project = last_in_first_round;
        slots
    }
}

/// `ids` sorted, starting with the first one greater than `after` and wrapping round.
fn rotate_after(mut ids: Vec<i64>, after: i64) -> Vec<i64> {
    ids.sort_unstable();
    let start = ids.partition_point(|id| *id <= after);
    ids.rotate_left(start);
    ids
}

impl Store {
    /// Claims up to `limit` pending samples whose claim is free or expired, shared fairly
    /// between projects and prompts (see [`ClaimCursor`]). On Postgres, `SKIP LOCKED` lets
    /// several replicas claim disjoint batches at once.
    pub async fn claim_pending(
        &self,
        limit: i64,
        claim_ms: i64,
        cursor: &mut ClaimCursor,
    ) -> StoreResult<Vec<ClaimedSample>> {
        let with_work = self.prompts_with_pending_samples().await?;
        let shares = cursor.deal(&with_work, limit.max(0) as usize);
        if shares.is_empty() {
            return Ok(Vec::new());
        }
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // One statement: the oldest claimable samples of each prompt, as many as its share.
        // Numbers only come from the database, so they are written into the SQL directly.
        let parts: Vec<String> = shares
            .iter()
            .enumerate()
            .map(|(i, (prompt_id, share))| {
                format!(
                    "SELECT id FROM (SELECT id FROM samples WHERE prompt_id = {prompt_id} \
                     AND state IN ('pending', 'embedded') AND state = 'pending' \
                     AND (claimed_until IS NULL OR claimed_until < $2) ORDER BY id LIMIT {share} {lock}) c{i}"
                )
            })
            .collect();
        let now = now_ms();
        let sql = format!(
            "UPDATE samples SET claimed_until = $1, attempts = attempts + 1 WHERE id IN ({}) \
             RETURNING id, prompt_id, response_text, attempts",
            parts.join(" UNION ALL ")
        );
        let rows = sqlx::query(&sql).bind(now + claim_ms).bind(now).fetch_all(&self.write).await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(ClaimedSample {
                    id: r.try_get("id")?,
                    prompt_id: r.try_get("prompt_id")?,
                    response_text: r.try_get("response_text")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|s| s.id);
        Ok(claimed)
    }

    /// (project, prompt) of every prompt with pending samples. A loose index scan: one index
    /// probe per prompt, however many samples each has waiting.
    async fn prompts_with_pending_samples(&self) -> StoreResult<Vec<(i64, i64)>> {
        // The IN term repeats the partial index's predicate word for word (SQLite needs that).
        const PENDING: &str = "state IN ('pending', 'embedded') AND state = 'pending'";
        let sql = format!(
            "WITH RECURSIVE heads(prompt_id) AS ( \
                 SELECT MIN(prompt_id) FROM samples WHERE {PENDING} \
                 UNION ALL \
                 SELECT (SELECT MIN(prompt_id) FROM samples WHERE {PENDING} AND prompt_id > heads.prompt_id) \
                 FROM heads WHERE heads.prompt_id IS NOT NULL) \
             SELECT p.project_id, p.id FROM heads JOIN prompts p ON p.id = heads.prompt_id"
        );
        // from a reader: it is only where to look, the claim itself re-checks every row, and on
        // SQLite it then does not wait behind ingest for the one writer connection
        let rows = sqlx::query(&sql).fetch_all(&self.read).await?;
        Ok(rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?)
    }

    /// Lets a sample whose embedding failed be claimed again after `retry_in_ms` (it failed
    /// alone: the rest of its batch was embedded without it).
    pub async fn release_claim(&self, id: i64, retry_in_ms: i64) -> StoreResult<()> {
        sqlx::query("UPDATE samples SET claimed_until = $1 WHERE id = $2 AND state = 'pending'")
            .bind(now_ms() + retry_in_ms)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(slots: &[(i64, usize)]) -> usize {
        slots.iter().map(|(_, n)| n).sum()
    }

    #[test]
    fn one_prompt_takes_the_whole_batch() {
        let mut cursor = ClaimCursor::default();
        assert_eq!(cursor.deal(&[(1, 10)], 64), vec![(10, 64)]);
    }

    #[test]
    fn a_small_project_gets_half_the_batch_beside_a_project_with_many_prompts() {
        let mut with_work: Vec<(i64, i64)> = (100..1100).map(|prompt| (1, prompt)).collect();
        with_work.push((2, 5000));
        let mut cursor = ClaimCursor::default();
        let slots = cursor.deal(&with_work, 64);
        assert_eq!(total(&slots), 64);
        assert_eq!(slots.iter().find(|(p, _)| *p == 5000).map(|(_, n)| *n), Some(32));
        // the big project's prompts take turns from one claim to the next
        let first: Vec<i64> = slots.iter().map(|(p, _)| *p).filter(|p| *p < 5000).collect();
        let again = cursor.deal(&with_work, 64);
        let second: Vec<i64> = again.iter().map(|(p, _)| *p).filter(|p| *p < 5000).collect();
        assert_eq!(first.len(), 32);
        assert!(second.iter().all(|p| !first.contains(p)), "{first:?} then {second:?}");
    }

    #[test]
    fn projects_take_turns_when_there_are_more_than_the_batch() {
        let with_work: Vec<(i64, i64)> = (1..=10).map(|project| (project, project * 100)).collect();
        let mut cursor = ClaimCursor::default();
        let first = cursor.deal(&with_work, 4);
        let second = cursor.deal(&with_work, 4);
        assert_eq!(first.iter().map(|s| s.0).collect::<Vec<_>>(), vec![100, 200, 300, 400]);
        assert_eq!(second.iter().map(|s| s.0).collect::<Vec<_>>(), vec![500, 600, 700, 800]);
    }
}
