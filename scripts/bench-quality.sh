#!/usr/bin/env bash
# Detection-quality benchmark, end to end: builds and starts a release server on a fresh SQLite
# database in a temp folder, drives it with scripts/quality_bench.py over HTTP (real corpora from
# scripts/quality-data.sh), prints the tables and stops the server.
#   scripts/bench-quality.sh [extra quality_bench.py args]
# Env: DRIFTBALLOON_EMBED_THREADS (default 2: the benchmark only measures detection).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
DATABASE_URL="sqlite://$work/quality.db" DRIFTBALLOON_LISTEN="127.0.0.1:$port" \
DRIFTBALLOON_FIRST_KEY_FILE="$work/first-api-key" \
DRIFTBALLOON_MODEL_DIR="$PWD/models" DRIFTBALLOON_EMBED_THREADS="${DRIFTBALLOON_EMBED_THREADS:-2}" \
    target/release/driftballoon serve 2> "$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    grep -q "listening on" "$work/server.log" && break
    sleep 0.1
done
# The server writes its first admin key to a file only this user can read (the log shows a prefix).
key="$(cat "$work/first-api-key")"
python3 scripts/quality_bench.py --base-url "http://127.0.0.1:$port" --api-key "$key" --data bench-data \
    --out "$work/quality-results.json" "$@"
echo "per-run results: $work/quality-results.json"
# Issue 31: the refusal recogniser on human-labelled responses, then the same runs' embeddings
# through Evidently's default embedding drift method and an offline MMD permutation test.
python3 scripts/refusal_recall.py --base-url "http://127.0.0.1:$port" --api-key "$key" --db "$work/quality.db" \
    --data bench-data
if [ -x .venv-compare/bin/python ]; then
    .venv-compare/bin/python scripts/behaviour_export.py --db "$work/quality.db" \
        --results "$work/quality-results.json" --out "$work/embeddings"
    .venv-compare/bin/python scripts/behaviour_compare.py --runs "$work/embeddings" \
        --out "$work/compare-results.json" --markdown "$work/compare-results.md"
    .venv-compare/bin/python scripts/mixture_bound.py --runs "$work/embeddings"
else
    echo "no .venv-compare (make bench-quality creates it): the offline comparison is skipped"
fi
