#!/usr/bin/env bash
# Set up shiprail and run its main job: a project from `shiprail init`, its release plan
# validated, and a release taken through approvals, an override and the audit check.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/shiprail demo "$@"
