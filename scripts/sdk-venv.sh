#!/usr/bin/env bash
# Creates (once) the Python virtualenv the SDK end-to-end tests use, with the real client SDKs
# installed from the package index at pinned versions, plus the API conformance test's tools
# (schemathesis, openapi-spec-validator; see tests/contract/run_schemathesis.py), and standardwebhooks,
# the independent signature verifier of the alert tests (see tests/alerts/receiver.py), and
# playwright, which drives Debian's chromium in the dashboard's browser tests (see tests/ui/browser.py;
# its own browser downloads are never used: scripts/browser-deps.sh installs chromium), and the
# real OpenTelemetry LLM instrumentations with the openai client they trace (see
# tests/sdk/instrumentations.py), pinned to versions that share one opentelemetry-sdk, and
# prometheus-client, whose parser checks /metrics (see tests/sdk/parse_metrics.py).
# openai-v2's default mode (content in gen_ai.user.message / gen_ai.choice log records) exists only
# with opentelemetry-util-genai before 1.0 and openai 2.x, which cannot share the venv with the
# newer ones: they go into $venv/openai-v2-legacy, which instrumentations.py puts first on sys.path
# for that setup alone (--no-deps: everything else they need is in the venv already).
# Idempotent: a complete venv is reused; bump the stamp name when the package list changes.
set -euo pipefail
venv="${1:-.venv-sdk}"
stamp="$venv/.driftballoon-sdk-9"
if [ -f "$stamp" ]; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    driftballoon==0.2.1 \
    fallom==0.2.7 \
    opentelemetry-api==1.45.2 \
    opentelemetry-sdk==1.45.2 \
    opentelemetry-exporter-otlp-proto-http==1.45.2 \
    httpx \
    schemathesis==4.32.5 \
    openapi-spec-validator==0.9.0 \
    standardwebhooks==1.1.0 \
    openai==3.51.0 \
    opentelemetry-instrumentation-openai-v2==2.4b0 \
    opentelemetry-util-genai==1.1b0 \
    openinference-instrumentation-openai==0.1.66 \
    opentelemetry-instrumentation-openai==0.62.4 \
    playwright==1.65.2 \
    prometheus-client==0.26.0
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --upgrade \
    --target "$venv/openai-v2-legacy" \
    openai==2.54.0 \
    opentelemetry-util-genai==0.4b0 \
    distro==1.9.0 \
    tqdm==4.70.1
touch "$stamp"
echo "SDK venv ready at $venv"
