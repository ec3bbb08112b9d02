#!/usr/bin/env bash
# Refuses calendar dates and epoch timestamps written into tests/. A fixed date ages: one day it
# falls past a retention limit, out of a time window or behind a cursor, and a test fails with
# no change to the code (issue 29). Tests take times from tests/it/common/clock.rs instead. A line
# whose date is the subject itself (an impossible date, a model id with a date in its name, a
# date far in the future on purpose) says so with `fixed-date:` and the reason, on that line or
# the line above.
set -euo pipefail
cd "$(dirname "$0")/.."

# ISO dates (2026-11-22), and epoch times of this century (2008 to 2033) in seconds, ms, us or ns, with or
# without Rust's digit separators (1700000000, 1_795_341_602_000).
pattern='(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]|\b1[2-9][0-9]{8}([0-9]{3}){0,3}\b|\b1_[2-9][0-9]{2}_[0-9]{3}_[0-9]{3}(_[0-9]{3}){0,3}\b'

# perl: a hit counts unless its line or the line before carries the marker
hits=$(find tests -type f \( -name '*.rs' -o -name '*.py' -o -name '*.js' \) -print0 | sort -z |
    xargs -0 perl -ne 'BEGIN { $pat = shift @ARGV } $prev = "" if $. == 1;
        print "$ARGV:$.: $_" if /$pat/ && !/fixed-date:/ && $prev !~ /fixed-date:/;
        $prev = $_; close ARGV if eof' "$pattern")
found=0
if [[ -n "$hits" ]]; then
    echo "$hits"
    found=1
fi

if [[ $found -ne 0 ]]; then
    echo "check-test-dates: fixed dates in tests (use tests/it/common/clock.rs, or mark the line 'fixed-date: why')" >&2
    exit 1
fi
echo "check-test-dates: no unmarked fixed dates in tests/"
