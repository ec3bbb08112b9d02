//! Key scopes: an `ingest` key (what an app embeds) can do what SDKs and exporters do and
//! nothing else. Every operation the OpenAPI document marks `admin` is refused for an ingest key
//! with 403, and every operation it marks `ingest` is not; the dashboard refuses to sign in with
//! one. Keys made before scopes stay admin (the first-start key is admin). The first-start key is
//! never logged: it is in a file only the server's user can read.

use crate::common;
use std::os::unix::fs::PermissionsExt;

use crate::common::{run_cli, TestDb, TestServer};
use serde_json::{json, Value};

fn key_with_scope(db: &TestDb, scope: &str) -> String {
    let (code, stdout, stderr) = run_cli(db, &["keys", "create", "--project", "default", "--scope", scope], &[]);
    assert_eq!(code, 0, "keys create failed: {stderr}");
    assert!(stdout.contains(&format!("created an {scope} API key")), "{stdout}");
    stdout.lines().last().unwrap().trim().to_string()
}

/// Each operation of the served document: (method, path with its parameters filled, scope).
async fn operations(server: &TestServer) -> Vec<(String, String, Option<String>)> {
    let doc: Value = server.http.get(server.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let scopes: Vec<&str> = op["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|requirement| requirement.as_object().unwrap().values())
                .flat_map(|roles| roles.as_array().unwrap().iter().map(|r| r.as_str().unwrap()))
                .collect();
            // every scheme of an operation names the same scope
            assert!(scopes.windows(2).all(|w| w[0] == w[1]), "{method} {path}: {scopes:?}");
            // "1" is a valid value of every path parameter (ids, names, keys, versions)
            let filled: String = path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "1" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            out.push((method.to_uppercase(), filled, scopes.first().map(|s| s.to_string())));
        }
    }
    out
}

async fn call(server: &TestServer, key: &str, method: &str, path: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = server.http.request(method.clone(), server.url(path)).bearer_auth(key);
    if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
        request = request.json(&json!({}));
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

both_backends!(an_ingest_key_can_only_ingest, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let admin = server.first_key.clone().unwrap();
    let ingest = key_with_scope(&db, "ingest");

    let ops = operations(&server).await;
    let admin_ops: Vec<_> = ops.iter().filter(|(_, _, s)| s.as_deref() == Some("admin")).collect();
    let ingest_ops: Vec<_> = ops.iter().filter(|(_, _, s)| s.as_deref() == Some("ingest")).collect();
    assert!(admin_ops.len() >= 30 && ingest_ops.len() == 10, "{} admin, {} ingest", admin_ops.len(), ingest_ops.len());
    for (method, path, _) in &admin_ops {
        let (status, body) = call(&server, &ingest, method, path).await;
        assert_eq!(status, 403, "{method} {path} with an ingest key: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
        assert_eq!(body["error"]["details"], json!({"required_scope": "admin", "key_scope": "ingest"}));
        let (status, body) = call(&server, &admin, method, path).await;
        assert!(status != 403 && status != 401, "{method} {path} with an admin key: {status} {body}");
    }
    for (method, path, _) in &ingest_ops {
        let (status, body) = call(&server, &ingest, method, path).await;
        assert!(status != 403 && status != 401, "{method} {path} with an ingest key: {status} {body}");
    }

    // what an SDK does with it works end to end
    let (status, body) = server
        .post_logs(
            &ingest,
            &json!({"logs": [{"prompt_name": "support", "response_text": "Your refund is on its way."}]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = server.get(&ingest, "/api/v1/config").await;
    assert_eq!(status, 200);

    // the dashboard needs an admin key
    let form = [("api_key", ingest.as_str())];
    let resp = server.http.post(server.url("/ui/sign-in")).header("origin", &server.base).form(&form).send().await;
    let resp = resp.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().await.unwrap().contains("needs an admin key"));

    // keys list names each key's scope; the first-start key is admin
    let (code, stdout, _) = run_cli(&db, &["keys", "list"], &[]);
    assert_eq!(code, 0);
    let scopes: Vec<&str> = stdout.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(scopes, ["admin", "ingest"], "{stdout}");
    let (code, _, stderr) = run_cli(&db, &["keys", "create", "--project", "p", "--scope", "root"], &[]);
    assert!(code != 0 && stderr.contains("use `ingest` or `admin`"), "{stderr}");
    server.assert_no_server_errors();
});

both_backends!(the_first_key_is_in_a_private_file_never_in_the_log, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let file = db.dir.join("data/first-api-key");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the server's user may read it");
    let log = server.log_text();
    assert!(log.contains("FIRST START") && log.contains(&file.strip_prefix(&db.dir).unwrap().display().to_string()));
    assert!(!log.contains(&key), "the key is in the log:\n{log}");
    let (status, _) = server.get(&key, "/api/v1/prompts").await;
    assert_eq!(status, 200, "the key in the file works");
    server.assert_no_server_errors();
});

both_backends!(keys_are_managed_over_rest_and_revoked_at_once, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let admin = server.first_key.clone().unwrap();
    let post = |key: &str, path: &str, body: Value| {
        let request = server.http.post(server.url(path)).bearer_auth(key).json(&body);
        async move { common::status_json(request.send().await.unwrap()).await }
    };

    let (status, created) = post(&admin, "/api/v1/keys", json!({"scope": "ingest"})).await;
    assert_eq!(status, 201, "{created}");
    let app_key = created["key"].as_str().unwrap().to_string();
    let prefix = created["prefix"].as_str().unwrap().to_string();
    assert!(app_key.starts_with(&prefix) && created["scope"] == "ingest" && created["revoked_at"].is_null());
    let (status, body) = post(&admin, "/api/v1/keys", json!({"scope": "owner", "name": "x"})).await;
    assert_eq!(status, 422, "{body}");

    // the new key works (and is now cached), but cannot manage keys
    let log = json!({"logs": [{"prompt_name": "p", "response_text": "hello"}]});
    assert_eq!(server.post_logs(&app_key, &log).await.0, 202);
    assert_eq!(post(&app_key, "/api/v1/keys", json!({"scope": "admin"})).await.0, 403);
    let (_, listed) = server.get(&admin, "/api/v1/keys").await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!listed.to_string().contains(&app_key), "a listed key shows only its prefix");

    // revoked here: refused at once, though it was cached a moment ago
    let (status, revoked) = post(&admin, &format!("/api/v1/keys/{prefix}/revoke"), json!({})).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_i64());
    assert_eq!(server.post_logs(&app_key, &log).await.0, 401);
    let (status, _) = post(&admin, &format!("/api/v1/keys/{prefix}/revoke"), json!({})).await;
    assert_eq!(status, 404, "already revoked");
    server.assert_no_server_errors();
});
