//! What the embedding worker writes: a batch's vectors and, in the same transaction, the
//! scoring of each prompt the batch touched (under a savepoint per prompt), in arrival order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Any, Row, Transaction};
use tokio::sync::Notify;

use super::alerts::{enabled_channels, queue_alert, AlertChannelRow};
use super::prompts::{PromptRow, PROMPT_COLUMNS};
use super::{get_bool, get_enum, now_ms, Backend, Params, Store, StoreResult};
use crate::domain::{AlertEventType, BaselineStatus, DriftKind, PromptStatus, PromptVersion, SampleState};

/// A sample waiting to be scored, in arrival order. `vector` is None while it still waits for
/// its embedding (then everything after it waits too).
pub struct UnscoredSample {
    pub id: i64,
    pub version: PromptVersion,
    pub vector: Option<Vec<f32>>,
    pub model_id: Option<String>,
    pub response_length: i64,
    /// The response, for the refusal recogniser.
    pub response_text: String,
}

/// A baseline as stored: the engine's state (binary, or JSON from before binary states) plus
/// the model its vectors came from.
pub struct StoredBaseline {
    pub state: Vec<u8>,
    pub model_id: Option<String>,
}

pub struct BaselineUpdate<'a> {
    pub version: PromptVersion,
    pub status: BaselineStatus,
    pub sample_count: i64,
    pub model_id: Option<&'a str>,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    pub distribution_score: Option<f64>,
    pub refusal_rate: Option<f64>,
    pub reference_refusal_rate: Option<f64>,
    /// The engine's state in its binary form.
    pub state: Vec<u8>,
}

pub struct NewDriftEvent {
    pub version: PromptVersion,
    pub kind: DriftKind,
    pub score: f64,
    pub threshold: f64,
    pub window_size: i64,
    pub sample_id: i64,
    pub switched_to: Option<PromptVersion>,
    /// The engine's explanation of what changed (JSON).
    pub explanation: Option<String>,
}

/// A scored sample, as an explanation quotes it.
pub struct ExplainedSample {
    pub id: i64,
    pub text: String,
    /// Its similarity to the centroid when it was scored (None for learning samples).
    pub similarity: Option<f64>,
    pub vector: Option<Vec<f32>>,
}

/// Which samples an explanation quotes.
#[derive(Debug, Clone, Copy)]
pub enum ExplainedSet {
    /// Scored against the baseline: the recent window.
    Window,
    /// The samples the current baseline learnt from.
    Learnt,
}

/// The project a scored prompt belongs to.
#[derive(Clone)]
pub struct ProjectInfo {
    pub name: String,
    pub capture_content: bool,
}

pub fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn vector_from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Store {
    /// Gives up on a sample that could not be embedded; it no longer holds up its prompt.
    pub async fn mark_failed(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE samples SET state = 'failed', error = $1, processed_at = $2 WHERE id = $3 AND state = 'pending'",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Starts a write transaction in which the worker stores a batch's vectors and scores the
    /// prompts it touched, each under a savepoint ([`ScoringGroup::begin_prompt`]): one commit
    /// for the batch instead of one per prompt, which on SQLite's one writer is the worker's
    /// main cost to ingest.
    pub async fn begin_scoring_group(&self) -> StoreResult<ScoringGroup> {
        Ok(ScoringGroup {
            tx: self.begin_write().await?,
            started: Instant::now(),
            outbox: self.outbox.clone(),
            kept: Kept::default(),
        })
    }
}

/// A worker write transaction: a batch's vectors and the scoring of its prompts.
pub struct ScoringGroup {
    tx: Transaction<'static, Any>,
    started: Instant,
    outbox: Arc<Notify>,
    kept: Kept,
}

/// What the prompts' kept savepoints did that matters once the group commits.
#[derive(Default)]
struct Kept {
    alerts_queued: bool,
    /// Kinds of the drift events written, counted on /metrics.
    drift_events: Vec<DriftKind>,
}

impl ScoringGroup {
    /// How long this transaction has held the writer.
    pub fn held(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stores vectors of claimed samples; a sample someone else already finished is left alone.
    /// One statement per [`ROWS_PER_UPDATE`] samples.
    pub async fn store_embeddings(&mut self, vectors: &[(i64, Vec<f32>)], model_id: &str) -> StoreResult<()> {
        let backend = Backend::of(&self.tx);
        for chunk in vectors.chunks(ROWS_PER_UPDATE) {
            let mut params = Params::new(backend);
            let cases = params.case_by_id(chunk.len());
            let sql = format!(
                "UPDATE samples SET embedding = {cases}, model_id = {}, state = 'embedded', claimed_until = NULL \
                 WHERE id IN ({}) AND state = 'pending'",
                params.next(),
                params.list(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for (id, vector) in chunk {
                query = query.bind(*id).bind(vector_to_bytes(vector));
            }
            query = query.bind(model_id);
            for (id, _) in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Starts scoring one prompt under a savepoint: [`ScoringTx::commit`] keeps its writes in
    /// this transaction, dropping it (on an error) undoes them alone. Holds the prompt's row
    /// lock until this transaction commits, so two workers never interleave one prompt's
    /// samples; on Postgres a lock that does not block ingest's foreign-key checks.
    pub async fn begin_prompt(&mut self, prompt_id: i64) -> StoreResult<Option<ScoringTx<'_>>> {
        let lock = match Backend::of(&self.tx) {
            Backend::Postgres => "FOR NO KEY UPDATE",
            Backend::Sqlite => "",
        };
        let ScoringGroup { tx, kept, .. } = self;
        let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
        let sql = format!("SELECT {PROMPT_COLUMNS} FROM prompts p WHERE p.id = $1 {lock}");
        let Some(row) = sqlx::query(&sql).bind(prompt_id).fetch_optional(&mut *savepoint).await? else {
            return Ok(None);
        };
        let prompt = PromptRow::from_row(&row)?;
        Ok(Some(ScoringTx {
            tx: savepoint,
            prompt,
            channels: None,
            project: None,
            group: kept,
            kept: Kept::default(),
            finished: Vec::new(),
        }))
    }

    /// Commits, then wakes the alert dispatcher if alerts were queued.
    pub async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        if self.kept.alerts_queued {
            self.outbox.notify_one();
        }
        for kind in self.kept.drift_events {
            crate::observe::drift_event(kind.as_str());
        }
        Ok(())
    }
}

/// One prompt's scoring, under a savepoint of its [`ScoringGroup`].
pub struct ScoringTx<'g> {
    tx: Transaction<'g, Any>,
    /// The prompt, read under its row lock.
    pub prompt: PromptRow,
    /// The project's enabled alert channels, read once when the first alert is queued.
    channels: Option<Vec<AlertChannelRow>>,
    project: Option<ProjectInfo>,
    /// What this prompt did, added to the `group`'s when its savepoint is kept.
    kept: Kept,
    group: &'g mut Kept,
    /// Scored samples not yet written (see [`ScoringTx::finish_sample`]).
    finished: Vec<FinishedSample>,
}

/// What scoring found for one sample.
pub struct FinishedSample {
    pub id: i64,
    pub similarity: Option<f64>,
    pub semantic_score: Option<f64>,
    pub length_score: Option<f64>,
    pub distribution_score: Option<f64>,
    pub refusal: bool,
    pub refusal_rate: Option<f64>,
}

/// Samples per UPDATE of the worker's writes (13 parameters each at most: well under both
/// backends' limits).
const ROWS_PER_UPDATE: usize = 200;

impl ScoringTx<'_> {
    /// The prompt's samples not yet scored, oldest first, up to `limit`.
    pub async fn unscored_samples(&mut self, limit: i64) -> StoreResult<Vec<UnscoredSample>> {
        let rows = sqlx::query(
            "SELECT id, prompt_version, state, embedding, model_id, response_length, response_text FROM samples \
             WHERE prompt_id = $1 AND state IN ('pending', 'embedded') ORDER BY id LIMIT $2",
        )
        .bind(self.prompt.id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter()
            .map(|r| {
                let state: SampleState = get_enum(r, "state")?;
                let embedding: Option<Vec<u8>> = r.try_get("embedding")?;
                Ok(UnscoredSample {
                    id: r.try_get("id")?,
                    version: get_enum(r, "prompt_version")?,
                    vector: match state {
                        SampleState::Embedded => embedding.map(|b| vector_from_bytes(&b)),
                        _ => None,
                    },
                    model_id: r.try_get("model_id")?,
                    response_length: r.try_get("response_length")?,
                    response_text: r.try_get("response_text")?,
                })
            })
            .collect()
    }

    pub async fn baselines(&mut self) -> StoreResult<HashMap<PromptVersion, StoredBaseline>> {
        let rows = sqlx::query("SELECT version, state, state_bin, model_id FROM prompt_baselines WHERE prompt_id = $1")
            .bind(self.prompt.id)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| {
                let state = match r.try_get::<Option<Vec<u8>>, _>("state_bin")? {
                    Some(binary) => binary,
                    None => r.try_get::<String, _>("state")?.into_bytes(),
                };
                let stored = StoredBaseline { state, model_id: r.try_get("model_id")? };
                Ok((get_enum(r, "version")?, stored))
            })
            .collect()
    }

    /// Records a sample's scores; written with the others of this transaction by
    /// [`Self::write_finished`] (before anything reads scored samples, and at commit).
    pub fn finish_sample(&mut self, sample: FinishedSample) {
        self.finished.push(sample);
    }

    /// Marks the finished samples done with their scores, [`ROWS_PER_UPDATE`] per statement.
    async fn write_finished(&mut self) -> StoreResult<()> {
        let finished = std::mem::take(&mut self.finished);
        let backend = Backend::of(&self.tx);
        for chunk in finished.chunks(ROWS_PER_UPDATE) {
            let mut params = Params::new(backend);
            let similarity = params.case_by_id(chunk.len());
            let semantic = params.case_by_id(chunk.len());
            let length = params.case_by_id(chunk.len());
            let distribution = params.case_by_id(chunk.len());
            let refusal_rate = params.case_by_id(chunk.len());
            let refusal = params.case_by_id(chunk.len());
            let sql = format!(
                "UPDATE samples SET state = 'done', similarity = {similarity}, semantic_score = {semantic}, \
                        length_score = {length}, distribution_score = {distribution}, \
                        refusal_rate = {refusal_rate}, refusal = {refusal}, processed_at = {} WHERE id IN ({})",
                params.next(),
                params.list(chunk.len())
            );
            // sqlx 0.8 `Any` declares a NULL f64 as float4 but a value as float8; a cached
            // Postgres statement then rejects the other kind, so this one is not cached.
            let mut query = sqlx::query(&sql).persistent(false);
            let columns: [fn(&FinishedSample) -> Option<f64>; 5] = [
                |s| s.similarity,
                |s| s.semantic_score,
                |s| s.length_score,
                |s| s.distribution_score,
                |s| s.refusal_rate,
            ];
            for column in columns {
                for sample in chunk {
                    query = query.bind(sample.id).bind(column(sample));
                }
            }
            for sample in chunk {
                query = query.bind(sample.id).bind(sample.refusal as i64);
            }
            query = query.bind(now_ms());
            for sample in chunk {
                query = query.bind(sample.id);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Inserts a drift event; returns its id and creation time.
    pub async fn insert_event(&mut self, e: &NewDriftEvent) -> StoreResult<(i64, i64)> {
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO drift_events (project_id, prompt_id, version, kind, score, threshold, window_size, \
                                       sample_id, switched_to, created_at, explanation) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(self.prompt.project_id)
        .bind(self.prompt.id)
        .bind(e.version.as_str())
        .bind(e.kind.as_str())
        .bind(e.score)
        .bind(e.threshold)
        .bind(e.window_size)
        .bind(e.sample_id)
        .bind(e.switched_to.map(PromptVersion::as_str))
        .bind(now)
        .bind(&e.explanation)
        .fetch_one(&mut *self.tx)
        .await?;
        self.kept.drift_events.push(e.kind);
        Ok((id, now))
    }

    /// The project's name and content-capture setting.
    pub async fn project(&mut self) -> StoreResult<ProjectInfo> {
        if let Some(p) = &self.project {
            return Ok(p.clone());
        }
        let r = sqlx::query("SELECT name, capture_content FROM projects WHERE id = $1")
            .bind(self.prompt.project_id)
            .fetch_one(&mut *self.tx)
            .await?;
        let info = ProjectInfo { name: r.try_get("name")?, capture_content: get_bool(&r, "capture_content")? };
        self.project = Some(info.clone());
        Ok(info)
    }

    /// The newest drift event of a version and kind (the one a resolution closes).
    pub async fn latest_drift_event_id(&mut self, version: PromptVersion, kind: DriftKind) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MAX(id) FROM drift_events WHERE prompt_id = $1 AND version = $2 AND kind = $3")
            .bind(self.prompt.id)
            .bind(version.as_str())
            .bind(kind.as_str())
            .fetch_one(&mut *self.tx)
            .await?)
    }

    /// Up to `limit` samples of a version up to sample `upto`, newest first, with their
    /// vectors: either the scored ones (the detector's window when `upto` fired it) or the ones
    /// the current baseline learnt from (scored while learning, so without a similarity; the
    /// partial index `samples_learning` finds them however long the prompt's history).
    pub async fn samples_to_explain(
        &mut self,
        which: ExplainedSet,
        version: PromptVersion,
        upto: i64,
        limit: i64,
    ) -> StoreResult<Vec<ExplainedSample>> {
        self.write_finished().await?;
        let similarity = match which {
            ExplainedSet::Window => "similarity IS NOT NULL",
            ExplainedSet::Learnt => "similarity IS NULL",
        };
        let sql = format!(
            "SELECT id, response_text, similarity, embedding FROM samples \
             WHERE prompt_id = $1 AND prompt_version = $2 AND id <= $3 AND {similarity} AND state = 'done' \
             ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(self.prompt.id)
            .bind(version.as_str())
            .bind(upto)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|r| {
                let embedding: Option<Vec<u8>> = r.try_get("embedding")?;
                Ok(ExplainedSample {
                    id: r.try_get("id")?,
                    text: r.try_get("response_text")?,
                    similarity: r.try_get("similarity")?,
                    vector: embedding.map(|b| vector_from_bytes(&b)),
                })
            })
            .collect()
    }

    /// Queues an alert (event and one delivery per enabled channel whose filters match) in
    /// this transaction: it is sent only if the scoring commits, and always if it does.
    pub async fn queue_alert(&mut self, event_type: AlertEventType, payload: &str, created_at: i64) -> StoreResult<()> {
        if self.channels.is_none() {
            self.channels = Some(enabled_channels(&mut self.tx, self.prompt.project_id).await?);
        }
        let name = self.prompt.name.as_str();
        let targets: Vec<i64> =
            self.channels.iter().flatten().filter(|c| c.wants(event_type, Some(name))).map(|c| c.id).collect();
        queue_alert(&mut self.tx, self.prompt.project_id, event_type, payload, created_at, &targets).await?;
        self.kept.alerts_queued |= !targets.is_empty();
        Ok(())
    }

    pub async fn save_baseline(&mut self, b: &BaselineUpdate<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO prompt_baselines (prompt_id, version, status, sample_count, model_id, semantic_score, \
                                           length_score, distribution_score, refusal_rate, \
                                           reference_refusal_rate, state, state_bin, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12) \
             ON CONFLICT (prompt_id, version) DO UPDATE SET status = excluded.status, \
                 sample_count = excluded.sample_count, model_id = excluded.model_id, \
                 semantic_score = COALESCE(excluded.semantic_score, prompt_baselines.semantic_score), \
                 length_score = COALESCE(excluded.length_score, prompt_baselines.length_score), \
                 distribution_score = COALESCE(excluded.distribution_score, prompt_baselines.distribution_score), \
                 refusal_rate = COALESCE(excluded.refusal_rate, prompt_baselines.refusal_rate), \
                 reference_refusal_rate = \
                     COALESCE(excluded.reference_refusal_rate, prompt_baselines.reference_refusal_rate), \
                 state = '', state_bin = excluded.state_bin, updated_at = excluded.updated_at",
        )
        // sqlx 0.8 `Any` declares a NULL f64 as float4 but a value as float8; a cached
        // Postgres statement then rejects the other kind, so this one is not cached.
        .persistent(false)
        .bind(self.prompt.id)
        .bind(b.version.as_str())
        .bind(b.status.as_str())
        .bind(b.sample_count)
        .bind(b.model_id)
        .bind(b.semantic_score)
        .bind(b.length_score)
        .bind(b.distribution_score)
        .bind(b.refusal_rate)
        .bind(b.reference_refusal_rate)
        .bind(&b.state)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes the prompt's status and active version (changed by drift and auto-switch).
    pub async fn update_prompt(&mut self, status: PromptStatus, active_prompt: PromptVersion) -> StoreResult<()> {
        sqlx::query("UPDATE prompts SET status = $1, active_prompt = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(active_prompt.as_str())
            .bind(now_ms())
            .bind(self.prompt.id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Keeps this prompt's writes in the group's transaction (they are durable when the group
    /// commits).
    pub async fn commit(mut self) -> StoreResult<()> {
        self.write_finished().await?;
        self.tx.commit().await?;
        self.group.alerts_queued |= self.kept.alerts_queued;
        self.group.drift_events.append(&mut self.kept.drift_events);
        Ok(())
    }
}

impl Store {
    /// Prompts that have embedded samples still waiting to be scored.
    pub async fn prompts_with_embedded_samples(&self) -> StoreResult<Vec<i64>> {
        // The IN term repeats the partial index's predicate word for word: SQLite uses a partial
        // index only when it can see that, and this runs on every idle poll.
        let rows = sqlx::query(
            "SELECT DISTINCT prompt_id FROM samples WHERE state IN ('pending', 'embedded') AND state = 'embedded'",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(|r| r.try_get("prompt_id")).collect::<Result<_, _>>()?)
    }
}
