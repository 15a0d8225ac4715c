"""The command router running real shell scripts: environment, read-back, failures, timeouts."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shiprail.checks import leftovers
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
    # as killed, as if the weight had not been applied. The run ends when the script exits, and
    # what it left running is killed then.
    set_pid, get_pid = tmp_path / "set.pid", tmp_path / "get.pid"

    def background(path: Path) -> str:  # a sleep that has written its pid and start time
        me = 'echo $$ $(cut -d" " -f22 /proc/$$/stat)'
        return f"sh -c '{me} > {path}; exec sleep 30' & while [ ! -s {path} ]; do sleep 0.02; done"

    router = make(
        tmp_path,
        f"{background(set_pid)}; echo applied",
        get=f"{background(get_pid)}; echo 'applying…'; echo 10%",
        timeout=2,
    )
    try:
        router.set_weight(10)  # within its 2 s timeout, or RouterError: "ran longer than its 2s timeout"
        assert router.current_weight() == 10
        daemons = recorded(set_pid) + recorded(get_pid)
        assert len(daemons) == 2
        assert [d for d in daemons if running(d)] == [], "a background process outlived its script"
    finally:
        stop_all([p for path in (set_pid, get_pid) if path.exists() for p in recorded(path)])


# ------------------------------------------------------------------------------ what a script leaves


def recorded(path: Path) -> list[tuple[int, int]]:
    """The (pid, start time) lines processes wrote to ``path`` about themselves."""
    return [(int(pid), int(start)) for pid, start in (line.split() for line in path.read_text().splitlines())]


def running(process: tuple[int, int]) -> bool:
    """Whether that very process (pid and start time) still exists, a zombie included."""
    info = leftovers.read_stat(process[0])
    return info is not None and info.start == process[1]


def stop_all(processes: list[tuple[int, int]]) -> None:
    for process in processes:
        if running(process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process[0], 9)


def escapes(where: Path) -> str:
    """Shell lines leaving two processes outside the script's process group, each writing its pid
    and start time to ``where`` before the script goes on: ``setsid`` in the background, and a
    daemon's double fork (its parent exits at once: it is orphaned while the script runs)."""
    me = 'echo $$ $(cut -d" " -f22 /proc/$$/stat)'
    return (
        f"setsid sh -c '{me} >> {where}; exec sleep 300' & "
        f"( setsid sh -c '{me} >> {where}; exec sleep 300' & ); "
        f'while [ "$(cat {where} 2>/dev/null | wc -l)" -lt 2 ]; do sleep 0.02; done; '
    )


def test_what_a_script_left_running_outside_its_process_group_is_killed_when_it_exits(tmp_path: Path) -> None:
    # setsid and a double fork left the process group that was all shiprail killed: those kept
    # running after set and get returned, holding ports and locks, for good.
    set_pids, get_pids = tmp_path / "set.pids", tmp_path / "get.pids"
    router = make(tmp_path, escapes(set_pids) + "echo applied", get=escapes(get_pids) + "echo 10")
    try:
        started = time.monotonic()
        router.set_weight(10)
        assert router.current_weight() == 10
        assert time.monotonic() - started < 5
        left = recorded(set_pids) + recorded(get_pids)
        assert len(left) == 4
        assert [p for p in left if running(p)] == []  # killed, and reaped: no zombie either
    finally:
        stop_all([p for path in (set_pids, get_pids) if path.exists() for p in recorded(path)])


def test_a_weight_change_a_script_left_behind_cannot_land_after_a_rollback(tmp_path: Path) -> None:
    # The script applies its weight from a process of its own a moment later and exits 0. That
    # process outlived the script: shiprail rolled back (set 0), and the step's 10 landed after it.
    state = tmp_path / "weight"
    late = f"setsid sh -c 'sleep 1; echo $SHIPRAIL_WEIGHT > {state}' & "
    router = make(tmp_path, late + "echo scheduled", get=f"cat {state} 2>/dev/null || echo 0")
    router.set_weight(10)
    rollback = make(tmp_path, f'echo "$SHIPRAIL_WEIGHT" > {state}', get=f"cat {state}")
    rollback.set_weight(0)
    time.sleep(1.5)
    assert rollback.current_weight() == 0
    assert state.read_text() == "0\n"


def test_what_a_script_that_timed_out_left_outside_its_process_group_is_killed(tmp_path: Path) -> None:
    pids = tmp_path / "set.pids"
    router = make(tmp_path, escapes(pids) + "echo waiting >&2; sleep 30", timeout=1)
    try:
        started = time.monotonic()
        with pytest.raises(RouterError, match=r"ran longer than its 1s timeout and was killed: waiting$"):
            router.set_weight(10)
        assert time.monotonic() - started < 5
        left = recorded(pids)
        assert len(left) == 2
        assert [p for p in left if running(p)] == []
    finally:
        stop_all(recorded(pids) if pids.exists() else [])


def test_routers_of_several_services_running_at_once_each_kill_only_their_own(tmp_path: Path) -> None:
    # The controller calls routers from threads of one process, where each run makes shiprail a
    # child subreaper: every run must kill what it left, only that, and never wait for a child
    # another thread waits for (its Popen would read a stolen exit status as 0).
    routers = [make(tmp_path, escapes(tmp_path / f"{n}.pids") + f"echo {n} > {tmp_path}/{n}.set") for n in range(4)]
    outside = subprocess.Popen(["sleep", "300"], start_new_session=True)  # the same user's, not a router's
    statuses: list[int] = []

    def other_thread_children() -> None:
        for _ in range(10):
            statuses.append(subprocess.run(["sh", "-c", "sleep 0.05; exit 7"], check=False).returncode)

    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            children = pool.submit(other_thread_children)
            for done in [pool.submit(router.set_weight, 10) for router in routers]:
                done.result()
            children.result()
        assert statuses == [7] * 10
        left = [p for n in range(4) for p in recorded(tmp_path / f"{n}.pids")]
        assert len(left) == 8
        assert [p for p in left if running(p)] == []
        assert [(tmp_path / f"{n}.set").read_text() for n in range(4)] == ["0\n", "1\n", "2\n", "3\n"]
        assert outside.poll() is None
        flag = ctypes.c_int(-1)
        assert leftovers._prctl(37, flag) and flag.value == 0  # PR_GET_CHILD_SUBREAPER: restored
    finally:
        outside.kill()
        outside.wait()
        stop_all([p for n in range(4) if (tmp_path / f"{n}.pids").exists() for p in recorded(tmp_path / f"{n}.pids")])
