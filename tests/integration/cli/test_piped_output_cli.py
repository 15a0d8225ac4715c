"""The CLI's tables piped to another program: one line per row, as grep and awk read them."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from datetime import datetime
from pathlib import Path

import pytest

from shiprail.cli.main import main

LONG_VERSION = "2.4.0-rc.1.build.20261128.0123456789abcdef0123456789"
SRC = Path(__file__).parents[3] / "src"


def _piped(project: Path, *args: str, columns: str | None = None, color: bool = False) -> str:
    """``shiprail ARGS | cat`` typed in a 60-column terminal: stdout a pipe, stdin the terminal."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("COLUMNS", "SHIPRAIL_DATABASE_URL", "FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE"):
        env.pop(name, None)
    if columns is not None:
        env["COLUMNS"] = columns
    if color:
        env["FORCE_COLOR"] = "1"
    terminal, tty = pty.openpty()
    try:
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
        done = subprocess.run(
            [sys.executable, "-m", "shiprail", *args],
            cwd=project,
            env=env,
            stdin=tty,
            capture_output=True,  # stdout a pipe
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        os.close(terminal)
        os.close(tty)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


def _cells(line: str) -> list[str]:
    """The cells of a table's line (a row's, or the header's)."""
    return [cell.strip() for cell in re.split("[│┃]", line.strip("│┃"))]


def test_piped_tables_print_one_line_per_row_in_full(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Piped, Rich laid the tables out for the terminal on stdin (or 80 columns): `release list`
    # folded the version and the created date over several lines (here it dropped whole columns),
    # and `grep checkout | awk` read half a row.
    plan = (project / "releases" / "checkout-2.4.0.yaml").read_text(encoding="utf-8")
    long_plan = project / "releases" / "long.yaml"
    long_plan.write_text(plan.replace('version: "2.4.0"', f'version: "{LONG_VERSION}"'), encoding="utf-8")
    monkeypatch.chdir(project)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    assert main(["release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice"]) == 0
    assert main(["release", "create", str(long_plan.relative_to(project)), "--as", "alice"]) == 0
    assert main(["release", "stage", "checkout-2.4.0", "--as", "alice"]) == 1  # a failed approvals gate

    listed = json.loads(_piped(project, "release", "list", "--json"))
    assert [v["version"] for v in listed] == [LONG_VERSION, "2.4.0"]
    out = _piped(project, "release", "list")
    lines = out.splitlines()
    assert _cells(lines[1]) == ["id", "service", "version", "risk", "state", "owner", "created"]
    rows = [line for line in lines if line.startswith("│")]
    assert [_cells(row) for row in rows] == [
        [
            v["id"],
            "checkout",
            v["version"],
            "high",
            "planned",
            "alice",
            f"{datetime.fromisoformat(v['created_at']):%Y-%m-%d %H:%M}",
        ]
        for v in listed
    ]
    assert len(lines) == 3 + len(rows) + 1  # top border, header, rule; one line a row; bottom border

    # The gate table of `release show`: its long reason on the row's one line.
    gates = json.loads(_piped(project, "release", "show", "checkout-2.4.0", "--json"))["gates"]
    assert len(gates) == 1
    shown = [line for line in _piped(project, "release", "show", "checkout-2.4.0").splitlines() if "approvals" in line]
    assert [_cells(line)[1:4] for line in shown if line.startswith("│")] == [["stage", "approvals", "fail"]]
    assert [line for line in shown if gates[0]["reason"] in line] == [line for line in shown if line.startswith("│")]

    # COLUMNS, when set, is the width asked for: the table fits it.
    narrow = _piped(project, "release", "list", columns="100").splitlines()
    assert max(len(line) for line in narrow) == 100

    # A CI job that sets FORCE_COLOR for coloured logs: Rich then takes the pipe for a terminal
    # of 80 columns and folded every row again. Colour is kept; each row is still one line.
    coloured = _piped(project, "release", "list", color=True)
    assert "\x1b[" in coloured
    plain = [re.sub("\x1b\\[[0-9;]*m", "", line) for line in coloured.splitlines()]
    assert [_cells(row) for row in plain if row.startswith("│")] == [_cells(row) for row in rows]
