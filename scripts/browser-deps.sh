#!/usr/bin/env bash
# Installs (once) what the dashboard's browser tests need (see tests/ui/browser.py):
#   - Debian's `chromium` package (/usr/bin/chromium), driven headless by Playwright; Playwright's
#     own browser downloads are never used;
#   - the npm package axe-core at a pinned version, into .browser-deps/ at the repo root
#     (git-ignored), injected into pages for the accessibility checks.
# Installs only from the package registries through their ordinary clients (apt-get, npm), and
# writes no lock file. Idempotent: when both are present it does nothing and says so.
#
#   scripts/browser-deps.sh [DEPS_DIR]     (DEPS_DIR defaults to .browser-deps at the repo root)
set -euo pipefail

AXE_VERSION="4.14.1"
CHROMIUM="/usr/bin/chromium"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps_dir="${1:-$repo_root/.browser-deps}"
axe_dir="$deps_dir/node_modules/axe-core"

if [ -x "$CHROMIUM" ]; then
    echo "browser-deps: chromium present ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
else
    echo "browser-deps: installing Debian's chromium with apt-get"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
    [ -x "$CHROMIUM" ] || { echo "browser-deps: $CHROMIUM still missing after apt-get install" >&2; exit 1; }
    echo "browser-deps: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
fi

installed_axe=""
if [ -f "$axe_dir/package.json" ] && [ -f "$axe_dir/axe.min.js" ]; then
    installed_axe="$(node -p "require('$axe_dir/package.json').version" 2>/dev/null || true)"
fi
if [ "$installed_axe" = "$AXE_VERSION" ]; then
    echo "browser-deps: axe-core $AXE_VERSION present in $deps_dir"
else
    echo "browser-deps: installing axe-core@$AXE_VERSION with npm into $deps_dir"
    mkdir -p "$deps_dir"
    # a package.json of its own, so npm installs here and not into a parent folder's project
    if [ ! -f "$deps_dir/package.json" ]; then
        printf '{"name": "driftballoon-browser-deps", "private": true}\n' >"$deps_dir/package.json"
    fi
    npm install --prefix "$deps_dir" --no-package-lock --no-save --no-audit --no-fund \
        --loglevel=error "axe-core@$AXE_VERSION"
    [ -f "$axe_dir/axe.min.js" ] || { echo "browser-deps: $axe_dir/axe.min.js missing after npm install" >&2; exit 1; }
    echo "browser-deps: installed axe-core $AXE_VERSION"
fi
