#!/usr/bin/env bash
# `make bench`: runs the performance benchmarks (ingest, spans, throughput, worker) on release
# builds and prints one table of their headline figures next to the targets.
#
# Before/after in one run: DRIFTBALLOON_BENCH_BEFORE=/path/to/an/older/driftballoon runs every
# benchmark first against that binary, then against this build, and the table has both columns.
# Env: BENCHES (default "ingest spans throughput worker"), and each benchmark's own options.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHES="${BENCHES:-ingest spans throughput worker}"
out="$(mktemp -d)"
cargo bench --no-run --quiet
for bench in $BENCHES; do
    if [ -n "${DRIFTBALLOON_BENCH_BEFORE:-}" ]; then
        echo "== $bench: before ($DRIFTBALLOON_BENCH_BEFORE)"
        DRIFTBALLOON_BENCH_BIN="$DRIFTBALLOON_BENCH_BEFORE" cargo bench --quiet --bench "$bench" | tee "$out/before-$bench.log"
    fi
    echo "== $bench: this build"
    DRIFTBALLOON_BENCH_BIN="" cargo bench --quiet --bench "$bench" | tee "$out/after-$bench.log"
done
python3 - "$out" "${DRIFTBALLOON_BENCH_BEFORE:+before}" <<'PY'
import glob, os, sys
out, with_before = sys.argv[1], sys.argv[2] == "before"
def read(which):
    rows = {}
    for path in sorted(glob.glob(os.path.join(out, f"{which}-*.log"))):
        for line in open(path, encoding="utf-8"):
            if line.startswith("SUMMARY|"):
                _, measure, value, target = line.rstrip("\n").split("|", 3)
                rows[measure] = (value, target)
    return rows
after = read("after")
before = read("before") if with_before else {}
print()
if with_before:
    print("| measure | before | this build | target |\n|---|---|---|---|")
else:
    print("| measure | this build | target |\n|---|---|---|")
for measure, (value, target) in after.items():
    if with_before:
        print(f"| {measure} | {before.get(measure, ('-',))[0]} | {value} | {target} |")
    else:
        print(f"| {measure} | {value} | {target} |")
PY
