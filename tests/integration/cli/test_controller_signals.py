"""``shiprail controller`` as a service: the signals that stop it let its leases and its row go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shiprail.cli.main import main


def running(capsys: pytest.CaptureFixture[str]) -> list[object]:
    """The controllers `shiprail controllers` lists now."""
    capsys.readouterr()
    assert main(["controllers", "--json"]) == 0
    listed: list[object] = json.loads(capsys.readouterr().out)["controllers"]
    return listed


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_the_controller_cleanly(
    project: Path, signum: signal.Signals, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGHUP killed it (exit 129), leaving its row in `shiprail controllers` and its leases to
    # expire: an operator sending HUP for a reload got an unclean stop.
    monkeypatch.chdir(project)
    assert main(["release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice"]) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    env.pop("SHIPRAIL_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiprail", "controller", "--poll", "0.2"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "controller HOST:PID:… running …"
        assert " running (poll 0.2s" in line, line
        deadline = time.monotonic() + 30
        while not running(capsys):  # its row is written by its first pass, after that line
            assert time.monotonic() < deadline, "the controller never registered"
            time.sleep(0.1)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert running(capsys) == []
