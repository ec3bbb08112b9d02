//! Ingest durability: the server is killed with SIGKILL while 8 clients send batches of logs
//! at once (on SQLite they share group commits). Every batch answered 202 must be stored whole,
//! and no batch may be stored in part.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{Kind, TestDb, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tokio::sync::Mutex;

const CLIENTS: usize = 8;
const BATCH: usize = 10;

async fn kill_during_ingest(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    // no worker: only ingest writes, as fast as it can
    let mut server = TestServer::start(&db, &[common::NO_RATE_LIMIT, ("DRIFTBALLOON_WORKER_ENABLED", "false")]);
    let key = server.first_key.clone().unwrap();
    let url = server.url("/api/v1/logs");
    // request tag -> the ids its 202 named
    let acknowledged: Arc<Mutex<HashMap<String, Vec<i64>>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (url, key, acknowledged, sent) = (url.clone(), key.clone(), acknowledged.clone(), sent.clone());
            tokio::spawn(async move {
                // no pooling: every request is on its own connection, as after the kill
                let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                for n in 0.. {
                    let tag = format!("kill-{client}-{n}");
                    let logs: Vec<Value> = (0..BATCH)
                        .map(|j| json!({"prompt_name": format!("durable-{}", j % 3), "response_text": format!("{tag}-{j} a durable answer")}))
                        .collect();
                    sent.lock().await.insert(tag.clone());
                    let Ok(resp) = http.post(&url).bearer_auth(&key).json(&json!({ "logs": logs })).send().await else {
                        return; // the server is gone
                    };
                    if resp.status() != 202 {
                        return;
                    }
                    let Ok(body) = resp.json::<Value>().await else { return };
                    let ids = body["log_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                    acknowledged.lock().await.insert(tag, ids);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill(); // SIGKILL: no shutdown, no final commit
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    let sent = sent.lock().await.clone();
    assert!(acknowledged.len() >= 20, "too few requests got through to test anything: {}", acknowledged.len());

    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let rows = sqlx::query("SELECT id, response_text FROM samples").fetch_all(&mut conn).await.unwrap();
    let mut stored: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    for r in &rows {
        let (id, text): (i64, String) = (r.try_get(0).unwrap(), r.try_get(1).unwrap());
        let tag = text.rsplit_once('-').unwrap().0.to_string();
        stored.entry(tag).or_default().push((id, text));
    }
    for (tag, ids) in &acknowledged {
        let got = stored.get(tag).unwrap_or_else(|| panic!("{tag} was answered 202 but nothing of it is stored"));
        let mut got_ids: Vec<i64> = got.iter().map(|(id, _)| *id).collect();
        got_ids.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got_ids, want, "{tag}: the stored ids are the ones its 202 named");
        for (j, id) in ids.iter().enumerate() {
            let text = &got.iter().find(|(i, _)| i == id).unwrap().1;
            assert_eq!(text, &format!("{tag}-{j} a durable answer"), "log_ids are in request order");
        }
    }
    for (tag, logs) in &stored {
        assert!(sent.contains(tag), "{tag} stored but never sent");
        assert_eq!(logs.len(), BATCH, "{tag} is stored in part: {logs:?}");
    }
    let unanswered = stored.keys().filter(|t| !acknowledged.contains_key(*t)).count();
    eprintln!(
        "{kind:?}: {} batches answered 202 and stored; {unanswered} more stored whole without an answer; {} sent",
        acknowledged.len(),
        sent.len()
    );

    // The server starts again on the database and counts every stored log.
    let server = TestServer::start(&db, &[("DRIFTBALLOON_WORKER_ENABLED", "false")]);
    let mut total = 0;
    for p in 0..3 {
        total += server.sample_total(&key, &format!("durable-{p}")).await;
    }
    assert_eq!(total as usize, rows.len());
}

#[tokio::test]
async fn kill_during_ingest_sqlite() {
    kill_during_ingest(Kind::Sqlite).await;
}

#[tokio::test]
async fn kill_during_ingest_postgres() {
    kill_during_ingest(Kind::Postgres).await;
}
