#!/usr/bin/env bash
# Creates (once) the Python virtualenv the SDK end-to-end tests use, with the real client SDKs
# installed from the package index at pinned versions. Idempotent: a complete venv is reused.
set -euo pipefail
venv="${1:-.venv-sdk}"
stamp="$venv/.driftballoon-sdk-1"
if [ -f "$stamp" ]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    driftballoon==0.2.1 \
    httpx
touch "$stamp"
echo "SDK venv ready at $venv"
