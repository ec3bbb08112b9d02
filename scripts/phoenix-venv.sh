#!/usr/bin/env bash
# Creates (once) the venv for the OTLP span-ingest comparison against Arize Phoenix
# (scripts/otlp_compare.py): Phoenix itself, pinned so that runs stay comparable, plus the
# OTLP protobuf classes the load driver builds its bodies with. The driver posts over bare
# asyncio streams, so it needs no HTTP client package.
set -euo pipefail
venv="${1:-.venv-phoenix}"
stamp="$venv/.driftballoon-phoenix-1"
[ -f "$stamp" ] && exit 0
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  arize-phoenix==20.26.1 opentelemetry-proto protobuf
touch "$stamp"
echo "phoenix venv ready at $venv"
