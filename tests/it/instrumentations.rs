//! Real OpenTelemetry LLM instrumentations from PyPI trace the real `openai` client calling a
//! stub that answers known completions (tests/sdk/instrumentations.py), and export with the real
//! OTLP/HTTP span and log exporters: each call's span has its model and usage and gives exactly
//! one drift sample equal to the completion, also when the content comes only as log records
//! (openai-v2's default mode and its latest-conventions `event_only` mode). With content
//! capture off, no completion is stored anywhere.

use crate::common::{database_contains, run_sdk_script_with, TestDb, TestServer};

async fn calls_become_spans_and_samples(db: TestDb, setup: &str) {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    run_sdk_script_with(
        "instrumentations.py",
        &[setup],
        &[("DRIFTBALLOON_URL", server.base.as_str()), ("DRIFTBALLOON_API_KEY", key.as_str())],
    );
    server.assert_no_server_errors();
}

both_backends!(openai_v2_default_mode_with_content_in_log_events, |db: TestDb| async move {
    calls_become_spans_and_samples(db, "openai-v2-events").await;
});

both_backends!(openai_v2_latest_conventions_with_content_in_one_details_event, |db: TestDb| async move {
    calls_become_spans_and_samples(db, "openai-v2-details").await;
});

both_backends!(openai_v2_with_content_in_span_attributes, |db: TestDb| async move {
    calls_become_spans_and_samples(db, "openai-v2-spans").await;
});

both_backends!(openinference_openai, |db: TestDb| async move {
    calls_become_spans_and_samples(db, "openinference").await;
});

both_backends!(openllmetry_openai, |db: TestDb| async move {
    calls_become_spans_and_samples(db, "openllmetry").await;
});

both_backends!(no_completion_is_stored_with_content_capture_off, |db: TestDb| async move {
    let server = TestServer::start(&db, &[]);
    let key = server.first_key.clone().unwrap();
    for setup in ["openai-v2-events", "openai-v2-details", "openai-v2-spans", "openinference", "openllmetry"] {
        run_sdk_script_with(
            "instrumentations.py",
            &[setup, "--privacy"],
            &[("DRIFTBALLOON_URL", server.base.as_str()), ("DRIFTBALLOON_API_KEY", key.as_str())],
        );
    }
    assert_eq!(database_contains(&db, "STUB-COMPLETION").await, Vec::<String>::new());
    assert_eq!(database_contains(&db, "Where is parcel").await, Vec::<String>::new(), "the questions neither");
    server.assert_no_server_errors();
});
