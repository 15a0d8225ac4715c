#!/usr/bin/env bash
# Set up shiprail (.venv) and run its main job, `shiprail demo` (about 30 s): shiprail serve on
# SQLite, a sample shop split by the SDK under simulated load, a good release taken to complete,
# a bad one rolled back by its contract, `release show` for both (the rollback log), the audit
# check and a tampered row caught. Arguments go to `shiprail demo` (--dir DIR keeps the project).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/shiprail demo "$@"
