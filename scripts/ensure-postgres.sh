#!/usr/bin/env bash
# Checks that the Postgres the tests use answers; starts the machine's local cluster if not.
set -euo pipefail
url="${1:-postgres://postgres@127.0.0.1:5432/postgres}"
if pg_isready -q -d "$url" 2>/dev/null; then
    exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "Postgres is not answering; starting the local cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -d "$url" && exit 0
        sleep 1
    done
fi
echo "Postgres at $url is not reachable; the Postgres half of the suite cannot run" >&2
exit 1
