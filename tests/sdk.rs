//! The real Python SDKs, installed from the package index into `.venv-sdk` by
//! `scripts/sdk-venv.sh` (run by `make test`), driven against a real server.

mod common;

use common::{run_sdk_script, TestDb, TestServer};

both_backends!(driftballoon_sdk_logs_arrive, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script("driftballoon_e2e.py", &[("DRIFTBALLOON_API_KEY", &key), ("DRIFTBALLOON_BASE_URL", &server.base)]);
    server.assert_no_server_errors();
});
