//! The real Python SDKs, installed from the package index into `.venv-sdk` by
//! `scripts/sdk-venv.sh` (run by `make test`), driven against a real server.

mod common;

use common::{repo_root, TestDb, TestServer};

/// Runs one SDK script against the server; fails the test with the script's output.
pub fn run_sdk_script(script: &str, env: &[(&str, &str)]) {
    let python = repo_root().join(".venv-sdk/bin/python");
    assert!(python.exists(), "{} missing: run `make test` (or scripts/sdk-venv.sh) first", python.display());
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/sdk").join(script))
        .envs(env.iter().copied())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    println!("{stdout}");
}

both_backends!(driftballoon_sdk_logs_arrive, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script("driftballoon_e2e.py", &[("DRIFTBALLOON_API_KEY", &key), ("DRIFTBALLOON_BASE_URL", &server.base)]);
    server.assert_no_server_errors();
});
