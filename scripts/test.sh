#!/usr/bin/env bash
# The test command of the README. Runs the whole suite on the embedded defaults; when
# DCM_TEST_DATABASE_URL names a PostgreSQL server (CI sets it), runs the database-bound
# suites (tests/node, tests/e2e) again against PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

echo "== suite on SQLite"
env -u DCM_TEST_DATABASE_URL "$BIN/pytest" -q "$@"

if [ -n "${DCM_TEST_DATABASE_URL:-}" ]; then
  echo "== database-bound suites on PostgreSQL ($DCM_TEST_DATABASE_URL)"
  "$BIN/pytest" -q tests/node tests/e2e "$@"
fi
