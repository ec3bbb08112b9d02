#!/usr/bin/env bash
# OTLP span ingest side by side with Arize Phoenix, in one run (BENCHMARKS.md, "Span ingest").
# The same load (scripts/otlp_compare.py: 100 OpenInference LLM spans with content per request,
# 4 connections, closed loop, 30 s) goes to a release driftballoon at its defaults, worker on,
# on SQLite and on Postgres, then to Phoenix on its SQLite default; the stored spans are counted
# in each database and the rates are given as ratios to Phoenix's.
#   scripts/bench-otlp-compare.sh            (needs `make models`, scripts/quality-data.sh,
#                                             scripts/phoenix-venv.sh .venv-phoenix)
# Env: BENCH_SECONDS (30), BENCH_CONNECTIONS (4), PG_ADMIN_URL (the local Postgres),
# BENCH_TARGETS ("sqlite,postgres,phoenix"; a subset skips the others and their ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${BENCH_SECONDS:-30}"
connections="${BENCH_CONNECTIONS:-4}"
pg_admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
targets=",${BENCH_TARGETS:-sqlite,postgres,phoenix},"
wanted() { [[ "$targets" == *",$1,"* ]]; }
py=.venv-phoenix/bin/python
[ -x "$py" ] || { echo "run scripts/phoenix-venv.sh .venv-phoenix first" >&2; exit 1; }
cargo build --release --quiet
bin="$PWD/target/release/driftballoon"
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_ours NAME DATABASE_URL: starts the server on a fresh database, loads it, counts what it
# stored (spans, and drift samples taken from them) and writes $results/NAME.json.
run_ours() {
  local name=$1 url=$2 dir port pid key
  dir=$(mktemp -d)
  port=$(free_port)
  (cd "$dir" && DATABASE_URL="$url" DRIFTBALLOON_LISTEN="127.0.0.1:$port" \
    DRIFTBALLOON_MODEL_DIR="$OLDPWD/models" RUST_LOG=warn exec "$bin" serve) > "$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
    sleep 0.1
  done
  key=$(cat "$dir/data/first-api-key")
  "$py" scripts/otlp_compare.py post --url "http://127.0.0.1:$port/v1/traces" \
    --header "Authorization: Bearer $key" --seconds "$seconds" --connections "$connections" > "$dir/post.json"
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true
  local counts
  if [[ "$url" == sqlite* ]]; then
    counts=$("$py" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(*[c.execute(q).fetchone()[0] for q in ("SELECT COUNT(*) FROM spans","SELECT COUNT(*) FROM samples")])' "${url#sqlite://}")
  else
    counts=$(psql -Atq "$url" -c "SELECT (SELECT COUNT(*) FROM spans) || ' ' || (SELECT COUNT(*) FROM samples)")
  fi
  "$py" - "$dir/post.json" "$counts" "$rss" "$seconds" > "$results/$name.json" <<'EOF'
import json, sys
post = json.load(open(sys.argv[1]))
spans, samples = map(int, sys.argv[2].split())
post.update(stored=spans, samples=samples, peak_rss_mib=int(sys.argv[3]) / 1024,
            stored_per_s=spans / float(sys.argv[4]))
print(json.dumps(post))
EOF
  rm -rf "$dir"
}

if wanted sqlite; then
  sqlite_dir=$(mktemp -d)
  run_ours sqlite "sqlite://$sqlite_dir/bench.db"
  rm -rf "$sqlite_dir"
fi
if wanted postgres; then
  pg_db="bench_otlp_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $pg_db"
  run_ours postgres "${pg_admin%/*}/$pg_db"
  psql -q "$pg_admin" -c "DROP DATABASE $pg_db"
fi
if wanted phoenix; then
  "$py" scripts/otlp_compare.py phoenix --seconds "$seconds" --connections "$connections" --settle-cap 300 \
    > "$results/phoenix.json"
fi

"$py" - "$results" <<'EOF'
import json, sys
from pathlib import Path
r = {p.stem: json.loads(p.read_text()) for p in Path(sys.argv[1]).glob("*.json")}
ph = r.get("phoenix")
ph_window = ph["stored_spans_per_s"] if ph else None
ph_sustained = ph["stored_final_spans_per_s_incl_drain"] if ph else None
ratio = lambda ours, theirs: f"{ours / max(theirs, 1e-9):,.0f}x" if theirs is not None else "-"
print("| server | stored spans/s | drift samples | peak RSS | vs Phoenix (stored in the window) | vs Phoenix (incl. its drain) |")
print("|---|---:|---:|---:|---:|---:|")
for n in ("sqlite", "postgres"):
    if n not in r:
        continue
    o = r[n]
    print(f"| driftballoon, {n} | {o['stored_per_s']:,.0f} | {o['samples']:,} of {o['stored']:,} spans | "
          f"{o['peak_rss_mib']:.0f} MiB | {ratio(o['stored_per_s'], ph_window)} | "
          f"{ratio(o['stored_per_s'], ph_sustained)} |")
if ph:
    print(f"| Phoenix {ph['phoenix_version']}, SQLite | {ph_window:,.1f} in the window; {ph_sustained:,.1f} "
          f"including its drain ({ph['stored_final']:,} stored, {ph['settle_s']} s after the window) | | | | |")
print()
print(json.dumps(r, indent=1))
EOF
