//! The dashboard's sign-in over HTTP (the browser tests of the full dashboard come with its
//! screens): `/` sends strangers to sign in; a valid API key becomes an HttpOnly, SameSite=Strict
//! session cookie (Secure behind https); state-changing forms need the CSRF token and this
//! origin; sign-out and key revocation end the session; assets and the favicon are served.

use crate::common::texts::{biology_answer, support_answer};
use crate::common::{repo_root, run_cli, run_python, Kind, TestDb, TestServer};
use serde_json::json;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_string()
}

async fn sign_in(server: &TestServer, key: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(server.url("/ui/sign-in")).form(&[("api_key", key)]);
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// The session cookie (`db_session=...`) set by a response.
fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    (set.split(';').next().unwrap().to_string(), set)
}

async fn page(server: &TestServer, path: &str, cookie: &str) -> reqwest::Response {
    client().get(server.url(path)).header("cookie", cookie).send().await.unwrap()
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf_token\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

both_backends!(sign_in_session_csrf_and_sign_out, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();

    let resp = client().get(server.url("/")).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), location(&resp)), (303, "/ui/sign-in".to_string()));
    let resp = client().get(server.url("/ui/sign-in")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("name=\"api_key\"") && html.contains("/favicon.ico"), "{html}");

    // a wrong key is refused in the page, not as JSON
    let resp = sign_in(&server, "db_sk_wrong", &[]).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.text().await.unwrap().contains("not valid"));
    // a form posted from another site is refused
    let resp = sign_in(&server, &key, &[("origin", "https://evil.example")]).await;
    assert_eq!(resp.status().as_u16(), 403);

    let resp = sign_in(&server, &key, &[]).await;
    assert_eq!((resp.status().as_u16(), location(&resp)), (303, "/".to_string()));
    let (cookie, set) = session_cookie(&resp);
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
    let resp = sign_in(&server, &key, &[("x-forwarded-proto", "https")]).await;
    assert!(session_cookie(&resp).1.contains("; Secure"));

    let resp = page(&server, "/", &cookie).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // only this server's own scripts and styles; never framed by another site
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("No prompts yet") && html.contains("default"), "{html}");
    // prompt names are text, never markup
    let (status, _) = server
        .post_logs(&key, &serde_json::json!({"logs": [{"prompt_name": "<script>x</script>", "response_text": "hi"}]}))
        .await;
    assert_eq!(status, 202);
    let html = page(&server, "/", &cookie).await.text().await.unwrap();
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>x"), "{html}");

    // sign-out needs the form's CSRF token
    let csrf = csrf_of(&html);
    let resp = client()
        .post(server.url("/ui/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = client()
        .post(server.url("/ui/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!((resp.status().as_u16(), location(&resp)), (303, "/ui/sign-in".to_string()));
    assert!(session_cookie(&resp).1.contains("Max-Age=0"));
    let resp = page(&server, "/", &cookie).await;
    assert_eq!(resp.status().as_u16(), 303, "the old cookie is refused after sign-out");

    // revoking the key ends its sessions
    let resp = sign_in(&server, &key, &[]).await;
    let (cookie, _) = session_cookie(&resp);
    assert_eq!(page(&server, "/", &cookie).await.status().as_u16(), 200);
    let prefix: String = key.chars().take(14).collect();
    let (code, _, stderr) = run_cli(&db, &["keys", "revoke", &prefix], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(page(&server, "/", &cookie).await.status().as_u16(), 303);

    // assets: cached for long, compressed on request
    let resp = client().get(server.url("/favicon.ico")).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.headers()["content-type"].to_str().unwrap()), (200, "image/svg+xml"));
    let html = client().get(server.url("/ui/sign-in")).send().await.unwrap().text().await.unwrap();
    let css = html.split("rel=\"stylesheet\" href=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let resp = client().get(server.url(&css)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    server.assert_no_server_errors();
});

// The whole dashboard in real headless Chromium (tests/ui/dashboard.py with tests/ui/browser.py):
// a prompt watched from learning to drifted as real logs arrive, its chart and explanation,
// settings, reset, model configs, templates, a trace's waterfall, an alert channel, project
// settings, sign-out. axe-core finds nothing serious on any screen, the browser logs no error,
// and each screen is screenshot at both sizes into target/ui-screenshots/<backend>.
both_backends!(dashboard_in_a_browser, |db: TestDb| async move {
    for dep in ["/usr/bin/chromium", ".browser-deps/node_modules/axe-core/axe.min.js"] {
        let path = repo_root().join(dep);
        assert!(path.exists(), "{} missing: run `make browser-deps` (scripts/browser-deps.sh)", path.display());
    }
    let server = TestServer::start(
        &db,
        &[("DRIFTBALLOON_ALERTS_ALLOW_PRIVATE_NETWORKS", "true"), ("DRIFTBALLOON_ALERTS_POLL_INTERVAL_MS", "200")],
    );
    let key = server.first_key.clone().unwrap();
    let texts = json!({
        "support": (0..60).map(support_answer).collect::<Vec<_>>(),
        "biology": (0..60).map(biology_answer).collect::<Vec<_>>(),
    });
    let texts_file = db.dir.join("texts.json");
    std::fs::write(&texts_file, texts.to_string()).unwrap();
    let backend = if db.kind == Kind::Sqlite { "sqlite" } else { "postgres" };
    let shots = repo_root().join("target/ui-screenshots").join(backend);
    run_python(
        "tests/ui/dashboard.py",
        &[],
        &[
            ("DRIFTBALLOON_URL", server.base.as_str()),
            ("DRIFTBALLOON_API_KEY", key.as_str()),
            ("SCREENSHOT_DIR", shots.to_str().unwrap()),
            ("TEXTS_FILE", texts_file.to_str().unwrap()),
        ],
    );
    server.assert_no_server_errors();
});

// Once the baseline is ready and until a window of samples has been scored past it, the prompt
// page says what the first score waits for and how far it is, not that the baseline is not
// ready.
both_backends!(the_prompt_page_says_what_the_first_score_waits_for, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    let post = |texts: Vec<String>| {
        let logs: Vec<_> = texts.iter().map(|t| json!({"prompt_name": "waiting", "response_text": t})).collect();
        let server = &server;
        let key = key.clone();
        async move { assert_eq!(server.post_logs(&key, &json!({ "logs": logs })).await.0, 202) }
    };
    let signed_in = sign_in(&server, &key, &[]).await;
    let (cookie, _) = session_cookie(&signed_in);
    let text_of = |server: &TestServer, cookie: String| {
        let request = client().get(server.url("/ui/prompts/waiting")).header("cookie", cookie);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };

    for chunk in (0..30).collect::<Vec<_>>().chunks(10) {
        post(chunk.iter().map(|i| support_answer(*i)).collect()).await;
    }
    let prompt = server.wait_processed(&key, "waiting").await;
    assert_eq!(prompt["baseline_status"], "ready", "{prompt}");
    post((30..37).map(support_answer).collect()).await;
    server.wait_processed(&key, "waiting").await;
    let html = text_of(&server, cookie.clone()).await;
    assert!(html.contains("scores start after 20 samples past the baseline: 7/20"), "{html}");
    assert!(!html.contains("once the baseline is ready"), "{html}");
    server.assert_no_server_errors();
});
