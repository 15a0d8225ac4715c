#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, unit, integration and end-to-end tests.
# PostgreSQL tests use the server on 127.0.0.1:5432 (database `test`); they are skipped with a
# reason when none answers, except on CI (CI=true), where they must run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev

# Real components the end-to-end tests start on 127.0.0.1 (each test runs its own, by PID).
missing=""
for bin in nginx haproxy prometheus; do
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || missing="$missing $bin"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "note: not installed:$missing (their end-to-end tests will be skipped); run as root to install them"
  fi
fi

echo "== ruff"
.venv/bin/ruff check src tests
echo "== mypy --strict"
.venv/bin/mypy src
echo "== pytest"
# Workers (pytest-xdist): the suite mostly waits — on nginx reloads, Prometheus scrapes, bakes of a
# few real seconds — so three workers overlap those waits even on two cores. Each test keeps its own
# ports, temporary directories and PostgreSQL schema. `scripts/test.sh -n 0` runs in one process.
# worksteal: a worker that runs out of tests takes some queued for another. Handed out in chunks
# (`--dist load`), the last chunk of slow integration tests kept one worker busy for minutes while
# the other two were idle.
exec .venv/bin/pytest -q -p no:cacheprovider -n "${SHIPRAIL_TEST_WORKERS:-3}" --dist worksteal "$@"
