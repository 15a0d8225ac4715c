#!/usr/bin/env bash
# Set up shiprail on a fresh Debian machine with Python >= 3.11: a virtual environment in .venv
# with the package (editable). `setup.sh dev` (what scripts/test.sh runs) adds the test and
# benchmark tools; `setup.sh` alone (scripts/demo.sh) installs only what running shiprail needs.
# Safe to run again: it reinstalls only when pyproject.toml changed or more is wanted.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "shiprail needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately; install it when we can.
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      apt-get update -qq && (apt-get install -y -qq "python${ver}-venv" || apt-get install -y -qq python3-venv)
      "$PY" -m venv .venv
    else
      echo "cannot create a virtual environment: install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

mode=${1:-run}
stamp=.venv/.shiprail-installed
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
# A dev install serves the demo too; a run-only install must grow for the tests.
if [ "$have" != "$hash dev" ] && { [ "$mode" = dev ] || [ "$have" != "$hash run" ]; }; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$mode" = dev ]; then
    .venv/bin/python -m pip install -q -e '.[dev]'
  else
    .venv/bin/python -m pip install -q -e .
  fi
  echo "$hash $mode" > "$stamp"
fi

# The package is installed editable, so its modules are compiled where they stand; where
# PYTHONDONTWRITEBYTECODE is set, Python would otherwise compile them again in every process
# (a few tenths of a second for each `shiprail` command). A module edited later is recompiled.
.venv/bin/python -m compileall -q src >/dev/null
