#!/usr/bin/env bash
# Set everything up and run the whole test suite, on SQLite and on PostgreSQL, browser tests included.
# Extra arguments go to pytest (e.g. scripts/test.sh -k portal).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh "test,postgres"
if url=$(scripts/start_postgres.sh); then
  export TEST_PG_URL="$url"
  echo "PostgreSQL tests will run against $TEST_PG_URL"
else
  echo "PostgreSQL could not be started here: its tests will be skipped." >&2
fi
# CI must not pass without the PostgreSQL run.
if [ "${CI:-}" = "true" ]; then export SURVEY_REQUIRE_POSTGRES=1; fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
