#!/usr/bin/env bash
# Creates (once) the venv for the offline comparison of the behaviour benchmark
# (scripts/behaviour_compare.py): Evidently 0.7 (its legacy EmbeddingsDriftMetric is the
# default embedding-drift method we compare against) and numpy for the MMD permutation test.
# Everything else Evidently needs (scikit-learn, scipy, ...) is left to pip's resolver, except
# pandas: Evidently 0.7.23 asks only for pandas>=1.3.5, but its legacy package imports
# pandas.core.dtypes.common.infer_dtype_from_object, which pandas 3 removed, so pandas is held < 3.
# Idempotent: a complete venv is reused; bump the stamp name when the package list changes.
set -euo pipefail
venv="${1:-.venv-compare}"
stamp="$venv/.driftballoon-compare-1"
[ -f "$stamp" ] && exit 0
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check evidently==0.7.23 'pandas>=2.2,<3' numpy
touch "$stamp"
echo "compare venv ready at $venv"
