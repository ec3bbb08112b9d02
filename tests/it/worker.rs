//! The embedding worker under trouble, on both backends: a sample that cannot be embedded fails
//! alone; a prompt whose scoring fails is undone alone, not with the batch's other prompts; one project's backlog does not hold back another project's new sample; baseline
//! states stored as JSON by earlier versions are read and rewritten in the binary form; a
//! backlog is embedded with float matrix weights that are given back when it is gone.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::{Kind, TestDb, TestServer};
use driftballoon::drift::Baseline;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

async fn samples(server: &TestServer, key: &str, prompt: &str) -> Vec<Value> {
    let (status, body) = server.get(key, &format!("/api/v1/prompts/{prompt}/samples?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    body["samples"].as_array().unwrap().clone()
}

async fn counts(server: &TestServer, key: &str, prompt: &str) -> Value {
    let (status, body) = server.get(key, &format!("/api/v1/prompts/{prompt}")).await;
    assert_eq!(status, 200, "{body}");
    body["samples"].clone()
}

async fn wait_for<F, Fut>(what: &str, server: &TestServer, seconds: u64, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "{what}: not within {seconds}s\nserver log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

async fn poison_sample_fails_alone(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let server = TestServer::start(
        &db,
        &[("DRIFTBALLOON_FAULT_EMBED_TEXT", "POISON-PILL"), ("DRIFTBALLOON_WORKER_MAX_ATTEMPTS", "2")],
    );
    let key = server.first_key.clone().unwrap();
    let mut logs: Vec<Value> = (0..10)
        .map(|i| {
            let text = if i == 4 { format!("{} POISON-PILL", common::answer(i, 12)) } else { common::answer(i, 12) };
            json!({"prompt_name": "poisoned", "response_text": text})
        })
        .collect();
    logs.extend((0..10).map(|i| json!({"prompt_name": "neighbour", "response_text": common::answer(100 + i, 12)})));
    let (status, body) = server.post_logs(&key, &json!({ "logs": logs })).await;
    assert_eq!(status, 202, "{body}");

    // The rest of the batch is embedded at once: the other prompt is scored, and so are the
    // poisoned prompt's samples before the bad one, long before the bad one is given up on.
    // (The two prompts may be scored in separate commits: wait for both.)
    wait_for("the neighbour prompt and the samples before the bad one scored", &server, 10, || async {
        counts(&server, &key, "neighbour").await["done"] == 10 && counts(&server, &key, "poisoned").await["done"] == 4
    })
    .await;
    let before_poison: Vec<Value> = samples(&server, &key, "poisoned").await;
    let done_early: Vec<i64> =
        before_poison.iter().filter(|s| s["state"] == "done").map(|s| s["id"].as_i64().unwrap()).collect();
    let first_id = before_poison.iter().map(|s| s["id"].as_i64().unwrap()).min().unwrap();
    assert_eq!(done_early, (first_id..first_id + 4).rev().collect::<Vec<_>>(), "{before_poison:#?}");
    assert_eq!(counts(&server, &key, "poisoned").await["failed"], 0, "not given up on yet");

    // After its last attempt (the retry waits 5 s) it fails and its prompt goes on.
    wait_for("the bad sample given up on and the rest scored", &server, 30, || async {
        let c = counts(&server, &key, "poisoned").await;
        c["failed"] == 1 && c["done"] == 9
    })
    .await;
    let all = samples(&server, &key, "poisoned").await;
    let failed: Vec<&Value> = all.iter().filter(|s| s["state"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["response_text"].as_str().unwrap().contains("POISON-PILL"));
    assert!(failed[0]["error"].as_str().unwrap().contains("injected fault"), "{:?}", failed[0]);
    // the worker's warnings about the bad sample are expected here; nothing else may go wrong
    let log = server.log_text();
    for problem in ["response failed", "panicked", "database error", "could not store embeddings", "scoring failed"] {
        assert!(!log.contains(problem), "{problem}:\n{log}");
    }
}

#[tokio::test]
async fn poison_sample_fails_alone_sqlite() {
    poison_sample_fails_alone(Kind::Sqlite).await;
}

#[tokio::test]
async fn poison_sample_fails_alone_postgres() {
    poison_sample_fails_alone(Kind::Postgres).await;
}

/// The worker scores all the prompts of a batch in one transaction, each under a savepoint: a
/// database error in one prompt's scoring (here a trigger that refuses its baseline) must undo
/// that prompt alone, and it is scored once the error is gone.
async fn scoring_fault_is_undone_alone(db: TestDb) {
    let kind = db.kind;
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let refuse = match kind {
        Kind::Sqlite => vec![
            "CREATE TRIGGER refuse_broken BEFORE INSERT ON prompt_baselines \
             WHEN NEW.prompt_id = (SELECT id FROM prompts WHERE name = 'broken') \
             BEGIN SELECT RAISE(ABORT, 'injected scoring fault'); END",
        ],
        Kind::Postgres => vec![
            "CREATE FUNCTION refuse_broken() RETURNS trigger AS $$ BEGIN \
             IF NEW.prompt_id = (SELECT id FROM prompts WHERE name = 'broken') THEN \
             RAISE EXCEPTION 'injected scoring fault'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_broken BEFORE INSERT ON prompt_baselines \
             FOR EACH ROW EXECUTE FUNCTION refuse_broken()",
        ],
    };
    for statement in refuse {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    // one request, so both prompts' samples are embedded in one batch and scored in one group
    let logs: Vec<Value> = (0..10)
        .flat_map(|i| {
            [
                json!({"prompt_name": "broken", "response_text": common::answer(i, 12)}),
                json!({"prompt_name": "healthy", "response_text": common::answer(100 + i, 12)}),
            ]
        })
        .collect();
    let (status, body) = server.post_logs(&key, &json!({ "logs": logs })).await;
    assert_eq!(status, 202, "{body}");

    wait_for("the healthy prompt scored", &server, 30, || async {
        counts(&server, &key, "healthy").await["done"] == 10
    })
    .await;
    wait_for("the broken prompt's failure logged", &server, 10, || async {
        server.log_text().contains("scoring failed; retrying alone")
    })
    .await;
    // only the broken prompt failed in the group: the healthy one was not dragged down with it
    // (and then rescued by the retry on its own)
    let failures = server.log_text().matches("scoring failed; retrying alone").count();
    assert_eq!(failures, 1, "one prompt failed in the group:\n{}", server.log_text());
    let broken = counts(&server, &key, "broken").await;
    assert_eq!(broken["done"], 0, "nothing of the failed prompt is kept: {broken}");
    assert_eq!(broken["failed"], 0, "its samples are not given up on: {broken}");

    let drop = match kind {
        Kind::Sqlite => "DROP TRIGGER refuse_broken",
        Kind::Postgres => "DROP TRIGGER refuse_broken ON prompt_baselines",
    };
    sqlx::query(drop).execute(&mut conn).await.unwrap();
    wait_for("the broken prompt scored once the fault is gone", &server, 30, || async {
        counts(&server, &key, "broken").await["done"] == 10
    })
    .await;
    let log = server.log_text();
    for problem in ["response failed", "panicked", "could not store a batch"] {
        assert!(!log.contains(problem), "{problem}:\n{log}");
    }
}

both_backends!(a_prompt_whose_scoring_fails_is_undone_alone, scoring_fault_is_undone_alone);

async fn backlog_does_not_delay_another_project(kind: Kind) {
    let _turn = common::heavy_load_turn().await;
    let Some(db) = TestDb::new(kind).await else { return };
    let server = TestServer::start(&db, &[]);
    let busy = server.first_key.clone().unwrap();
    let other = common::create_key(&db, "other-team");
    // A backlog that takes the worker well over a minute: 4,000 answers of about 120 words.
    for chunk in 0..8 {
        let logs: Vec<Value> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                json!({"prompt_name": format!("backlog-{}", n % 3), "response_text": common::answer(n, 120)})
            })
            .collect();
        let (status, body) = server.post_logs(&busy, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = server
        .post_logs(&other, &json!({"logs": [{"prompt_name": "fresh", "response_text": common::answer(9, 20)}]}))
        .await;
    assert_eq!(status, 202, "{body}");
    let waited = wait_for("the other project's sample scored", &server, 10, || async {
        counts(&server, &other, "fresh").await["done"] == 1
    })
    .await;
    let mut backlog = 0;
    for p in 0..3 {
        backlog += counts(&server, &busy, &format!("backlog-{p}")).await["pending"].as_i64().unwrap();
    }
    eprintln!("{kind:?}: the other project's sample was scored after {waited:?}, with {backlog} samples still waiting");
    assert!(backlog > 1_000, "the backlog must still be there for this to show anything: {backlog}");
    server.assert_no_server_errors();
}

#[tokio::test]
async fn backlog_does_not_delay_another_project_sqlite() {
    backlog_does_not_delay_another_project(Kind::Sqlite).await;
}

#[tokio::test]
async fn backlog_does_not_delay_another_project_postgres() {
    backlog_does_not_delay_another_project(Kind::Postgres).await;
}

/// Each thread of process `pid`: its name and scheduling policy (field 41 of its stat file).
fn thread_policies(pid: u32) -> Vec<(String, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("stat")).ok())
        .map(|stat| {
            // the name is in parentheses and may hold spaces; fields after it start at field 3
            let (head, rest) = stat.rsplit_once(')').unwrap();
            let name = head.split_once('(').unwrap().1.to_string();
            let policy = rest.split_whitespace().nth(41 - 3).unwrap().parse().unwrap();
            (name, policy)
        })
        .collect()
}

async fn a_backlog_borrows_float_weights_and_gives_them_back(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    // several seconds of work for the embedder
    for chunk in 0..4 {
        let logs: Vec<Value> = (0..200)
            .map(|i| {
                let n = chunk * 200 + i;
                json!({"prompt_name": format!("burst-{}", n % 2), "response_text": common::answer(n, 60)})
            })
            .collect();
        let (status, body) = server.post_logs(&key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
    }
    let log_has = |line: &'static str| {
        let server = &server;
        move || async move { server.log_text().contains(line) }
    };
    wait_for("the float-weights session loaded", &server, 120, log_has("float-weights session loaded")).await;
    // the embedder and every ONNX Runtime thread it started yield the cores to request handling
    let threads = thread_policies(server.child.id());
    let embedder: Vec<_> = threads.iter().filter(|(name, _)| name == "embedder").collect();
    assert!(embedder.len() >= 2, "the embedder and its ONNX Runtime pool: {threads:?}");
    assert!(embedder.iter().all(|(_, policy)| *policy == i64::from(libc::SCHED_IDLE)), "{threads:?}");
    let ordinary = i64::from(libc::SCHED_OTHER);
    assert!(threads.iter().any(|(name, policy)| name.starts_with("tokio") && *policy == ordinary), "{threads:?}");
    wait_for("every sample scored", &server, 300, || async {
        let mut done = 0;
        for p in 0..2 {
            done += counts(&server, &key, &format!("burst-{p}")).await["done"].as_i64().unwrap();
        }
        done == 800
    })
    .await;
    // dropped after 2 s without work
    wait_for("the float-weights session dropped", &server, 15, log_has("float-weights session dropped")).await;
    server.assert_no_server_errors();
}

#[tokio::test]
async fn a_backlog_borrows_float_weights_and_gives_them_back_sqlite() {
    a_backlog_borrows_float_weights_and_gives_them_back(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_backlog_borrows_float_weights_and_gives_them_back_postgres() {
    a_backlog_borrows_float_weights_and_gives_them_back(Kind::Postgres).await;
}

async fn json_baseline_states_still_work(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let mut server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let logs: Vec<Value> =
        (0..40).map(|i| json!({"prompt_name": "legacy", "response_text": common::answer(i, 15)})).collect();
    assert_eq!(server.post_logs(&key, &json!({ "logs": logs })).await.0, 202);
    let before = server.wait_processed(&key, "legacy").await;
    assert_eq!(before["baseline_status"], "ready", "{before}");
    server.terminate();

    // Turn the stored state into the JSON an earlier version wrote.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let row = sqlx::query("SELECT b.prompt_id, b.state, b.state_bin FROM prompt_baselines b JOIN prompts p ON p.id = b.prompt_id WHERE p.name = 'legacy'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (prompt_id, text, binary): (i64, String, Option<Vec<u8>>) =
        (row.try_get(0).unwrap(), row.try_get(1).unwrap(), row.try_get(2).unwrap());
    assert_eq!(text, "", "a new state is stored binary only");
    let baseline = Baseline::from_stored(&binary.expect("binary state")).unwrap();
    let json = serde_json::to_string(&baseline).unwrap();
    sqlx::query("UPDATE prompt_baselines SET state = $1, state_bin = NULL WHERE prompt_id = $2")
        .bind(&json)
        .bind(prompt_id)
        .execute(&mut conn)
        .await
        .unwrap();

    let server = TestServer::start(&db, &[]);
    let logs: Vec<Value> =
        (40..50).map(|i| json!({"prompt_name": "legacy", "response_text": common::answer(i, 15)})).collect();
    assert_eq!(server.post_logs(&key, &json!({ "logs": logs })).await.0, 202);
    let after = server.wait_processed(&key, "legacy").await;
    assert_eq!(after["baseline_status"], "ready", "{after}");
    assert_eq!(after["baseline_sample_count"], before["baseline_sample_count"], "the baseline was kept, not relearnt");
    let newest = samples(&server, &key, "legacy").await;
    assert!(newest[..10].iter().all(|s| s["similarity"].is_f64()), "scored against the kept baseline: {newest:#?}");
    assert!(!server.log_text().contains("unreadable baseline state"), "{}", server.log_text());
    let row = sqlx::query("SELECT state, state_bin FROM prompt_baselines WHERE prompt_id = $1")
        .bind(prompt_id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let (text, binary): (String, Option<Vec<u8>>) = (row.try_get(0).unwrap(), row.try_get(1).unwrap());
    assert_eq!(text, "");
    let rewritten = Baseline::from_stored(&binary.expect("rewritten in binary")).unwrap();
    assert_eq!(rewritten.sample_count(), baseline.sample_count());
    server.assert_no_server_errors();
}

#[tokio::test]
async fn json_baseline_states_still_work_sqlite() {
    json_baseline_states_still_work(Kind::Sqlite).await;
}

#[tokio::test]
async fn json_baseline_states_still_work_postgres() {
    json_baseline_states_still_work(Kind::Postgres).await;
}
