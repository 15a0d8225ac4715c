"""``shiprail controller`` as a service: the signals that stop it let its leases and its row go."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shiprail.cli.main import main
from shiprail.store.db import Store, default_url
from tests.support.processes import ctrl_c_as_in_a_terminal


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


def test_ctrl_c_again_stops_at_once_while_a_router_call_hangs(shiprail: Any, project: Path) -> None:
    # One Ctrl-C waits for the call under way (a router command may run for its whole timeout,
    # 60 s here); a person pressing it again wanted out, and had to kill -9 the controller.
    marker = project / "router-call.pid"
    service = project / "services" / "checkout.yaml"
    text = service.read_text()
    head, _, rest = text.partition("router:\n")
    hung = f"echo $$ > {marker}; exec sleep 60"
    service.write_text(
        f"{head}router:\n  type: command\n  set: '{hung}'\n  timeout: 60s\n{rest[rest.index('provider:') :]}"
    )
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for action, summary in (
        ("stage", "Holiday rota needs two approvers."),
        ("start", "Load tests now run in the pipeline."),
    ):
        assert shiprail("release", action, "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
        assert (
            shiprail(
                "release", "override", "checkout-2.4.0", "--as", "dana", "--reason", "The CTO waived it for the outage"
            ).code
            == 0
        )
        assert (
            shiprail("release", "postmortem", "checkout-2.4.0", "--done", "--as", "dana", "--summary", summary).code
            == 0
        )
    assert shiprail("release", "show", "checkout-2.4.0", "--json").json()["status"] == "rolling_out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiprail", "controller", "--poll", "0.2", "--lease", "5"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    call = None
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() or not marker.read_text().strip():
            assert time.monotonic() < deadline and proc.poll() is None, "the router call never started"
            time.sleep(0.05)
        call = int(marker.read_text())
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)  # the first waits for the call
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert proc.stderr is not None
        assert proc.stderr.read().splitlines() == [
            "stopping after the call under way, if any (Ctrl-C again stops at once)",
            "stopped at once; its releases' leases lapse within 5s",
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if call is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(call, signal.SIGKILL)
    # As after kill -9: the weight it was setting stays recorded as under way, for the next
    # controller to settle (read the router, then finish or retry) before it acts again.
    from shiprail.store.rollouts import pending_intent

    store = Store(default_url(project))
    try:
        with store.transaction() as s:
            intent = pending_intent(s, "checkout-2.4.0")
            assert intent is not None and intent.weight == 1
    finally:
        store.close()


def test_ctrl_c_on_start_wait_says_the_release_is_left_undriven(shiprail: Any, project: Path) -> None:
    # `release start --wait` drives the release itself; Ctrl-C ended it with exit 130 and not a word,
    # leaving the canary at its weight with nothing analysing its contract or moving its router.
    service = project / "services" / "checkout.yaml"
    head, _, rest = service.read_text().partition("router:\n")
    service.write_text(f"{head}router:\n  type: command\n  set: 'true'\n{rest[rest.index('provider:') :]}")
    assert shiprail("release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice").code == 0
    for action in ("stage", "start"):
        assert shiprail("release", action, "checkout-2.4.0", "--as", "alice").code == 1  # refused: what to override
        reason = "The CTO waived it for the outage"
        assert shiprail("release", "override", "checkout-2.4.0", "--as", "dana", "--reason", reason).code == 0
        summary = "Gates are waived only in an outage."
        assert (
            shiprail("release", "postmortem", "checkout-2.4.0", "--done", "--as", "dana", "--summary", summary).code
            == 0
        )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3] / "src")}
    env.pop("SHIPRAIL_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiprail", "release", "start", "checkout-2.4.0", "--wait", "--as", "alice"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        # Off a terminal, one line per change (and notifications it could not send): wait for the step's.
        while "rolling_out (step 1)" not in (line := proc.stdout.readline()):
            assert line and time.monotonic() < deadline, "no progress line"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
        assert proc.stderr is not None
        assert proc.stderr.read().splitlines()[-1] == (
            "stopped following checkout-2.4.0 (interrupted): it is rolling_out (step 1); no controller is running, "
            "so nothing analyses its contract or moves its router until one does: run `shiprail controller`, or "
            "`shiprail release start checkout-2.4.0 --wait` again"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
