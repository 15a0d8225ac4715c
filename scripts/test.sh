#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, unit, integration and end-to-end tests.
# PostgreSQL tests use the server on 127.0.0.1:5432 (database `test`); they are skipped with a
# reason when none answers, except on CI (CI=true), where they must run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check src tests
echo "== mypy --strict"
.venv/bin/mypy src
echo "== pytest"
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
