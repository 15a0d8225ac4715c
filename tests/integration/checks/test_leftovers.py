"""Processes a stage check leaves behind in sessions of their own (``setsid``, a daemon's double
fork) are killed when the check ends, as those in its process group always were."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shiprail.checks import leftovers
from shiprail.checks.load_test import run_load_test
from shiprail.checks.tests import run_command, run_test
from shiprail.schema.plan import LoadTest
from shiprail.schema.plan import TestCommand as Cmd  # not "Test…": pytest would try to collect it

# Two escapes from the check's process group, each writing its pid once it runs:
# - `setsid` in the background: a session of its own, a child of the check's shell until it exits;
# - a daemon's double fork: the middle process exits at once, so the daemon is orphaned while the
#   check still runs, in a session of its own.
ESCAPES = (
    "setsid sh -c 'echo $$ > setsid.pid; exec sleep 300' & "
    "( setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' & ); "
    "while [ ! -s setsid.pid ] || [ ! -s daemon.pid ]; do sleep 0.05; done; "
)


STATS = "Type,Name,Request Count,Failure Count,Requests/s,95%\n,Aggregated,100,0,50,20\n"


def pids(where: Path) -> list[int]:
    return [int((where / name).read_text()) for name in ("setsid.pid", "daemon.pid")]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie of ours would be one we failed to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def assert_all_gone(where: Path) -> None:
    found = pids(where)
    assert len(found) == 2
    # Killed and waited for before run_command returns: nothing to wait for here.
    assert [pid for pid in found if alive(pid)] == []
    # Those that were adopted by shiprail (its subreaper) are reaped too, not left as zombies.
    assert [pid for pid in found if exists(pid)] == []


def test_processes_in_sessions_of_their_own_are_killed_when_the_command_exits(tmp_path: Path) -> None:
    done = run_command(ESCAPES + "echo ready; exit 0", cwd=tmp_path, env=os.environ, timeout_s=20)
    assert (done.exit_code, done.timed_out, done.stdout_tail) == (0, False, "ready\n")
    assert done.duration_s < 5
    assert_all_gone(tmp_path)


def test_processes_in_sessions_of_their_own_are_killed_when_the_check_times_out(tmp_path: Path) -> None:
    started = time.monotonic()
    # One more that also clears its environment: it was seen below the command while it ran.
    command = ESCAPES + "env -i setsid sh -c 'echo $$ > clean.pid; exec sleep 300' & echo started; sleep 300"
    result = run_test(Cmd(name="slow", command=command, timeout=1), tmp_path)
    assert time.monotonic() - started < 10
    assert (result.passed, result.summary) == (False, "timed out after 1s; its processes were killed (started)")
    assert (result.evidence["timed_out"], result.evidence["strays_killed"]) == (True, 3)
    assert_all_gone(tmp_path)
    clean = int((tmp_path / "clean.pid").read_text())
    assert not exists(clean)


def test_a_passing_check_still_passes_and_its_escapes_are_killed(tmp_path: Path) -> None:
    result = run_test(Cmd(name="unit", command=ESCAPES + "echo ok"), tmp_path)
    assert (result.passed, result.evidence["exit_code"]) == (True, 0)
    assert result.summary.startswith("passed (exit 0) in ")
    assert_all_gone(tmp_path)


def test_a_load_test_command_leaves_no_daemon_behind(tmp_path: Path) -> None:
    (tmp_path / "made.csv").write_text(
        "Type,Name,Request Count,Failure Count,Requests/s,95%\n,Aggregated,100,0,50,20\n"
    )
    load = LoadTest.model_validate(
        {
            "command": ESCAPES + "cp made.csv stats.csv",
            "stats_csv": "stats.csv",
            "duration": 5,
            "thresholds": {"p95_ms": 300},
        }
    )
    result = run_load_test(load, tmp_path, tmp_path / "artifacts")
    assert (result.passed, result.summary) == (True, "p95 20 ms <= 300 ms; 100 requests, 0 failed")
    assert_all_gone(tmp_path)


def test_processes_outside_the_check_are_left_alone(tmp_path: Path) -> None:
    # A process of the same user, in a session of its own, started before and outside the check.
    other = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        done = run_command(ESCAPES + "exit 3", cwd=tmp_path, env=os.environ, timeout_s=20)
        assert done.exit_code == 3
        assert_all_gone(tmp_path)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_evidence_counts_the_processes_killed_outside_the_group(tmp_path: Path) -> None:
    done = run_command(ESCAPES + "exit 0", cwd=tmp_path, env=os.environ, timeout_s=20)
    assert done.evidence()["strays_killed"] == 2
    assert run_command("sleep 30 & exit 0", cwd=tmp_path, env=os.environ, timeout_s=20).strays_killed == 0


def test_without_proc_or_prctl_a_check_runs_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not Linux: no /proc to walk, no prctl to call. The process group is still killed; nothing breaks.
    monkeypatch.setattr(leftovers, "PROC", tmp_path / "no-proc")
    monkeypatch.setattr(leftovers, "_prctl", lambda option, arg: False)
    done = run_command("sleep 30 & echo $! > bg.pid; echo done", cwd=tmp_path, env=os.environ, timeout_s=20)
    assert (done.exit_code, done.timed_out, done.stdout_tail, done.strays_killed) == (0, False, "done\n", 0)
    pid = int((tmp_path / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_the_subreaper_flag_is_restored_after_the_check(tmp_path: Path) -> None:
    import ctypes

    def subreaper() -> int:
        value = ctypes.c_int(-1)
        assert leftovers._prctl(37, value)  # PR_GET_CHILD_SUBREAPER
        return value.value

    assert subreaper() == 0
    run_command("true", cwd=tmp_path, env=os.environ, timeout_s=20)
    assert subreaper() == 0


def test_background_children_killed_with_the_group_are_not_left_as_zombies(tmp_path: Path) -> None:
    # The shell exits at once: its background child is adopted by shiprail, killed with the group,
    # and must be waited for (a zombie of a long-lived `shiprail serve` or CI agent otherwise).
    done = run_command("sleep 30 & echo $! > bg.pid", cwd=tmp_path, env=os.environ, timeout_s=20)
    assert (done.exit_code, done.strays_killed) == (0, 0)
    assert not exists(int((tmp_path / "bg.pid").read_text()))


def test_watching_a_check_reads_again_only_its_own_processes_and_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll every 0.1 s must not read every process of the machine each time: on a CI host with
    thousands of them that is a good part of a core for the whole of a long check."""
    command = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    try:
        with leftovers.Containment() as box:
            box.watch(command.pid)
            deadline = time.monotonic() + 5
            while len(leftovers.descendants({command.pid}, leftovers.processes())) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # Listed before the poll that records them: one that started after that poll's listing
            # (on a shared host, at any moment) is new to the next poll, and read by it once.
            running = set(leftovers.processes())
            box.watch(command.pid)
            tree = {command.pid} | leftovers.descendants({command.pid}, leftovers.processes())
            others = running - tree  # running before the polls below, not the check's
            read: list[int] = []
            real = leftovers.read_stat

            def counted(pid: int, proc: Path | None = None) -> leftovers.ProcInfo | None:
                read.append(pid)
                return real(pid, proc)

            monkeypatch.setattr(leftovers, "read_stat", counted)
            for _ in range(3):
                box.watch(command.pid)
            monkeypatch.undo()
            assert len(tree) == 3
            assert tree <= set(read)  # the check's own, each time
            assert sorted(set(read) & others) == []  # never again the rest of the machine
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, 9)
        command.wait()


def test_ending_a_run_reads_the_machine_once_and_only_the_environments_of_newer_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end of a run scans every process of the host: done four times over for a command that
    left nothing (a kill, a scan to reap, both again on leaving the context), reading every
    process's environment at each kill, it was most of the cost of a short command, which a
    command router runs once a minute per release in a long-lived controller."""
    older = subprocess.Popen(["sleep", "300"], start_new_session=True)  # same user, before the run
    try:
        time.sleep(0.05)  # a clock tick (0.01 s) or more: start times tell older processes from the run's
        before = set(leftovers.processes())
        stats: list[int] = []
        environs: list[int] = []
        real_stat, real_marker = leftovers.read_stat, leftovers.has_marker

        def counted_stat(pid: int, proc: Path | None = None) -> leftovers.ProcInfo | None:
            stats.append(pid)
            return real_stat(pid, proc)

        def counted_marker(pid: int, run_id: str, proc: Path | None = None) -> bool | None:
            environs.append(pid)
            return real_marker(pid, run_id, proc)

        with leftovers.Containment() as box:
            command = subprocess.Popen(["true"], env=box.environment(os.environ), start_new_session=True)
            box.watch(command.pid)
            command.wait()
            monkeypatch.setattr(leftovers, "read_stat", counted_stat)
            monkeypatch.setattr(leftovers, "has_marker", counted_marker)
            box.kill()
        monkeypatch.undo()
        assert box.killed == 0 and older.poll() is None
        assert older.pid in before and older.pid not in stats  # running before the run: not read at all
        assert sorted(pid for pid in before if stats.count(pid) > 1) == []  # one scan of the machine
        assert sorted(set(environs) & before) == []  # no older process's environment
    finally:
        older.kill()
        older.wait()


def zombies_of_ours() -> list[int]:
    """shiprail's children that exited and were never waited for."""
    me = os.getpid()
    table = leftovers.processes()
    return sorted(pid for pid, p in table.items() if p.ppid == me and p.zombie)


@pytest.mark.parametrize(
    "command",
    [
        # A shell in the command's group with children of its own, left running: killed with the
        # group, the shell and its children die together, and the children are adopted by shiprail
        # (its subreaper) only once their shell is gone, after the scan that ended the run.
        "sh -c 'for i in $(seq 20); do sleep 30 & done; wait' & sleep 0.05; exit 0",
        # The same outside the group: killed as the run's, its children are adopted after it dies.
        "setsid sh -c 'for i in $(seq 20); do sleep 30 & done; wait' & sleep 0.05; exit 0",
    ],
)
def test_grandchildren_adopted_after_the_run_was_scanned_are_reaped_too(tmp_path: Path, command: str) -> None:
    # A command router runs once a minute per release in a long-lived controller: a zombie left by
    # each run fills the process table over weeks.
    before = zombies_of_ours()
    for _ in range(5):
        done = run_command(command, cwd=tmp_path, env=os.environ, timeout_s=20)
        assert done.exit_code == 0
    assert [pid for pid in zombies_of_ours() if pid not in before] == []


def test_a_process_whose_parent_had_not_exited_at_the_scan_is_reaped_once_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race above made certain: a shell of the command's group and its child, both killed with the
    group, the shell still exiting while the run is reaped, so that its child still names it as its
    parent and becomes shiprail's (its subreaper's) only a moment later."""
    script = "sh -c 'sleep 30 & echo $! > child.pid; wait' & echo $! > shell.pid; wait"
    with leftovers.Containment() as box:
        command = subprocess.Popen(
            ["sh", "-c", script], cwd=tmp_path, env=box.environment(os.environ), start_new_session=True
        )
        deadline = time.monotonic() + 10
        while not ((tmp_path / "child.pid").is_file() and (tmp_path / "child.pid").read_text().strip()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        shell, child = (int((tmp_path / f"{name}.pid").read_text()) for name in ("shell", "child"))
        while child not in box._seen:  # seen in the tree as the run's, as a poll of run_command sees it
            assert time.monotonic() < deadline
            box.watch(command.pid)
        os.killpg(command.pid, 9)
        command.wait()
        time.sleep(0.2)  # both are dead now, the child adopted by shiprail: the kernel was fast
        real = leftovers.read_stat
        shell_reads = 0

        def exiting(pid: int, proc: Path | None = None) -> leftovers.ProcInfo | None:
            # The shell is seen exiting (alive, not yet a zombie) for its first reads, and its child
            # names it as its parent until then.
            nonlocal shell_reads
            info = real(pid, proc)
            if info is None:
                return None
            if pid == shell:
                shell_reads += 1
                return dataclasses.replace(info, zombie=False) if shell_reads <= 3 else info
            if pid == child and real(shell) is not None and shell_reads <= 3:
                return dataclasses.replace(info, ppid=shell)
            return info

        monkeypatch.setattr(leftovers, "read_stat", exiting)
        box.kill()
    monkeypatch.undo()
    assert (exists(shell), exists(child)) == (False, False)


# A job a script started in a session of its own, done before the next poll saw it: `setsid -f`,
# or a daemon's double fork of something quick.
QUICK_ORPHAN = "( setsid sh -c 'exit 0' & ); "


def test_an_orphan_that_left_the_group_and_ended_between_two_polls_is_reaped(tmp_path: Path) -> None:
    # Adopted by shiprail (the subreaper) and dead before any scan saw it alive: neither in the tree
    # nor marked (a zombie's environment is empty), it stayed a zombie of the controller, one per
    # run of a router's get every few seconds, until the host or the container ran out of pids.
    before = zombies_of_ours()
    for _ in range(3):
        done = run_command(QUICK_ORPHAN + "sleep 0.3", cwd=tmp_path, env=os.environ, timeout_s=20)
        assert (done.exit_code, done.strays_killed) == (0, 0)
    assert [pid for pid in zombies_of_ours() if pid not in before] == []


def test_runs_at_once_reap_their_orphans_and_never_another_runs_command(tmp_path: Path) -> None:
    # Each run reaps the dead orphans it may have left, but another run's command, a child of
    # shiprail in a session of its own too, is its Popen's to wait for: reaped by another run, its
    # exit status would read 0.
    before = zombies_of_ours()

    def runs(n: int) -> list[int | None]:
        command = QUICK_ORPHAN + f"exit {n}"
        return [run_command(command, cwd=tmp_path, env=os.environ, timeout_s=20).exit_code for _ in range(8)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(runs, range(3, 7)))
    assert statuses == [[n] * 8 for n in range(3, 7)]
    assert [pid for pid in zombies_of_ours() if pid not in before] == []


def test_an_older_child_in_a_session_of_its_own_that_ends_during_a_run_keeps_its_exit_status(tmp_path: Path) -> None:
    # A helper shiprail started before the run (the demo's server), dead while the run ends: its
    # Popen waits for it, not the run's reaper.
    helper = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 5"], start_new_session=True)
    try:
        done = run_command(QUICK_ORPHAN + "sleep 0.5", cwd=tmp_path, env=os.environ, timeout_s=20)
        assert done.exit_code == 0
        assert helper.wait(timeout=5) == 5
    finally:
        with contextlib.suppress(ProcessLookupError):
            helper.kill()
        helper.wait()


def test_a_process_caught_in_the_middle_of_an_exec_is_still_found_by_its_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end of a run comes just after the command exits, often as what it left is still becoming
    the program it runs (`setsid -f`, `exec sleep`): its environment reads empty for that moment.
    Taken for another's, it ran on (or, quick, was left a zombie). Made certain here: the first read
    of the daemon's environment is empty, as one in an exec is, and no poll saw it in the tree."""
    # The daemon starts only once the command was watched, so that no poll sees it in the tree (the
    # watch came late now and then, under load), and the command ends once the daemon's exec is
    # over (its environment holds the marker again), so that only the patched read finds it empty
    # (the real one 2 ms later could still catch it in its exec: a third read).
    script = (
        "while [ ! -e go ]; do sleep 0.01; done; ( setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' & ); "
        'while [ ! -s daemon.pid ]; do sleep 0.01; done; p=$(cat daemon.pid); until [ "$(cat /proc/$p/comm)" = sleep ] '
        "&& grep -qa SHIPRAIL_CHECK_RUN /proc/$p/environ; do sleep 0.01; done"
    )
    real = leftovers.has_marker
    reads: list[int] = []

    def in_exec(pid: int, run_id: str, proc: Path | None = None) -> bool | None:
        reads.append(pid)
        return None if pid == daemon and reads.count(pid) == 1 else real(pid, run_id, proc)

    with leftovers.Containment() as box:
        command = box.popen(["sh", "-c", script], cwd=tmp_path, env=box.environment(os.environ), start_new_session=True)
        box.watch(command.pid)
        (tmp_path / "go").touch()
        assert command.wait(timeout=10) == 0
        daemon = int((tmp_path / "daemon.pid").read_text())
        monkeypatch.setattr(leftovers, "has_marker", in_exec)
        box.kill()
    monkeypatch.undo()
    try:
        assert (box.killed, reads.count(daemon), exists(daemon)) == (1, 2, False)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon, 9)


def _handed(pid: int, low: int | None, high: int | None) -> bool:
    """Whether the kernel may have handed out ``pid`` between ``last_pid()`` read as ``low`` and as ``high``.

    A run reads such a pid again (the process listed under it may be a new one, of the run): after
    pids went round from pid_max (32,768 here, a few times over a busy test session), that is every
    low pid, the oldest processes of the host included."""
    if low is None or high is None:
        return False
    return low < pid <= high if low <= high else pid > low or pid <= high


def test_a_run_reads_nothing_of_processes_that_ran_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first poll read /proc/PID/stat of every process of the host, and the end of the run
    again: 15 to 70 ms of each command router get on a host with a few hundred processes, every few
    seconds for as long as the controller runs. A process running before the command started
    cannot descend from it: listing /proc tells those apart without reading them."""
    older = subprocess.Popen(["sleep", "300"], start_new_session=True)  # same user, before the run
    try:
        time.sleep(0.05)
        # Each with its start: a pid of these may end and be handed out again to a process of the
        # run (pids wrap at pid_max, 32,768 here, a few times over a busy test session), which is read.
        handed_from = leftovers.last_pid()
        started = {pid: info.start for pid, info in leftovers.processes().items()}
        stats: list[int] = []
        environs: list[int] = []
        real_stat, real_marker = leftovers.read_stat, leftovers.has_marker

        def counted_stat(pid: int, proc: Path | None = None) -> leftovers.ProcInfo | None:
            stats.append(pid)
            return real_stat(pid, proc)

        def counted_marker(pid: int, run_id: str, proc: Path | None = None) -> bool | None:
            environs.append(pid)
            return real_marker(pid, run_id, proc)

        monkeypatch.setattr(leftovers, "read_stat", counted_stat)
        monkeypatch.setattr(leftovers, "has_marker", counted_marker)
        done = run_command(ESCAPES + "exit 0", cwd=tmp_path, env=os.environ, timeout_s=20)
        monkeypatch.undo()
        handed_to = leftovers.last_pid()
        assert (done.exit_code, done.strays_killed) == (0, 2)  # what it left is found as before
        assert_all_gone(tmp_path)
        assert older.pid in started and older.poll() is None
        before = {
            pid
            for pid, start in started.items()
            if (info := leftovers.read_stat(pid)) and info.start == start and not _handed(pid, handed_from, handed_to)
        }
        assert older.pid in before  # the same processes as before the run, still running
        assert (sorted(set(stats) & before), sorted(set(environs) & before)) == ([], [])
    finally:
        older.kill()
        older.wait()


def test_a_pid_handed_out_again_since_the_run_began_is_read(tmp_path: Path) -> None:
    """Processes running before the run are passed over by pid; the pid of one that ended may be
    handed out again, to a process of the run (the kernel comes round to it after pid_max): made
    certain here by taking the daemon's pid for an older process's, handed out since the last scan."""
    script = "( setsid sh -c 'echo $$ > daemon.pid; exec sleep 300' & ); while [ ! -s daemon.pid ]; do sleep 0.01; done"
    with leftovers.Containment() as box:
        command = box.popen(["sh", "-c", script], cwd=tmp_path, env=box.environment(os.environ), start_new_session=True)
        box.watch(command.pid)
        assert command.wait(timeout=10) == 0
        daemon = int((tmp_path / "daemon.pid").read_text())
        try:
            assert box._handed is not None  # this kernel says which pid it handed out last
            box._before.add(daemon)
            box._handed = daemon - 1
            box.kill()
            assert (box.killed, exists(daemon)) == (1, False)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon, 9)
