"""Find and kill what a stage check or a command router's script left running, even outside its
process group (both run through ``shiprail.checks.tests.run_command``).

A check command runs in a process group of its own, and killing that group ends what it started,
unless something left the group: ``setsid sleep 300 &`` in a test script, a server a test runner
starts that daemonizes (fork, ``setsid``, fork again). Those kept running after the check ended,
holding ports and files, where users expect a finished check to leave nothing behind, as CI
systems do. ``Containment`` finds them on Linux without root, three ways together:

- **A marker in the environment.** The command gets ``SHIPRAIL_CHECK_RUN=<random id>``; its
  children inherit it, and neither ``setsid`` nor a double fork drops it. At the end, every
  process shiprail may signal (its own user's: their ``/proc/PID/environ`` is readable) whose
  environment holds the id is killed, wherever it was reparented. Nothing is read of a process
  that was running before the run began (an older one cannot descend from the command): listing
  ``/proc`` then, and the last pid the kernel handed out at each scan since, tell those apart.
  The end of a run scans the others once, and once more only to see that what it killed left
  nothing.
- **The process tree, sampled while the check runs.** Each poll of ``run_command`` records the
  command's descendants (the ``ppid`` links of ``/proc/PID/stat``, read for the processes new
  since the last poll and the check's own, not the whole machine) with their start times, so a
  process that clears its environment (``env -i``) but was seen in the tree is killed too; the
  start time makes sure a pid the system reused for another process is never signalled. The
  descendants of any process found either way are killed with it.
- **A child subreaper.** While a check runs, shiprail's process is a child subreaper
  (``prctl(PR_SET_CHILD_SUBREAPER)``): an orphan of the check is reparented to shiprail rather
  than to PID 1, which in a container is often a CI agent that never waits for its adopted
  children, and shiprail reaps (waits for) the ones it kills, so they leave no zombies; and those
  that ended by themselves before anything saw them alive (``setsid -f`` of a quick job): a dead
  child of shiprail's that left shiprail's session since the command started and is no run's
  command. The flag is process-wide: it is set while at least one check runs and restored after,
  and a child another thread started (and waits for through its ``Popen``) is never reaped
  behind its back: it is in shiprail's session, or a run's command, known as one from its start.

``Containment`` is safe from several threads at once, as the controller calls the command
routers of several releases, and from a process whose other threads run subprocesses of their
own: each run has its own id, tree and roots; the flag is counted under a lock; a process is
signalled only while its pid and start time are the ones found as the run's, and waited for only
when it is also shiprail's child then, so another thread's ``Popen`` child (never in a run's tree,
never carrying its marker) is left to its ``Popen``. An orphan of another thread's subprocess
adopted while the flag is set is reaped by a run if it left shiprail's session and ended before
the run did; one that stayed in the session, or outlived every run, stays a zombie of shiprail's
(none of shiprail's own subprocesses, ``nginx -t`` and ``-s reload``, leaves one). shiprail starts
no other child in a session of its own while it runs commands (the demo starts its helpers
before): one started by another thread during a run, ended and not yet waited for, would be taken
for the run's orphan.

A cgroup v2 per check would be airtight, but needs a delegated, writable cgroup, which a CI
runner or a container seldom gives a non-root user; the above works for any user. What it
cannot find is a process that both clears its environment and leaves the tree between two
polls (0.1 s). Where ``/proc`` or ``prctl`` is missing (not Linux), each step finds nothing and
does nothing: the process group kill of ``run_command`` still applies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

MARKER = "SHIPRAIL_CHECK_RUN"
"""The environment variable that marks every process of one check run."""

PROC = Path("/proc")

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_PF_EXITING = 0x4  # in /proc/PID/stat's flags: the process is in exit(), a zombie in a moment
_KILL_ROUNDS = 5  # a process may fork between a scan and its kill: scan again until none is found
_REAP_WAIT_S = 2.0  # how long to wait for a killed child of ours to be reapable
_EXEC_WAITS_S = (0.002, 0.01, 0.05)  # to read an empty environment again (an exec takes far less)


@dataclass(frozen=True)
class ProcInfo:
    """What ``/proc/PID/stat`` says of a process."""

    pid: int
    ppid: int
    pgid: int
    session: int
    start: int  # clock ticks after boot: with the pid, names the process even if the pid is reused
    zombie: bool
    exiting: bool = False  # dying: its memory, and so its environment, may be gone already


def read_stat(pid: int, proc: Path | None = None) -> ProcInfo | None:
    """The process ``pid``, or None when it is gone (or ``/proc`` is not there)."""
    try:
        text = ((proc or PROC) / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and ')': split after the last.
    fields = text.rsplit(")", 1)[-1].split()
    try:
        exiting = bool(int(fields[6]) & _PF_EXITING)
        return ProcInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]), fields[0] == "Z", exiting)
    except (IndexError, ValueError):
        return None


def listed(proc: Path | None = None) -> set[int]:
    """The pids ``/proc`` lists (nothing of them is read); empty where there is no ``/proc``."""
    try:
        return {int(n) for n in os.listdir(proc or PROC) if n.isdigit()}
    except OSError:
        return set()


def last_pid(proc: Path | None = None) -> int | None:
    """The pid the kernel handed out last (it hands them out in turn, from 300 again after
    ``pid_max``), in the pid namespace of the caller; None where it does not say."""
    try:
        return int(((proc or PROC) / "sys" / "kernel" / "ns_last_pid").read_text())
    except (OSError, ValueError):
        return None


def processes(proc: Path | None = None) -> dict[int, ProcInfo]:
    """Every process ``/proc`` lists; empty where there is no ``/proc``."""
    return rescan({}, (), proc)


def rescan(
    known: Mapping[int, ProcInfo],
    fresh: Collection[int],
    proc: Path | None = None,
    *,
    pids: Collection[int] | None = None,
) -> dict[int, ProcInfo]:
    """``processes()`` again, reading ``/proc/PID/stat`` only for the pids ``known`` does not hold and
    those in ``fresh``; the others are as ``known`` has them (a process's parent and start never
    change, but for an orphan's adoption). Reading every process is a part of a core ten times a
    second on a host with thousands of them; listing ``/proc`` is a hundredth of that. ``pids``:
    only those (listed already), not all ``/proc`` lists.

    A pid freed and used again between two scans is taken for the process it was: that process is
    missed by the tree (not by the marker), as one that leaves the tree between two scans is."""
    table: dict[int, ProcInfo] = {}
    for pid in listed(proc) if pids is None else pids:
        info = known.get(pid) if pid not in fresh else None
        if info is None:
            info = read_stat(pid, proc)
        if info is not None:
            table[pid] = info
    return table


def descendants(roots: set[int], table: Mapping[int, ProcInfo]) -> set[int]:
    """The pids of ``table`` below any of ``roots`` (by their ``ppid`` links), ``roots`` excluded."""
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and child not in roots:
                found.add(child)
                todo.append(child)
    return found


def has_marker(pid: int, run_id: str, proc: Path | None = None) -> bool | None:
    """Whether the environment of ``pid`` holds ``SHIPRAIL_CHECK_RUN=run_id`` (False when it cannot be
    read: another user's, or gone). None when it reads empty: the process is in the middle of an
    ``exec`` (the new program's environment is not set up yet), exiting, or has none at all."""
    try:
        data = ((proc or PROC) / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    if not data:
        return None
    return f"{MARKER}={run_id}".encode() in data.split(b"\0")


# ------------------------------------------------------------------------------ the subreaper flag

_lock = threading.Lock()
_holders = 0
_was_set = False


def _prctl(option: int, arg: int | ctypes.c_int) -> bool:
    """``prctl(option, arg)``; False where it failed or there is no ``prctl`` (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.prctl
    except (OSError, AttributeError):
        return False
    arg_ = ctypes.byref(arg) if isinstance(arg, ctypes.c_int) else ctypes.c_ulong(arg)
    return bool(call(option, arg_, 0, 0, 0) == 0)


def _hold_subreaper() -> None:
    global _holders, _was_set
    with _lock:
        if _holders == 0:
            current = ctypes.c_int(0)
            _was_set = _prctl(_PR_GET_CHILD_SUBREAPER, current) and current.value != 0
            if not _was_set:
                _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        _holders += 1


def _release_subreaper() -> None:
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0 and not _was_set:
            _prctl(_PR_SET_CHILD_SUBREAPER, 0)


# ------------------------------------------------------------------------------ the runs' commands

_starting = threading.Lock()
_commands: set[int] = set()
"""The commands of the runs in progress in this process (their pids): each is waited for by its
``Popen``, never by a reaper. Added to under ``_starting`` as the command is started, so that an
orphan's reaper, holding it, sees every command that exists."""


# ------------------------------------------------------------------------------ containment


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _send(pid: int, start: int, sig: signal.Signals) -> bool:
    """Signal the process ``pid`` if it is still the one that started at ``start``."""
    pidfd = -1
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)  # holds the process: the check below cannot race a reused pid
    try:
        now = read_stat(pid)
        if now is None or now.start != start or now.zombie:
            return False
        try:
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    finally:
        if pidfd >= 0:
            os.close(pidfd)


class Containment:
    """One check run's processes, wherever they went: mark them, watch them, kill what is left.

    Use as a context manager around the run (it holds the subreaper flag meanwhile): start the
    command inside it, with ``popen`` and ``environment(env)``, call ``watch(pid)`` as it runs,
    ``signal(SIGTERM)`` to ask everything to stop, and ``kill()`` once the command has exited
    (leaving does it too).
    """

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(8)
        self._me = os.getpid()
        self._session = os.getsid(0)
        self._roots: set[int] = set()
        self._seen: dict[int, int] = {}  # pid -> start time, of every process seen in the tree
        self._signalled: set[tuple[int, int]] = set()
        self._table: dict[int, ProcInfo] = {}  # /proc as the last watch saw it
        # The start time of the oldest command watched: every process of the run started then or
        # later (a child starts after its parent), so an older one's environment is never read.
        self._born: int | None = None
        self._last: dict[int, ProcInfo] | None = None  # /proc as the last kill round saw it
        self._done = False  # a kill() found nothing left, and nothing was watched since
        # The processes running before the run began (see __enter__), as long as every scan since
        # listed them: none can be the run's.
        self._before: set[int] = set()
        # The last pid handed out at the last scan, while _before's pids are known to be theirs (none
        # handed out again since): scans then pass over them. None: every process is read.
        self._handed: int | None = None

    @property
    def killed(self) -> int:
        """How many processes outside the command's process group were signalled to end."""
        return len(self._signalled)

    def __enter__(self) -> Containment:
        # Before the command starts: every process of the run starts later. Reading each process
        # of the host for its parent and start (the first watch did, and the end of the run again)
        # took 15 to 70 ms of every router get here, with a few hundred processes.
        same_namespace = _readlink(PROC / "self") == str(os.getpid())  # ns_last_pid speaks of ours
        self._handed = last_pid() if same_namespace else None
        self._before = listed()
        _hold_subreaper()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.kill()
        finally:
            with _starting:
                _commands.difference_update(self._roots)
            _release_subreaper()

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with this run's marker."""
        return {**env, MARKER: self.run_id}

    def popen(self, command: str | Sequence[str], **options: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(command, **options)``: the run's command, known as a run's command from
        the moment it exists, so that no run's reaper waits for it even if it exits at once (then
        ``watch`` it)."""
        with _starting:
            proc: subprocess.Popen[bytes] = subprocess.Popen(command, **options)
            _commands.add(proc.pid)
        self._roots.add(proc.pid)
        return proc

    def watch(self, pid: int) -> None:
        """Note the process ``pid`` (the command, leader of its process group) and whatever runs below it now."""
        if pid not in self._roots:
            with _starting:
                _commands.add(pid)
        self._roots.add(pid)
        self._done = False
        # The check's own processes are read each time (one may have exited, its pid reused); the
        # rest of the machine only when new.
        if pid in self._before:  # started before the run began (a caller's mistake): read everything
            self._handed = None
        self._table = table = self._scan(self._table, self._roots | self._seen.keys())
        root = table.get(pid)
        if root is not None and (self._born is None or root.start < self._born):
            self._born = root.start
        for found in {pid} | descendants({pid}, table):
            info = table.get(found)
            if info is not None and not info.zombie:
                self._seen.setdefault(found, info.start)

    def _scan(self, known: Mapping[int, ProcInfo], fresh: Collection[int]) -> dict[int, ProcInfo]:
        """``rescan(known, fresh)`` of the processes that are not ``_before``'s. A pid of
        ``_before`` is dropped when ``/proc`` no longer lists it, or when the kernel may have handed
        it out again since the last scan (it lies between the last pids handed out then and now):
        the process listed under it may be a new one, of the run. Only a kernel that handed out
        every pid (``pid_max``) between two scans (a tenth of a second apart as the command runs)
        could hide one."""
        pids = listed()
        self._before &= pids
        if self._handed is None:
            return rescan(known, fresh, pids=pids)
        now = last_pid()
        if now is None:
            self._handed = None
            return rescan(known, fresh, pids=pids)
        low, high = self._handed, now
        if low != high:
            if low < high:
                self._before = {pid for pid in self._before if not low < pid <= high}
            else:  # it went round, from pid_max to the lowest pids
                self._before = {pid for pid in self._before if high < pid <= low}
        self._handed = now
        return rescan(known, fresh, pids=pids - self._before)

    def _targets(self) -> dict[int, int]:
        """The processes of this run alive now outside the command's process group (which the caller
        signals as a group), as pid -> start time; never shiprail's own."""
        self._last = table = self._scan({}, ())
        live = {pid: p for pid, p in table.items() if not p.zombie and pid != self._me}
        picked = {pid for pid, p in live.items() if self._seen.get(pid) == p.start}
        # Only a process started since the run began can carry its marker: on a host with
        # thousands of processes, reading each one's environment at the end of every run is most
        # of its cost (a command router runs once a minute per release in a long-lived controller).
        young = {pid for pid, p in live.items() if pid not in picked and (self._born is None or p.start >= self._born)}
        marks = {pid: has_marker(pid, self.run_id) for pid in young}
        # One that read empty was in the middle of an exec (`setsid -f`'s child becoming the program
        # it runs, just as the command ended), or exiting: read again a moment later, once the exec
        # is done. Taken for another's, it ran on, or was left a zombie.
        for wait in _EXEC_WAITS_S:
            unsure = [pid for pid, mark in marks.items() if mark is None]
            if not unsure:
                break
            time.sleep(wait)
            for pid in unsure:
                now = read_stat(pid)
                alive = now is not None and now.start == live[pid].start and not (now.zombie or now.exiting)
                marks[pid] = has_marker(pid, self.run_id) if alive else False  # the dying are reaped
        picked |= {pid for pid, mark in marks.items() if mark}
        picked |= descendants(picked, live)
        for pid in picked:
            self._seen.setdefault(pid, live[pid].start)
        return {pid: live[pid].start for pid in picked if live[pid].pgid not in self._roots}

    def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` to every process of this run alive now outside its process group; how many got it."""
        sent = 0
        for pid, start in self._targets().items():
            if _send(pid, start, sig):
                self._signalled.add((pid, start))
                sent += 1
        return sent

    def kill(self) -> None:
        """SIGKILL every process of this run still alive outside its process group, and reap those
        shiprail adopted. Once a kill found nothing left, another (leaving the context after
        ``run_command``'s own) does nothing until the next ``watch``: no process of the run is left
        to start one, and each scan lists the whole of ``/proc``."""
        if self._done:
            return
        for _ in range(_KILL_ROUNDS):
            if not self.signal(signal.SIGKILL):
                self._done = True
                break
        self._reap()

    def _orphaned(self, p: ProcInfo) -> bool:
        """Whether ``p`` is a dead (or dying) child of shiprail's that may be an orphan of this
        run's: out of shiprail's session, and started since the command (shiprail's older children
        are not the run's, such as a helper the demo started with a session of its own). Whether
        it is a run's command, ``_reap`` asks."""
        return (
            (p.zombie or p.exiting)
            and p.ppid == self._me
            and p.session != self._session
            and self._born is not None
            and p.start >= self._born
            and p.pid not in self._before  # started in the same clock tick as the command, but before it
        )

    def _reap(self) -> None:
        """Wait for the run's processes that became shiprail's children (adopted as subreaper): those
        seen or found as the run's, those of the command's process group, which the caller killed,
        and what runs (or lies dead) below any of them. The command itself is left to its ``Popen``.

        The last kill round's scan may be older than the adoption: a process whose parent, killed
        too, had not exited yet still names that parent, and is shiprail's child only a moment
        later. It is waited for while its parent is one of the run's (dying, or a zombie of
        shiprail's that this loop reaps), not dropped as another's: each dropped one stayed a
        zombie of a long-lived controller, one per run of a command router.

        So are the orphans that left the command's process group and were done before anything
        saw them alive (``setsid -f`` or a daemon's double fork of a quick job, between two polls),
        or were ending as the run was scanned: adopted by shiprail, then dead, neither seen in the
        tree nor marked (a dying process's environment is gone). A dead or dying child of
        shiprail's that left shiprail's session, started since the command and is no run's
        command is one: shiprail's other children (``nginx -t``, a ``subprocess.run``) stay in its
        session, and a run's command, whose ``Popen`` waits for it, is known as one from its start
        (``popen``). Reaping it would leave that ``Popen`` to report exit status 0."""
        deadline = time.monotonic() + _REAP_WAIT_S
        table = self._last if self._last is not None else self._scan({}, ())  # the last kill round's scan
        group = {pid: p.start for pid, p in table.items() if p.pgid in self._roots}
        pending = {**self._seen, **group}
        # Below the run's processes as the scan found them (a pid seen once and since reused for
        # another process is not the run's, nor what runs below it).
        found = {pid for pid, start in pending.items() if pid in table and table[pid].start == start}
        pending |= {pid: table[pid].start for pid in descendants(found, table) if pid not in pending}
        # Those dead or dying now, not only at the scan: one that was ending as the run was
        # scanned was alive then, its environment already gone (no marker).
        born = self._born if self._born is not None else -1
        young = [p for pid, p in table.items() if pid not in pending and born >= 0 and p.start >= born]
        with _starting:  # every command started so far is in _commands
            for p in young:
                now = p if p.zombie else read_stat(p.pid)
                if now is not None and now.start == p.start and self._orphaned(now) and p.pid not in _commands:
                    pending[p.pid] = p.start
        for root in self._roots:
            pending.pop(root, None)
        while pending:
            for pid, start in list(pending.items()):
                info = read_stat(pid)
                if info is None or info.start != start:
                    del pending[pid]  # gone (reaped), or its pid is another process's now
                elif info.ppid != self._me:
                    if info.ppid not in pending:
                        del pending[pid]  # not ours to wait for, nor about to be
                elif info.zombie:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                    del pending[pid]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
