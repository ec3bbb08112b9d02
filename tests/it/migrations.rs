//! The two migration sets (migrations/sqlite and migrations/postgres) must build the same
//! schema: the store runs one set of SQL on both backends, so a table, column, key or index
//! that exists (or differs) on one side only is a bug that shows up on one backend alone.
//! `schemas_match` migrates a fresh database of each kind and compares what the databases
//! themselves report. `token_bounds` checks migration 0004 on old data and that token sums
//! saturate instead of failing the read.

use crate::common;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Kind, TestDb};
use driftballoon::ingest::IngestOptions;
use driftballoon::ingest::{NewSpan, TokenUsage};
use driftballoon::store::{PoolSettings, SessionAssignment, SpanFilter, Store};
use sqlx::{Connection, Row};

async fn migrate(db: &TestDb) -> Store {
    let pool = PoolSettings { max_connections: 2, acquire_timeout: Duration::from_secs(10) };
    Store::open(&db.url, &pool).await.unwrap_or_else(|e| panic!("migrating {:?} failed: {e:#}", db.kind))
}

/// A schema as a flat list of facts, each a key ("column spans.model") and what it is
/// ("text NULL default none"), so two schemas compare key by key and every difference can be
/// named precisely.
type Schema = BTreeMap<String, String>;

/// The type class of an SQLite declared type, by SQLite's own affinity rules (section 3.1 of
/// its datatype documentation).
fn sqlite_type_class(declared: &str) -> String {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "integer".into()
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "text".into()
    } else if t.contains("BLOB") || t.is_empty() {
        "blob".into()
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "real".into()
    } else {
        format!("numeric ({declared})")
    }
}

/// The type class of a Postgres column. SQLite integers and reals are 64-bit, so 32- and
/// 16-bit Postgres types get a class of their own: a value that fits on SQLite would fail there.
fn postgres_type_class(data_type: &str) -> String {
    match data_type {
        "bigint" => "integer".into(),
        "integer" => "integer (32-bit)".into(),
        "smallint" => "integer (16-bit)".into(),
        "double precision" => "real".into(),
        "real" => "real (32-bit)".into(),
        "text" => "text".into(),
        "bytea" => "blob".into(),
        other => format!("other ({other})"),
    }
}

/// A column default in a form both backends agree on: Postgres adds casts (`'a'::text`) and
/// quotes negative numbers; SQLite keeps the text as written.
fn normalize_default(raw: &str) -> String {
    let mut s = raw.trim().to_string();
    loop {
        let before = s.clone();
        if let Some(pos) = s.rfind("::") {
            let tail = &s[pos + 2..];
            if tail.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '_') {
                s.truncate(pos);
            }
        }
        if s.starts_with('(') && s.ends_with(')') {
            s = s[1..s.len() - 1].trim().to_string();
        }
        if s == before {
            break;
        }
    }
    let unquoted = s.strip_prefix('\'').and_then(|t| t.strip_suffix('\''));
    match unquoted.unwrap_or(&s).parse::<f64>() {
        Ok(n) => n.to_string(),
        Err(_) => s,
    }
}

fn column_fact(class: &str, not_null: bool, default: Option<String>) -> String {
    format!(
        "{class} {} default {}",
        if not_null { "NOT NULL" } else { "NULL" },
        default.unwrap_or_else(|| "none".into())
    )
}

fn index_fact(table: &str, columns: &[String], unique: bool, partial: bool) -> String {
    format!(
        "on {table}({}){}{}",
        columns.join(", "),
        if unique { " unique" } else { "" },
        if partial { " partial (WHERE ...)" } else { "" }
    )
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("name"))
    .collect();
    for table in &tables {
        schema.insert(format!("table {table}"), "exists".into());

        let columns = sqlx::query(
            "SELECT name, type, \"notnull\" AS not_null, dflt_value, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut primary_key: Vec<(i64, String)> =
            columns.iter().filter(|c| c.get::<i64, _>("pk") > 0).map(|c| (c.get("pk"), c.get("name"))).collect();
        primary_key.sort();
        let primary_key: Vec<String> = primary_key.into_iter().map(|(_, name)| name).collect();
        for c in &columns {
            let name: String = c.get("name");
            let declared: String = c.get("type");
            // A single INTEGER PRIMARY KEY column is the rowid: never NULL, numbered by SQLite.
            let rowid = primary_key == [name.clone()] && declared.eq_ignore_ascii_case("INTEGER");
            let default = if rowid {
                Some("auto-increment".to_string())
            } else {
                c.get::<Option<String>, _>("dflt_value").map(|d| normalize_default(&d))
            };
            let fact = column_fact(&sqlite_type_class(&declared), rowid || c.get::<i64, _>("not_null") != 0, default);
            schema.insert(format!("column {table}.{name}"), fact);
        }
        if !primary_key.is_empty() {
            schema.insert(format!("primary key of {table}"), format!("({})", primary_key.join(", ")));
        }

        let indexes = sqlx::query("SELECT name, \"unique\" AS is_unique, origin, partial FROM pragma_index_list($1)")
            .bind(table)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for index in &indexes {
            let name: String = index.get("name");
            let origin: String = index.get("origin");
            let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                .bind(&name)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<Option<String>, _>("name").unwrap_or_else(|| "<expression>".into()))
                .collect();
            match origin.as_str() {
                // the primary key's own index (composite keys); the key is compared above
                "pk" => {}
                "u" => {
                    schema.insert(format!("unique constraint {table}({})", columns.join(", ")), "exists".into());
                }
                _ => {
                    let fact = index_fact(
                        table,
                        &columns,
                        index.get::<i64, _>("is_unique") != 0,
                        index.get::<i64, _>("partial") != 0,
                    );
                    schema.insert(format!("index {name}"), fact);
                }
            }
        }

        let foreign_keys = sqlx::query(
            "SELECT id, \"table\" AS ref_table, \"from\" AS from_column, \"to\" AS to_column, on_delete, on_update \
             FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (String, Vec<String>, Vec<String>, String)> = BTreeMap::new();
        for fk in &foreign_keys {
            let entry = by_id.entry(fk.get("id")).or_insert_with(|| {
                let actions = format!(
                    "ON DELETE {} ON UPDATE {}",
                    fk.get::<String, _>("on_delete"),
                    fk.get::<String, _>("on_update")
                );
                (fk.get("ref_table"), Vec::new(), Vec::new(), actions)
            });
            entry.1.push(fk.get("from_column"));
            // NULL when the key names no column: it then references the parent's primary key
            entry.2.push(fk.get::<Option<String>, _>("to_column").unwrap_or_else(|| "<primary key>".into()));
        }
        for (ref_table, from, to, actions) in by_id.into_values() {
            schema
                .insert(format!("foreign key {table}({}) -> {ref_table}({})", from.join(", "), to.join(", ")), actions);
        }
    }
    conn.close().await.unwrap();
    schema
}

/// `pg_constraint` action codes as SQLite spells them.
fn postgres_action(code: &str) -> &'static str {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "?",
    }
}

async fn postgres_schema(url: &str) -> Schema {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut schema = Schema::new();
    let tables = sqlx::query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for t in &tables {
        schema.insert(format!("table {}", t.get::<String, _>("name")), "exists".into());
    }

    let columns = sqlx::query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, data_type::text AS data_type, \
                is_nullable::text AS is_nullable, column_default::text AS column_default, \
                is_identity::text AS is_identity \
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for c in &columns {
        let default: Option<String> = c.get("column_default");
        let default = if c.get::<String, _>("is_identity") == "YES"
            || default.as_deref().is_some_and(|d| d.starts_with("nextval("))
        {
            Some("auto-increment".to_string())
        } else {
            default.map(|d| normalize_default(&d))
        };
        let fact =
            column_fact(&postgres_type_class(c.get("data_type")), c.get::<String, _>("is_nullable") == "NO", default);
        schema
            .insert(format!("column {}.{}", c.get::<String, _>("table_name"), c.get::<String, _>("column_name")), fact);
    }

    // Column names of a constraint's or index's key, in key order.
    const KEY_COLUMNS: &str = "ARRAY(SELECT COALESCE(a.attname::text, '<expression>') \
         FROM unnest({keys}) WITH ORDINALITY k(attnum, n) \
         LEFT JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum ORDER BY k.n)";
    let key_columns = |keys: &str, rel: &str| KEY_COLUMNS.replace("{keys}", keys).replace("{rel}", rel);

    let constraints = sqlx::query(&format!(
        "SELECT c.contype::text AS kind, t.relname::text AS table_name, r.relname::text AS ref_table, \
                {} AS columns, {} AS ref_columns, c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
              JOIN pg_namespace ns ON ns.oid = t.relnamespace LEFT JOIN pg_class r ON r.oid = c.confrelid \
         WHERE ns.nspname = 'public' AND t.relname <> '_sqlx_migrations' AND c.contype IN ('p', 'u', 'f')",
        key_columns("c.conkey", "c.conrelid"),
        key_columns("c.confkey", "c.confrelid"),
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for c in &constraints {
        let table: String = c.get("table_name");
        let columns: Vec<String> = c.get("columns");
        match c.get::<String, _>("kind").as_str() {
            "p" => {
                schema.insert(format!("primary key of {table}"), format!("({})", columns.join(", ")));
            }
            "u" => {
                schema.insert(format!("unique constraint {table}({})", columns.join(", ")), "exists".into());
            }
            _ => {
                let ref_columns: Vec<String> = c.get("ref_columns");
                schema.insert(
                    format!(
                        "foreign key {table}({}) -> {}({})",
                        columns.join(", "),
                        c.get::<String, _>("ref_table"),
                        ref_columns.join(", ")
                    ),
                    format!(
                        "ON DELETE {} ON UPDATE {}",
                        postgres_action(c.get("on_delete")),
                        postgres_action(c.get("on_update"))
                    ),
                );
            }
        }
    }

    // Indexes made by CREATE INDEX: every index except those backing a primary key or unique
    // constraint of its own table (compared above as constraints).
    let indexes = sqlx::query(&format!(
        "SELECT i.relname::text AS name, t.relname::text AS table_name, ix.indisunique AS is_unique, \
                ix.indpred IS NOT NULL AS partial, {} AS columns \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid \
              JOIN pg_namespace ns ON ns.oid = t.relnamespace \
         WHERE ns.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid \
                           AND c.conrelid = ix.indrelid AND c.contype IN ('p', 'u'))",
        key_columns("ix.indkey::int2[]", "ix.indrelid"),
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for index in &indexes {
        let columns: Vec<String> = index.get("columns");
        let fact = index_fact(index.get("table_name"), &columns, index.get("is_unique"), index.get("partial"));
        schema.insert(format!("index {}", index.get::<String, _>("name")), fact);
    }
    conn.close().await.unwrap();
    schema
}

/// Every difference between the two schemas, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for (key, fact) in sqlite {
        match postgres.get(key) {
            None => out.push(format!("{key}: only on SQLite ({fact})")),
            Some(other) if other != fact => out.push(format!("{key}: SQLite has {fact}, Postgres has {other}")),
            Some(_) => {}
        }
    }
    for (key, fact) in postgres {
        if !sqlite.contains_key(key) {
            out.push(format!("{key}: only on Postgres ({fact})"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_match() {
    let Some(pg) = TestDb::new(Kind::Postgres).await else { return };
    let lite = TestDb::new(Kind::Sqlite).await.unwrap();
    migrate(&lite).await.close().await;
    migrate(&pg).await.close().await;
    let sqlite = sqlite_schema(&lite.url).await;
    let postgres = postgres_schema(&pg.url).await;

    // The comparison must have something to compare: every table the store queries is there.
    for table in ["projects", "api_keys", "prompts", "samples", "spans", "traces", "model_sessions"] {
        assert!(sqlite.contains_key(&format!("table {table}")), "table {table} missing: {sqlite:#?}");
    }
    for kind in ["column ", "primary key of ", "unique constraint ", "index ", "foreign key "] {
        assert!(sqlite.keys().any(|k| k.starts_with(kind)), "no `{kind}` found on SQLite: {sqlite:#?}");
        assert!(postgres.keys().any(|k| k.starts_with(kind)), "no `{kind}` found on Postgres: {postgres:#?}");
    }
    // the one intended difference: present on SQLite, gone on Postgres
    let mut sqlite = sqlite;
    for key in FOREIGN_KEYS_ONLY_ON_SQLITE {
        assert!(sqlite.remove(key).is_some(), "SQLite lacks {key}: update FOREIGN_KEYS_ONLY_ON_SQLITE");
        assert!(!postgres.contains_key(key), "Postgres has {key} again: update FOREIGN_KEYS_ONLY_ON_SQLITE");
    }
    let diff = differences(&sqlite, &postgres);
    assert!(diff.is_empty(), "the SQLite and Postgres migrations differ:\n  {}", diff.join("\n  "));
}

/// Keys Postgres migration 0013 dropped from the tables written per ingested item (a check
/// there locks the parent row); SQLite keeps them. The ids come from rows the same transaction
/// read or created, and nothing deletes those parents.
const FOREIGN_KEYS_ONLY_ON_SQLITE: [&str; 7] = [
    "foreign key samples(project_id) -> projects(id)",
    "foreign key samples(prompt_id) -> prompts(id)",
    "foreign key spans(project_id) -> projects(id)",
    "foreign key spans(resource_id) -> otel_resources(id)",
    "foreign key traces(project_id) -> projects(id)",
    "foreign key log_records(project_id) -> projects(id)",
    "foreign key log_records(resource_id) -> otel_resources(id)",
];

#[test]
fn defaults_normalize_alike() {
    assert_eq!(normalize_default("'a'::text"), normalize_default("'a'"));
    assert_eq!(normalize_default("'-1'::integer"), normalize_default("-1"));
    assert_eq!(normalize_default("0.7"), normalize_default("0.7"));
    assert_eq!(normalize_default("(30)"), "30");
    assert_ne!(normalize_default("'1'"), normalize_default("'a'"));
}

/// The migration files of one backend up to `last` (inclusive), copied into `dir`: the
/// database an older server version left behind.
fn migrations_up_to(kind: Kind, last: i64, dir: &std::path::Path) -> std::path::PathBuf {
    let folder = match kind {
        Kind::Sqlite => "sqlite",
        Kind::Postgres => "postgres",
    };
    let out = dir.join(format!("migrations_{folder}_{last}"));
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(common::repo_root().join("migrations").join(folder)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version <= last {
            std::fs::copy(&path, out.join(&name)).unwrap();
        }
    }
    out
}

async fn any_pool(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = match db.kind {
        Kind::Sqlite => format!("{}?mode=rwc", db.url),
        Kind::Postgres => db.url.clone(),
    };
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.unwrap()
}

fn span(trace: &str, span: &str, input: Option<i64>, output: Option<i64>) -> NewSpan {
    NewSpan {
        trace_id: trace.into(),
        span_id: span.into(),
        name: "llm".into(),
        start_ms: 1_000,
        end_ms: 2_000,
        duration_ms: 1_000,
        usage: TokenUsage { input, output, total: None },
        ..Default::default()
    }
}

const MAX: i64 = i64::MAX;

/// trace, span, session, input, output and total tokens of a span stored by an old version
type OldSpan = (&'static str, &'static str, &'static str, Option<i64>, Option<i64>, Option<i64>);

both_backends!(token_bounds, |db: TestDb| async move {
    // A database as the previous version left it, with token counts it did not check.
    let old = sqlx::migrate::Migrator::new(migrations_up_to(db.kind, 3, &db.dir)).await.unwrap();
    let pool = any_pool(&db).await;
    old.run(&pool).await.unwrap();
    sqlx::query("INSERT INTO projects (name, created_at) VALUES ('old', 0)").execute(&pool).await.unwrap();
    let insert_span = "INSERT INTO spans (project_id, trace_id, span_id, source, name, start_ms, end_ms, \
            duration_ms, status, attributes, received_at, config_key, session_id, input_tokens, output_tokens, \
            total_tokens) \
         VALUES (1, $1, $2, 'otlp', 'llm', 0, 1, 1, 'OK', '{}', 0, 'cfg', $3, $4, $5, $6)";
    let old_spans: [OldSpan; 5] = [
        ("t1", "a", "s1", Some(5), Some(-3), Some(MAX)),
        ("t1", "b", "s1", Some(1_000_000_000_000), Some(1_000_000_000_001), Some(7)),
        ("t2", "a", "s1", Some(-1), None, None),
        ("t3", "a", "s2", Some(MAX), Some(2), Some(3)),
        ("t3", "b", "s2", Some(MAX), Some(4), None),
    ];
    for (trace, span, session, input, output, total) in old_spans {
        sqlx::query(insert_span)
            .bind(trace)
            .bind(span)
            .bind(session)
            .bind(input)
            .bind(output)
            .bind(total)
            .execute(&pool)
            .await
            .unwrap();
    }
    // rollups as an unchecked version could have left them (a wrapped sum is negative)
    sqlx::query(
        "INSERT INTO traces (project_id, trace_id, start_ms, end_ms, span_count, error_count, input_tokens, \
            output_tokens) VALUES (1, 't1', 0, 1, 2, 0, -99, -99), (1, 't2', 0, 1, 1, 0, -1, NULL), \
            (1, 't3', 0, 1, 2, 0, -2, 6)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // The new version migrates (0004) and reads everything back.
    let store = migrate(&db).await;
    let project = store.ensure_project("old").await.unwrap();
    let t1 = store.trace_spans(project, "t1", 10, None).await.unwrap();
    let usage: Vec<TokenUsage> = t1.iter().map(|s| s.span.usage.clone()).collect();
    assert_eq!(
        usage,
        [
            TokenUsage { input: Some(5), output: None, total: None },
            TokenUsage { input: Some(1_000_000_000_000), output: None, total: Some(7) },
        ]
    );
    let filter = SpanFilter { limit: 10, ..Default::default() };
    let traces: BTreeMap<String, (Option<i64>, Option<i64>)> = store
        .trace_summaries(project, &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.trace_id, (t.input_tokens, t.output_tokens)))
        .collect();
    let expected: BTreeMap<String, (Option<i64>, Option<i64>)> = [
        ("t1".to_string(), (Some(1_000_000_000_005), None)),
        ("t2".to_string(), (None, None)),
        ("t3".to_string(), (None, Some(6))),
    ]
    .into();
    assert_eq!(traces, expected, "rollups are rebuilt from the cleaned spans");

    // A stored rollup near the maximum saturates instead of failing the next batch.
    let pool = any_pool(&db).await;
    sqlx::query("UPDATE traces SET input_tokens = $1, output_tokens = $2 WHERE trace_id = 't1'")
        .bind(MAX - 10)
        .bind(MAX - 1_000_000_000_000)
        .execute(&pool)
        .await
        .unwrap();
    let batch = [span("t1", "c", Some(1_000_000_000_000), Some(1_000_000_000_000)), span("t1", "d", Some(1), None)];
    store
        .insert_spans(project, batch.to_vec(), IngestOptions { capture_content: true, max_text_chars: 10_000 })
        .await
        .unwrap();
    let t1 = store.trace_summaries(project, &filter).await.unwrap().into_iter().find(|t| t.trace_id == "t1").unwrap();
    assert_eq!((t1.input_tokens, t1.output_tokens), (Some(MAX), Some(MAX)));
    assert_eq!(t1.span_count, 4);

    // Summaries add up spans stored at the maximum (written past every check) without failing:
    // s2's spans in t3 hold MAX twice after this.
    sqlx::query("UPDATE spans SET input_tokens = $1 WHERE trace_id = 't3'").bind(MAX).execute(&pool).await.unwrap();
    pool.close().await;
    for (session, model) in [("s1", "small"), ("s2", "large")] {
        let assignment =
            SessionAssignment { config_key: "cfg", config_version: 1, session_id: session, assigned_model: model };
        store.record_session(project, &assignment).await.unwrap();
    }
    let summary: BTreeMap<String, (i64, Option<i64>, Option<i64>)> = store
        .variant_summaries(project, "cfg", None)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.model, (v.spans, v.input_tokens, v.output_tokens)))
        .collect();
    let expected: BTreeMap<String, (i64, Option<i64>, Option<i64>)> =
        [("large".to_string(), (2, Some(MAX), Some(6))), ("small".to_string(), (3, Some(1_000_000_000_005), None))]
            .into();
    assert_eq!(summary, expected);
    store.close().await;
});

// Migration 0014 gives every stored trace the time the server received it, from the best time
// stored: its spans' latest arrival, else (a trace with no span left) its start time.
both_backends!(traces_get_their_arrival_time_from_their_spans, |db: TestDb| async move {
    let old = sqlx::migrate::Migrator::new(migrations_up_to(db.kind, 13, &db.dir)).await.unwrap();
    let pool = any_pool(&db).await;
    old.run(&pool).await.unwrap();
    sqlx::query("INSERT INTO projects (name, created_at) VALUES ('old', 0)").execute(&pool).await.unwrap();
    for (span, received_at) in [("a", 5_000_i64), ("b", 7_000)] {
        sqlx::query(
            "INSERT INTO spans (project_id, trace_id, span_id, source, name, start_ms, end_ms, duration_ms, status, \
                attributes, received_at) VALUES (1, 't1', $1, 'otlp', 'llm', 100, 200, 100, 'OK', '{}', $2)",
        )
        .bind(span)
        .bind(received_at)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO traces (project_id, trace_id, start_ms, end_ms, span_count, error_count) \
         VALUES (1, 't1', 100, 200, 2, 0), (1, 't2', 1234, 1300, 1, 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = migrate(&db).await;
    store.close().await;
    let pool = any_pool(&db).await;
    let arrivals: BTreeMap<String, i64> = sqlx::query("SELECT trace_id, received_at FROM traces ORDER BY trace_id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("trace_id").unwrap(), r.try_get("received_at").unwrap()))
        .collect();
    assert_eq!(arrivals, BTreeMap::from([("t1".to_string(), 7_000), ("t2".to_string(), 1234)]));
    pool.close().await;
});
