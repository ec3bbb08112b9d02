#!/usr/bin/env bash
# Runs the test suite with the clock a year ahead (issue 29): libfaketime, from Debian's
# `faketime` package, moves the clock of the server and of the Rust tests by +365 days, so any
# test whose outcome depends on the calendar (a fixed date that retention, a time window or a
# cursor can see) fails here today rather than in CI next year. The Python SDKs and helpers run
# at the real clock (tests/it/common/mod.rs `python()` drops the preload: CPython's socket servers
# stop answering with libfaketime loaded), i.e. as clients whose clock is a year behind.
# Not part of `make test` (it runs the whole suite a second time); run it after changing how
# tests or the server handle time. Needs what `make test` needs (models, venv, Postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v faketime >/dev/null; then
    apt-get install -y faketime
fi
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export DRIFTBALLOON_REQUIRE_POSTGRES=1
# build at the real clock first, so Cargo's freshness checks never see a file from "the past"
cargo test --no-run --lib --tests
faketime -m -f '+365d' date
# Left out: the alert tests whose receiver checks Standard Webhooks signatures with the
# `standardwebhooks` package at the real clock. It refuses a message timestamped more than five
# minutes from its own clock ("Message timestamp too new"), as it should: here the server is a
# year ahead of it, which no real deployment a year from now would be.
verified_by_a_real_clock=(
    an_alert_committed_before_a_crash_is_delivered_after_restart
    drift_reaches_a_verifying_receiver_once_with_its_explanation
    drift_resolved_once_the_old_answers_return
    retries_keep_the_webhook_id_rotation_signs_twice_and_410_disables
    two_replicas_on_one_postgres_deliver_each_event_once
)
skips=()
for name in "${verified_by_a_real_clock[@]}"; do
    skips+=(--skip "$name")
done
faketime -m -f '+365d' cargo test --lib --tests "$@" -- "${skips[@]}"
