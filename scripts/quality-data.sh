#!/usr/bin/env bash
# Fetch the real-text packages (Debian fortune collections, chatterbot-corpus,
# source/config files of Debian packages) into bench-data/cache/ and build
# bench-data/streams/*.txt and bench-data/manifest.json for
# scripts/quality_bench.py. Idempotent; offline once the cache is filled.
#
# Usage: scripts/quality-data.sh [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "quality-data: $tool is required" >&2; exit 1; }
done
python3 scripts/behaviour_data.py "$@"
exec python3 scripts/quality_data.py "$@"
