//! The real Python SDKs, installed from the package index into `.venv-sdk` by
//! `scripts/sdk-venv.sh` (run by `make test`), driven against a real server.

use crate::common::{run_sdk_script, run_sdk_script_with, TestDb, TestServer};

both_backends!(driftballoon_sdk_logs_arrive, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script("driftballoon_e2e.py", &[("DRIFTBALLOON_API_KEY", &key), ("DRIFTBALLOON_BASE_URL", &server.base)]);
    server.assert_no_server_errors();
});

both_backends!(fallom_sdk_models_traces_metrics_prompts, |db: TestDb| async move {
    // At the server's defaults: the script's burst of 10,000 session assignments (each a POST
    // from its own thread) is followed by 1,000 pinned config lookups, which fair-share
    // admission must never refuse because of that burst (a fixed per-key rate once did, and the
    // SDK raised ValueError).
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script_with("fallom_e2e.py", &["main"], &[("FALLOM_API_KEY", &key), ("SERVER_URL", &server.base)]);
    server.assert_no_server_errors();
});

both_backends!(fallom_sdk_privacy_mode_sends_and_stores_no_content, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script_with(
        "fallom_e2e.py",
        &["privacy"],
        &[("FALLOM_API_KEY", &key), ("SERVER_URL", &server.base), ("FALLOM_CAPTURE_CONTENT", "false")],
    );
    server.assert_no_server_errors();
});

#[test]
fn fallom_sdk_falls_back_within_2_5_s_when_the_server_is_down() {
    run_sdk_script_with("fallom_e2e.py", &["down"], &[("FALLOM_API_KEY", "db_sk_unused")]);
}

both_backends!(opentelemetry_otlp_exporter_spans_become_traces_and_drift_samples, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script("otel_e2e.py", &[("API_KEY", &key), ("SERVER_URL", &server.base)]);
    server.assert_no_server_errors();
});
