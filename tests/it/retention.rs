//! Retention end to end: rows past their project's age limits are deleted by the background
//! pruner (samples, traces with their spans, log records, sessions, metrics), while drift
//! events, baselines, the samples a baseline learnt from and the samples events refer to stay;
//! ingest keeps working during a prune; a project that keeps everything loses nothing; limits
//! are set over REST; and on SQLite the freed pages go back to the file system.
//!
//! "Old" rows are made by moving their timestamps 40 days back in the database, the only way to
//! age data without waiting for it.

use crate::common;
use std::time::{Duration, Instant};

use crate::common::clock::{base_iso, base_nanos_text, iso, now_ms, DAY_MS};
use crate::common::texts::{biology_answer, support_answer};
use crate::common::{run_cli, Kind, TestDb, TestServer};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Connection, Row};

async fn post_json(server: &TestServer, key: &str, path: &str, body: &Value) -> u16 {
    let resp = server.http.post(server.url(path)).bearer_auth(key).json(body).send().await.unwrap();
    let (status, answer) = common::status_json(resp).await;
    assert!(status < 300, "{path}: {status} {answer}");
    status
}

async fn log_texts(server: &TestServer, key: &str, prompt: &str, texts: &[String]) {
    for chunk in texts.chunks(10) {
        let logs: Vec<Value> = chunk.iter().map(|t| json!({"prompt_name": prompt, "response_text": t})).collect();
        let (status, body) = server.post_logs(key, &json!({ "logs": logs })).await;
        assert_eq!(status, 202, "{body}");
    }
}

/// One Fallom span, trace `trace`, that the client says started at `start` (RFC 3339).
fn fallom_span(trace: &str, start: &str) -> Value {
    json!({"trace_id": trace, "span_id": "s1", "name": "chat", "start_time": start, "end_time": start,
        "duration_ms": 0, "status": "OK", "kind": "llm", "model": "m", "config_key": "cfg",
        "session_id": format!("session-{trace}")})
}

/// A trace (one Fallom span), an OTLP log record, a session and a metric of project `key`.
async fn trace_session_metric(server: &TestServer, key: &str, id: &str) {
    post_json(server, key, "/v1/traces", &fallom_span(&format!("trace-{id}"), &base_iso(0))).await;
    let record = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": base_nanos_text(100), "body": {"stringValue": format!("log {id}")}}]}]}]});
    assert_eq!(post_json(server, key, "/v1/logs", &record).await, 200);
    let session =
        json!({"config_key": "cfg", "config_version": 1, "session_id": format!("session-{id}"), "assigned_model": "m"});
    assert_eq!(post_json(server, key, "/sessions", &session).await, 202);
    let metric = json!({"config_key": "cfg", "session_id": format!("session-{id}"), "data": {"csat": 4}});
    assert_eq!(post_json(server, key, "/spans", &metric).await, 202);
}

async fn connect(db: &TestDb) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&db.url).await.unwrap()
}

async fn count(conn: &mut AnyConnection, sql: &str, project: i64) -> i64 {
    sqlx::query(sql).bind(project).fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap()
}

async fn project_id(conn: &mut AnyConnection, name: &str) -> i64 {
    sqlx::query("SELECT id FROM projects WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Moves everything of a project 40 days into the past.
async fn age(conn: &mut AnyConnection, project: i64) {
    let back = 40 * DAY_MS;
    for sql in [
        "UPDATE samples SET received_at = received_at - $1 WHERE project_id = $2",
        "UPDATE traces SET received_at = received_at - $1 WHERE project_id = $2",
        "UPDATE spans SET received_at = received_at - $1 WHERE project_id = $2",
        "UPDATE log_records SET received_at = received_at - $1 WHERE project_id = $2",
        "UPDATE model_sessions SET last_seen_at = last_seen_at - $1 WHERE project_id = $2",
        "UPDATE session_metrics SET updated_at = updated_at - $1 WHERE project_id = $2",
    ] {
        sqlx::query(sql).bind(back).bind(project).execute(&mut *conn).await.unwrap();
    }
}

const SAMPLES: &str = "SELECT COUNT(*) FROM samples WHERE project_id = $1";
const OTHERS: [(&str, &str); 5] = [
    ("spans", "SELECT COUNT(*) FROM spans WHERE project_id = $1"),
    ("traces", "SELECT COUNT(*) FROM traces WHERE project_id = $1"),
    ("log records", "SELECT COUNT(*) FROM log_records WHERE project_id = $1"),
    ("sessions", "SELECT COUNT(*) FROM model_sessions WHERE project_id = $1"),
    ("metrics", "SELECT COUNT(*) FROM session_metrics WHERE project_id = $1"),
];
/// The samples retention must keep: learnt from, referred to by an event, or not yet scored
/// (a sample skipped under overload was never scored and is not kept).
const NEEDED: &str = "SELECT COUNT(*) FROM samples s WHERE s.project_id = $1 AND s.state <> 'skipped' \
    AND (s.similarity IS NULL OR s.state IN ('pending', 'embedded') \
    OR EXISTS (SELECT 1 FROM drift_events e WHERE e.sample_id = s.id))";

/// Turns ten scored samples no event refers to into what overload sampling leaves: `skipped`,
/// never embedded or scored (an overload needs minutes of the model's time at the defaults).
const AS_SKIPPED: &str = "UPDATE samples SET state = 'skipped', similarity = NULL, semantic_score = NULL, \
    length_score = NULL, embedding = NULL WHERE id IN (SELECT s.id FROM samples s WHERE s.project_id = $1 \
    AND s.state = 'done' AND s.similarity IS NOT NULL \
    AND NOT EXISTS (SELECT 1 FROM drift_events e WHERE e.sample_id = s.id) ORDER BY s.id LIMIT 10)";

both_backends!(old_rows_go_and_what_drift_needs_stays, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_RETENTION_INTERVAL_SECS", "1")]);
    let key = server.first_key.clone().unwrap();
    let (code, stdout, stderr) = run_cli(&db, &["keys", "create", "--project", "keeper"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let keeper = stdout.lines().last().unwrap().trim().to_string();

    // REST: limits in force, defaults, a change, a reset to the default, and bad values
    let (_, project) = server.get(&key, "/api/v1/project").await;
    let defaults = json!({"samples_days": 30, "traces_days": 14, "sessions_days": 30, "metrics_days": 90});
    assert_eq!(project["retention"], defaults, "{project}");
    assert_eq!(project["retention_defaults"], defaults);
    let patch = |key: String, body: Value| {
        let request = server.http.patch(server.url("/api/v1/project")).bearer_auth(key).json(&body);
        async move { common::status_json(request.send().await.unwrap()).await }
    };
    let (status, project) = patch(key.clone(), json!({"retention": {"metrics_days": 7, "samples_days": 5}})).await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["retention"]["metrics_days"], 7);
    let (_, project) = patch(key.clone(), json!({"retention": {"samples_days": null}})).await;
    assert_eq!(project["retention"]["samples_days"], 30, "null is the server default again");
    assert_eq!(project["retention"]["metrics_days"], 7);
    let (status, body) = patch(key.clone(), json!({"retention": {"samples_days": -1, "forever": 0}})).await;
    assert_eq!(status, 422, "{body}");
    let paths: Vec<&str> =
        body["error"]["details"]["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"retention.samples_days") && paths.contains(&"retention.forever"), "{body}");
    let forever = json!({"retention": {"samples_days": 0, "traces_days": 0, "sessions_days": 0, "metrics_days": 0}});
    assert_eq!(patch(keeper.clone(), forever).await.0, 200);

    // a baseline, a drift episode, traces, sessions and metrics; then all of it 40 days old
    for k in [&key, &keeper] {
        let config = json!({"key": "cfg", "variants": [{"model": "m", "weight": 100}]});
        post_json(&server, k, "/api/v1/model-configs", &config).await;
    }
    let support: Vec<String> = (0..70).map(support_answer).collect();
    let biology: Vec<String> = (0..60).map(biology_answer).collect();
    log_texts(&server, &key, "retained", &support).await;
    server.wait_processed(&key, "retained").await;
    log_texts(&server, &key, "retained", &biology).await;
    let before = server.wait_processed(&key, "retained").await;
    let (_, events_before) = server.get(&key, "/api/v1/prompts/retained/drift-events").await;
    assert!(!events_before["events"].as_array().unwrap().is_empty(), "no drift event to keep");
    trace_session_metric(&server, &key, "old").await;
    log_texts(&server, &keeper, "kept", &support[..5]).await;
    trace_session_metric(&server, &keeper, "kept").await;
    server.wait_processed(&keeper, "kept").await;

    let mut conn = connect(&db).await;
    let (project, kept_project) = (project_id(&mut conn, "default").await, project_id(&mut conn, "keeper").await);
    sqlx::query(AS_SKIPPED).bind(project).execute(&mut conn).await.unwrap();
    let skipped = count(&mut conn, "SELECT COUNT(*) FROM samples WHERE project_id = $1 AND state = 'skipped'", project);
    assert_eq!(skipped.await, 10);
    let needed = count(&mut conn, NEEDED, project).await;
    assert!((31..130).contains(&needed), "{needed} samples needed");
    age(&mut conn, project).await;
    age(&mut conn, kept_project).await;

    // ingest while the pruner works: everything answered 202 is there
    let fresh: Vec<String> = (70..110).map(support_answer).collect();
    log_texts(&server, &key, "fresh", &fresh).await;
    trace_session_metric(&server, &key, "new").await;

    // one pass deletes each kind in turn: wait for all of them (only the new row of each is left)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut left = vec![("samples", count(&mut conn, SAMPLES, project).await, needed + 40)];
        for (what, sql) in OTHERS {
            left.push((what, count(&mut conn, sql, project).await, 1));
        }
        if left.iter().all(|(_, n, want)| n == want) {
            break;
        }
        assert!(Instant::now() < deadline, "not pruned (what, left, wanted): {left:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (what, sql) in OTHERS {
        assert!(count(&mut conn, sql, kept_project).await >= 1, "{what} of the keep-forever project");
    }
    assert_eq!(count(&mut conn, SAMPLES, kept_project).await, 5);
    assert_eq!(server.sample_total(&key, "fresh").await, 40);

    // the drift history and the baseline are as they were
    let after = server.get(&key, "/api/v1/prompts/retained").await.1;
    for field in ["status", "active_prompt", "baseline_status", "baseline_sample_count", "versions"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let (_, events_after) = server.get(&key, "/api/v1/prompts/retained/drift-events").await;
    assert_eq!(events_after, events_before);
    let orphans = "SELECT COUNT(*) FROM drift_events e WHERE e.project_id = $1 AND NOT EXISTS \
                   (SELECT 1 FROM samples s WHERE s.id = e.sample_id)";
    assert_eq!(count(&mut conn, orphans, project).await, 0);

    if db.kind == Kind::Sqlite {
        let mode: i64 = sqlx::query("PRAGMA auto_vacuum").fetch_one(&mut conn).await.unwrap().try_get(0).unwrap();
        assert_eq!(mode, 2, "incremental auto-vacuum");
        // the pruner gives the freed pages back right after its pass
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let free: i64 =
                sqlx::query("PRAGMA freelist_count").fetch_one(&mut conn).await.unwrap().try_get(0).unwrap();
            if free == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{free} free pages never reclaimed");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("driftballoon_retention_deleted_rows_total{table=\"samples\"}")),
        "{metrics}"
    );
    server.assert_no_server_errors();
});

// Traces are aged by when the server received them, never by the start time their client wrote:
// a replayed export a month old is kept for the full limit from its arrival, and a trace whose
// stored arrival is old goes whatever it claims, a start time in 2099 included.
both_backends!(traces_age_by_arrival_not_by_the_clients_clock, |db: TestDb| async move {
    let server = TestServer::start(&db, &[("DRIFTBALLOON_RETENTION_INTERVAL_SECS", "1")]);
    let key = server.first_key.clone().unwrap();
    let (_, project) = server.get(&key, "/api/v1/project").await;
    assert_eq!(project["retention"]["traces_days"], 14, "the default limit: {project}");

    let month_ago = now_ms() - 30 * DAY_MS;
    post_json(&server, &key, "/v1/traces", &fallom_span("replayed", &iso(month_ago))).await;
    post_json(&server, &key, "/v1/traces", &fallom_span("late", &iso(now_ms()))).await;
    // fixed-date: far in the future on purpose; the check is that it does not protect the trace
    post_json(&server, &key, "/v1/traces", &fallom_span("future", "2099-01-01T00:00:00Z")).await;

    // "late" and "future" arrived (by their stored arrival time) 30 days ago
    let mut conn = connect(&db).await;
    let project = project_id(&mut conn, "default").await;
    for table in ["spans", "traces"] {
        let sql = format!(
            "UPDATE {table} SET received_at = received_at - $1 WHERE project_id = $2 AND trace_id IN ('late', 'future')"
        );
        let moved = sqlx::query(&sql).bind(30 * DAY_MS).bind(project).execute(&mut conn).await.unwrap();
        assert_eq!(moved.rows_affected(), 2, "{table}");
    }

    // the pruner runs every second: wait for a pass that deletes the two old arrivals
    let trace_status = |id: &'static str| {
        let request = server.http.get(server.url(&format!("/api/v1/traces/{id}"))).bearer_auth(&key);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while trace_status("late").await != 404 || trace_status("future").await != 404 {
        assert!(Instant::now() < deadline, "traces received 30 days ago were not pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spans = "SELECT COUNT(*) FROM spans WHERE project_id = $1 AND trace_id IN ('late', 'future')";
    assert_eq!(count(&mut conn, spans, project).await, 0, "their spans went with them");

    // the same pass kept the replayed export: it started 30 days ago but arrived just now
    let (status, trace) = server.get(&key, "/api/v1/traces/replayed").await;
    assert_eq!((status, trace["span_count"].clone()), (200, json!(1)), "{trace}");
    assert_eq!(trace["spans"][0]["start_ms"], json!(month_ago), "{trace}");
    server.assert_no_server_errors();
});
