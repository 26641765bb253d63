#!/usr/bin/env bash
# Run the whole test suite (and lint) in .venv; PostgreSQL tests use .postgres-url when present.
set -euo pipefail
venv=${VENV:-.venv}
if [ -z "${CARELENS_TEST_PG_URL:-}" ] && [ -f .postgres-url ]; then
  export CARELENS_TEST_PG_URL=$(cat .postgres-url)
fi
"$venv/bin/ruff" check src tests benchmarks
"$venv/bin/pytest" "$@"
