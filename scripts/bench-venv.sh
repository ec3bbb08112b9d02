#!/usr/bin/env bash
# Creates (once) the venv for the raw-model reference of the throughput benchmark: the same
# ONNX Runtime version the server loads, plus the tokenizers library.
set -euo pipefail
venv="${1:-.venv-bench}"
stamp="$venv/.driftballoon-bench-1"
[ -f "$stamp" ] && exit 0
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.31.1 tokenizers numpy
touch "$stamp"
echo "bench venv ready at $venv"
