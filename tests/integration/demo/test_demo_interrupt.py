"""Ctrl-C during ``shiprail demo`` stops the demo, even when it lands inside one of its commands."""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path

import pytest
from rich.console import Console

from shiprail.demo import Demo, project, release_id


def test_ctrl_c_inside_a_command_stops_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    plans = project.write(tmp_path, "http://127.0.0.1:9/hooks")
    demo = Demo(Console(file=io.StringIO(), width=200))
    rid = release_id(project.GOOD)
    demo.run(["release", "create", str(plans[project.GOOD].relative_to(tmp_path)), "--as", "alice"], expect=0)
    demo.run(["release", "approve", rid, "--as", "bob"], expect=0)
    demo.run(["release", "stage", rid, "--as", "alice"], expect=0)
    assert demo.failures == []
    # No shop pushes outcomes: the rollout waits for data, so --wait blocks until interrupted.
    # A real SIGINT, as Ctrl-C sends; the demo's commands run in this process.
    timer = threading.Timer(2.0, signal.raise_signal, (signal.SIGINT,))
    # As in a terminal: a test process started in the background by a shell without job control
    # has SIGINT ignored (see tests.support.processes.ctrl_c_as_in_a_terminal).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            demo.run(["release", "start", rid, "--as", "alice", "--wait", "--timeout", "60"], expect=0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, before)
    # Stopped, not a step that "failed": nothing more runs and nothing is reported as failing.
    assert demo.failures == []
