"""The command router running real shell scripts: environment, read-back, failures, timeouts."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shiprail.routers import CommandRouter, CommandRouterConfig, RouterError, build_router


def make(tmp_path: Path, set_: str, get: str | None = None, timeout: int = 10) -> CommandRouter:
    config = CommandRouterConfig(type="command", set=set_, get=get, timeout=timeout)
    router = build_router(config, service="checkout", version="v2", baseline="v1")
    assert isinstance(router, CommandRouter)
    return router


def test_the_script_gets_the_weight_and_get_reads_it_back(tmp_path: Path) -> None:
    state = tmp_path / "weight"
    seen = tmp_path / "seen"
    router = make(
        tmp_path,
        f'echo "$SHIPRAIL_WEIGHT" > {state}; '
        f'echo "$SHIPRAIL_SERVICE $SHIPRAIL_VERSION $SHIPRAIL_BASELINE $SHIPRAIL_WEIGHT" >> {seen}',
        get=f"cat {state}",
    )
    for weight in (1, 10, 50, 100, 0, 0.5):
        router.set_weight(weight)
        assert router.current_weight() == weight
    assert state.read_text() == "0.5\n"
    assert seen.read_text().splitlines() == [
        "checkout v2 v1 1",
        "checkout v2 v1 10",
        "checkout v2 v1 50",
        "checkout v2 v1 100",
        "checkout v2 v1 0",
        "checkout v2 v1 0.5",
    ]


def test_without_get_the_last_weight_set_is_reported(tmp_path: Path) -> None:
    router = make(tmp_path, "true")
    with pytest.raises(RouterError, match="has no get command and has not set a weight yet"):
        router.current_weight()
    router.set_weight(10)
    assert router.current_weight() == 10
    failing = make(tmp_path, '[ "$SHIPRAIL_WEIGHT" = 10 ]')
    failing.set_weight(10)
    with pytest.raises(RouterError):
        failing.set_weight(50)
    assert failing.current_weight() == 10, "a failed set must not be reported as applied"


def test_a_crash_of_a_command_the_script_ran_is_named_by_its_signal(tmp_path: Path) -> None:
    router = make(tmp_path, "sh -c 'kill -SEGV $$'; exit $?")
    with pytest.raises(RouterError) as error:
        router.set_weight(10)
    assert str(error.value) == (
        # dash reports the crash on stderr itself
        "the router's set command exited with status 139 (a command it ran was killed by SIGSEGV): Segmentation fault"
    )


def test_a_non_zero_exit_is_a_router_error_with_the_stderr_tail(tmp_path: Path) -> None:
    router = make(tmp_path, "echo progress; echo 'kubectl: connection refused' >&2; exit 3")
    with pytest.raises(RouterError, match=r"set command exited with status 3: kubectl: connection refused$"):
        router.set_weight(10)
    long = make(tmp_path, "python3 -c \"import sys; sys.stderr.write('x' * 5000 + 'END')\"; exit 1")
    with pytest.raises(RouterError) as caught:
        long.set_weight(10)
    assert caught.value.message.endswith("xEND") and len(caught.value.message) < 700


def test_a_get_that_prints_no_number_is_a_router_error(tmp_path: Path) -> None:
    router = make(tmp_path, "true", get="echo 'weight unknown'")
    with pytest.raises(RouterError, match="printed 'weight unknown', not a weight"):
        router.current_weight()
    assert make(tmp_path, "true", get="echo applying; echo 25%").current_weight() == 25


def test_a_script_that_runs_too_long_is_killed_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    router = make(tmp_path, f"sleep 30 & echo $! > {pid_file}; echo waiting >&2; wait", timeout=1)
    started = time.monotonic()
    with pytest.raises(RouterError, match=r"ran longer than its 1s timeout and was killed: waiting"):
        router.set_weight(10)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    with pytest.raises(RouterError):
        router.current_weight()
    assert os.environ.get("SHIPRAIL_WEIGHT") is None, "shiprail's own environment was changed"


def test_a_script_whose_controller_was_killed_is_still_killed_at_its_timeout(tmp_path: Path) -> None:
    # The controller dies (kill -9) while its set script sleeps; the script, in a process group of
    # its own, used to run on and apply its weight whenever it ended — after another controller had
    # taken over and rolled back. The watchdog kills it a second after its timeout instead.
    marker = tmp_path / "applied"
    code = (
        "from shiprail.routers import CommandRouterConfig, build_router\n"
        f"config = CommandRouterConfig(type='command', set='sleep 3; echo $SHIPRAIL_WEIGHT > {marker}', timeout=1)\n"
        "build_router(config, service='checkout', version='v2', baseline='v1').set_weight(10)\n"
    )
    controller = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.5)
    controller.kill()
    controller.wait()
    time.sleep(3.5)
    assert not marker.exists()


def test_a_script_that_leaves_a_process_running_in_the_background_is_done_when_it_exits(tmp_path: Path) -> None:
    # The background process inherits the script's stdout and stderr. Read through pipes, they
    # stayed open after the script exited 0, so the run lasted until the timeout and was reported
    # as killed (the process with it), as if the weight had not been applied.
    pids = tmp_path / "daemons"
    background = f"sleep 30 & echo $! >> {pids}"
    router = make(tmp_path, f"{background}; echo applied", get=f"{background}; echo 'applying…'; echo 10%", timeout=2)
    try:
        router.set_weight(10)  # within its 2 s timeout, or RouterError: "ran longer than its 2s timeout"
        assert router.current_weight() == 10
        daemons = [int(pid) for pid in pids.read_text().split()]
        assert len(daemons) == 2
        assert all(Path(f"/proc/{pid}").exists() for pid in daemons), "a background process was killed"
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
