//! Ingest durability: the server is killed with SIGKILL while 8 clients send batches of logs
//! at once (on SQLite they share group commits), and again while clients send OTLP span exports
//! beside log batches. Every batch or export answered 2xx must be stored whole (spans and their
//! trace rollups), and none may be stored in part. A batch the database refuses fails alone:
//! the rest of its group is stored.

use crate::common;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Kind, TestDb, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tokio::sync::Mutex;

const CLIENTS: usize = 8;
const BATCH: usize = 10;

/// Waits until no connection of the killed server is left on the database. Postgres runs a
/// statement it has received to its end even when the client is gone: a batch sent just before
/// the kill is stored (whole, unanswered) a moment later, so reading earlier would miss it.
async fn wait_for_killed_connections(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    if db.kind != Kind::Postgres {
        return conn;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = sqlx::query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        if others == 0 {
            return conn;
        }
        assert!(std::time::Instant::now() < deadline, "the killed server's connections did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn kill_during_ingest(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    // no worker: only ingest writes, as fast as it can
    let mut server = TestServer::start(&db, &[("DRIFTBALLOON_WORKER_ENABLED", "false")]);
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

    let mut conn = wait_for_killed_connections(&db).await;
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

const SPANS_PER_EXPORT: usize = 20;

/// Client `client`'s `n`th export: one trace of [`SPANS_PER_EXPORT`] spans, its id made of both.
fn span_export(client: usize, n: usize) -> (String, Value) {
    let trace_id = format!("{:016x}{:016x}", client + 1, n + 1);
    let spans: Vec<Value> = (0..SPANS_PER_EXPORT)
        .map(|j| {
            json!({"traceId": trace_id, "spanId": format!("{:016x}", j + 1), "name": format!("step-{j}"),
                   "startTimeUnixNano": common::clock::base_nanos_text(0), "endTimeUnixNano": common::clock::base_nanos_text(1000),
                   "attributes": [{"key": "session.id", "value": {"stringValue": "durable"}}]})
        })
        .collect();
    (trace_id, json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
}

async fn kill_during_span_ingest(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else { return };
    let mut server = TestServer::start(&db, &[("DRIFTBALLOON_WORKER_ENABLED", "false")]);
    let key = server.first_key.clone().unwrap();
    let acknowledged: Arc<Mutex<HashSet<String>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    // four exporters and four log clients, so the writer is contended by both kinds of work
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (traces_url, logs_url) = (server.url("/v1/traces"), server.url("/api/v1/logs"));
            let (key, acknowledged, sent) = (key.clone(), acknowledged.clone(), sent.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                for n in 0.. {
                    let request = if client % 2 == 0 {
                        let (trace_id, export) = span_export(client, n);
                        sent.lock().await.insert(trace_id.clone());
                        http.post(&traces_url).bearer_auth(&key).json(&export).send().await.map(|r| (trace_id, r))
                    } else {
                        let logs: Vec<Value> = (0..BATCH)
                            .map(|j| json!({"prompt_name": "beside-spans", "response_text": format!("{client}-{n}-{j}")}))
                            .collect();
                        http.post(&logs_url).bearer_auth(&key).json(&json!({ "logs": logs })).send().await.map(|r| (String::new(), r))
                    };
                    let Ok((trace_id, resp)) = request else { return };
                    if !resp.status().is_success() {
                        return;
                    }
                    if !trace_id.is_empty() {
                        acknowledged.lock().await.insert(trace_id);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill();
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged = acknowledged.lock().await.clone();
    let sent = sent.lock().await.clone();
    assert!(acknowledged.len() >= 10, "too few exports got through to test anything: {}", acknowledged.len());

    let mut conn = wait_for_killed_connections(&db).await;
    let rows =
        sqlx::query("SELECT trace_id, COUNT(*) FROM spans GROUP BY trace_id").fetch_all(&mut conn).await.unwrap();
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap())).collect();
    for trace_id in &acknowledged {
        assert_eq!(
            stored.get(trace_id),
            Some(&(SPANS_PER_EXPORT as i64)),
            "{trace_id} was answered 200: all its spans"
        );
    }
    for (trace_id, count) in &stored {
        assert!(sent.contains(trace_id), "{trace_id} stored but never sent");
        assert_eq!(*count, SPANS_PER_EXPORT as i64, "{trace_id} is stored in part");
    }
    // every stored trace has its rollup, counting all its spans
    let rollups = sqlx::query("SELECT trace_id, span_count FROM traces").fetch_all(&mut conn).await.unwrap();
    assert_eq!(rollups.len(), stored.len(), "one rollup per stored trace");
    for r in &rollups {
        let (trace_id, span_count): (String, i64) = (r.try_get(0).unwrap(), r.try_get(1).unwrap());
        assert_eq!(Some(&span_count), stored.get(&trace_id), "{trace_id}: rollup and spans agree");
    }
    eprintln!(
        "{kind:?}: {} exports answered and stored whole; {} stored; {} sent",
        acknowledged.len(),
        stored.len(),
        sent.len()
    );
}

#[tokio::test]
async fn kill_during_span_ingest_sqlite() {
    kill_during_span_ingest(Kind::Sqlite).await;
}

#[tokio::test]
async fn kill_during_span_ingest_postgres() {
    kill_during_span_ingest(Kind::Postgres).await;
}

#[tokio::test]
async fn kill_during_ingest_sqlite() {
    kill_during_ingest(Kind::Sqlite).await;
}

#[tokio::test]
async fn kill_during_ingest_postgres() {
    kill_during_ingest(Kind::Postgres).await;
}

/// On SQLite concurrent log batches are written together in one group; when one of them
/// cannot be stored (here a trigger refuses it), that batch alone fails: every other batch of
/// its group is stored whole under the ids its 202 named, and nothing of the refused one is.
async fn a_refused_batch_fails_alone(db: TestDb) {
    let kind = db.kind;
    let server = TestServer::start(
        &db,
        &[("DRIFTBALLOON_WORKER_ENABLED", "false"), ("RUST_LOG", "info,driftballoon::store::group_commit=debug")],
    );
    let key = server.first_key.clone().unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let refuse = match kind {
        Kind::Sqlite => vec![
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON samples WHEN NEW.response_text LIKE '%refuse-me%' \
             BEGIN SELECT RAISE(ABORT, 'injected ingest fault'); END",
        ],
        Kind::Postgres => vec![
            "CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN \
             IF NEW.response_text LIKE '%refuse-me%' THEN RAISE EXCEPTION 'injected ingest fault'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON samples FOR EACH ROW EXECUTE FUNCTION refuse_marked()",
        ],
    };
    for statement in refuse {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }

    const ROUNDS: usize = 10;
    let http = reqwest::Client::new();
    let url = server.url("/api/v1/logs");
    let mut acknowledged: HashMap<String, Vec<i64>> = HashMap::new();
    for round in 0..ROUNDS {
        // CLIENTS batches at once, so they queue for the writer together; one is refused
        let sends = (0..CLIENTS).map(|client| {
            let tag = format!("group-{round}-{client}");
            let marker = if client == round % CLIENTS { "refuse-me" } else { "keep" };
            let logs: Vec<Value> = (0..BATCH)
                .map(|j| json!({"prompt_name": format!("grouped-{}", (client + j) % 3), "response_text": format!("{tag}-{j} {marker}")}))
                .collect();
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            async move {
                let resp = http.post(&url).bearer_auth(&key).json(&json!({ "logs": logs })).send().await.unwrap();
                let status = resp.status().as_u16();
                (tag, marker, status, resp.json::<Value>().await.unwrap())
            }
        });
        for (tag, marker, status, body) in futures_util::future::join_all(sends).await {
            if marker == "keep" {
                assert_eq!(status, 202, "{tag}: {body}");
                let ids = body["log_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                acknowledged.insert(tag, ids);
            } else {
                assert!(status >= 500, "{tag} was refused by the database: {status} {body}");
                assert!(!body["error"].is_null(), "{tag}: an error body: {body}");
            }
        }
    }

    let rows = sqlx::query("SELECT id, response_text FROM samples").fetch_all(&mut conn).await.unwrap();
    let stored: HashMap<i64, String> = rows.iter().map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap())).collect();
    assert_eq!(stored.len(), ROUNDS * (CLIENTS - 1) * BATCH, "every accepted log and nothing else is stored");
    for (tag, ids) in &acknowledged {
        for (j, id) in ids.iter().enumerate() {
            assert_eq!(stored.get(id), Some(&format!("{tag}-{j} keep")), "{tag}: log_ids name its own logs, in order");
        }
    }
    if kind == Kind::Sqlite {
        // a group holding the refused batch and others was written again one batch at a time
        let log = server.log_text();
        let mut fell_back = false;
        let shared = log.lines().any(|line| {
            if line.contains("failed together") {
                fell_back = true;
            } else if fell_back && line.contains("stored a write group") {
                fell_back = false;
                let requests = line.split("requests=").nth(1).and_then(|r| r.split(' ').next());
                return requests.and_then(|r| r.parse::<usize>().ok()).unwrap_or(0) >= 2;
            }
            false
        });
        assert!(shared, "no refused batch shared a group with others:\n{log}");
    }
}

both_backends!(a_refused_log_batch_fails_alone, a_refused_batch_fails_alone);
