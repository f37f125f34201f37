#!/usr/bin/env bash
# The test command of the README. Runs the whole suite on the embedded defaults; when
# DCM_TEST_DATABASE_URL names a PostgreSQL server (CI sets it), runs the tests of tests/node
# that reach a database again against PostgreSQL, with the end-to-end tests where the
# database changes what they show (the rule that picks them is
# `pytest_collection_modifyitems` in tests/conftest.py).
# Tests run in parallel (pytest-xdist): every test has its own database, data dir and free
# ports, so they share nothing. DCM_TEST_WORKERS overrides the number of workers (default:
# the CPU count, at most 4; each worker holds its own engines); 0 runs in one process.
# Each pass ends with its 25 slowest steps, so that a CI log shows where the time went.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
cpus=$(nproc 2>/dev/null || echo 2)
WORKERS=${DCM_TEST_WORKERS:-$(( cpus < 4 ? (cpus < 2 ? 2 : cpus) : 4 ))}
STARTED=${DCM_CI_STARTED:-$(date +%s)}
at() { echo "at $(( $(date +%s) - STARTED )) s; $(df -h --output=avail . | tail -1 | tr -d ' ') free"; }

echo "== suite on SQLite ($WORKERS workers; $(at))"
env -u DCM_TEST_DATABASE_URL "$BIN/pytest" -q -n "$WORKERS" --durations=25 "$@"

if [ -n "${DCM_TEST_DATABASE_URL:-}" ]; then
  echo "== database-bound suites on PostgreSQL ($DCM_TEST_DATABASE_URL, $WORKERS workers; $(at))"
  "$BIN/pytest" -q -n "$WORKERS" --durations=25 tests/node tests/e2e "$@"
fi
echo "== done ($(at))"
