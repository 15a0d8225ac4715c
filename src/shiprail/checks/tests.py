"""Stage's test commands: run each one for real and judge it by its exit code and JUnit report.

A test command runs through the shell in its ``cwd`` (relative to the project root), with the
plan's ``env`` over the caller's environment, in a process group of its own so that a timeout
kills everything it started, not just the shell. It passes when it exits 0 and, when it names a
``junit`` report, that report was written by this run and holds no failure and no error.

This module also holds what every stage check shares: ``CheckResult`` (what is recorded as gate
evidence) and ``run_command`` (a bounded, fully-killed subprocess with the tails of its output),
which the command router runs its commands with too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shiprail import defaults
from shiprail.checks.leftovers import Containment
from shiprail.durations import format_duration
from shiprail.providers.common import one_line
from shiprail.schema.plan import TestCommand
from shiprail.text import shell_status, signal_name

KIND = "tests"
"""The ``kind`` test runs are recorded under; the ``tests`` gate reads these records."""


@dataclass(frozen=True)
class CheckResult:
    """One stage check run, as it is recorded: the verdict, one line, and the evidence."""

    kind: str
    name: str
    passed: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "name": self.name,
            "passed": self.passed,
            "summary": self.summary,
            "evidence": self.evidence,
        }


# ------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Finished:
    """How a command ended."""

    exit_code: int | None
    """None when it could not start; negative (-signal) when a signal ended it."""
    timed_out: bool
    duration_s: float
    stdout_tail: str
    stderr_tail: str
    stdout_bytes: int
    stderr_bytes: int
    start_error: str | None = None
    """Why the command could not be started at all (a missing executable or directory)."""
    output_cap: int | None = None
    """The cap (bytes of stdout and stderr together) its output passed, so it was killed; None if it did not."""
    via_shell: bool = False
    """Whether it ran through ``/bin/sh -c``, whose status 128 + N means a command it ran died of signal N."""
    strays_killed: int = 0
    """Processes it left running outside its process group (``setsid``, daemons), killed when it ended."""

    def evidence(self) -> dict[str, Any]:
        """The facts about the run that go into gate evidence."""
        return {
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration_s": round(self.duration_s, 3),
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "start_error": self.start_error,
            "output_cap_bytes": self.output_cap,
            "strays_killed": self.strays_killed,
        }

    @property
    def signalled(self) -> bool:
        """Whether a signal ended it (rather than its own exit)."""
        return self.exit_code is not None and self.exit_code < 0

    def ended(self) -> str:
        """How it ended, for a summary: ``exited with 3``, or ``was killed by SIGKILL``."""
        if self.exit_code is not None and self.exit_code < 0:
            return f"was killed by {signal_name(-self.exit_code)}"
        if self.via_shell and self.exit_code is not None:
            return f"exited with {shell_status(self.exit_code)}"
        return f"exited with {self.exit_code}"

    def capped(self) -> str:
        """Why a command whose output passed the cap failed: ``its output passed the 64 MiB cap after 3.1 s``."""
        assert self.output_cap is not None
        return f"its output passed the {byte_size(self.output_cap)} cap after {seconds(self.duration_s)}"

    def last_line(self) -> str:
        """The last non-empty line it printed (stderr first): usually the reason it failed."""
        for text in (self.stderr_tail, self.stdout_tail):
            lines = [plain(line) for line in text.splitlines()]
            lines = [line for line in lines if line.strip()]
            if lines:
                return one_line(lines[-1], 200)
        return ""


# Terminal escapes in a command's output: CSI sequences (colours: ESC[31m), OSC sequences (a window
# title: ESC]0;…BEL) and the two-character ones; then any other control character.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """``text`` without terminal escapes and control characters.

    Test runners colour their output when CI asks them to (``FORCE_COLOR``, ``--color=yes``): the
    line a summary quotes would otherwise carry ``ESC[31m`` into the terminal that prints it, the
    audit trail and the notifications, where it is noise at best and rewrites the screen at worst.
    """
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def byte_size(n: int) -> str:
    """``64 MiB``, ``512 KiB``, ``100 bytes``: a size as summaries print it."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def _tail(handle: IO[bytes], limit: int) -> tuple[str, int]:
    """The last ``limit`` bytes written to ``handle`` as text, and how many bytes were written in all."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit))
    text = handle.read().decode("utf-8", errors="replace")
    if size > limit:
        text = f"[… first {size - limit} bytes cut]\n{text}"
    return text, size


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # The group may already be gone (everything exited), or never have existed.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop(proc: subprocess.Popen[bytes], box: Containment, grace_s: float) -> None:
    """Stop the command's whole process group, and what it started outside it: SIGTERM, then
    SIGKILL after ``grace_s`` (for those outside the group, once the command is gone)."""
    _signal_group(proc.pid, signal.SIGTERM)
    box.signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def run_command(
    command: str | Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    timeout_s: float,
    tail_bytes: int = defaults.CHECK_OUTPUT_TAIL_BYTES,
    grace_s: float = defaults.CHECK_KILL_GRACE_SECONDS,
    max_output_bytes: int = defaults.CHECK_OUTPUT_MAX_BYTES,
    poll_s: float = defaults.CHECK_OUTPUT_POLL_SECONDS,
) -> Finished:
    """Run ``command`` (a string goes through the shell) in ``cwd`` (None: shiprail's own) and wait
    at most ``timeout_s`` seconds. Stage checks and the command router's commands run through it.

    The command gets a session (and so a process group) of its own: on timeout the whole group is
    terminated, and whatever it left running in the background is killed once it exits, so no check
    leaks processes; what it started outside its group (``setsid``, a daemon's double fork) is found
    and killed with it (``leftovers.Containment``). Output goes to temporary files rather than
    pipes: a background child holding a pipe open can then never make a finished command look hung,
    and a chatty command cannot fill memory; only the last ``tail_bytes`` of each stream are kept.
    Those files are looked at every ``poll_s`` while the command runs: once stdout and stderr
    together pass ``max_output_bytes``, the whole group is killed (``output_cap`` says so), so a
    command that prints without end cannot fill the disk before its timeout.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, Containment() as box:
        started = time.monotonic()
        try:
            proc = box.popen(
                command,
                shell=isinstance(command, str),
                cwd=cwd,
                env=box.environment(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            return Finished(None, False, 0.0, "", "", 0, 0, f"{type(exc).__name__}: {exc.strerror or exc}")
        timed_out, capped = False, False
        deadline = started + timeout_s
        box.watch(proc.pid)  # even if it has already exited: its process group is known by its pid
        try:
            while proc.poll() is None:
                box.watch(proc.pid)
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    _stop(proc, box, grace_s)
                    break
                if os.fstat(out.fileno()).st_size + os.fstat(err.fileno()).st_size > max_output_bytes:
                    capped = True
                    # Straight to SIGKILL: a SIGTERM grace would let it write on for seconds more,
                    # which is what the cap is there to stop.
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=min(poll_s, left))
        except BaseException:
            # Interrupted (Ctrl-C): never leave the command running behind us (leaving `box` kills
            # what went outside its group).
            _stop(proc, box, grace_s)
            raise
        duration = time.monotonic() - started
        _signal_group(proc.pid, signal.SIGKILL)  # background leftovers of a command that exited
        box.kill()  # and those that left its process group (setsid, a daemon's double fork)
        stdout, stdout_bytes = _tail(out, tail_bytes)
        stderr, stderr_bytes = _tail(err, tail_bytes)
    return Finished(
        proc.returncode,
        timed_out,
        duration,
        stdout,
        stderr,
        stdout_bytes,
        stderr_bytes,
        output_cap=max_output_bytes if capped else None,
        via_shell=isinstance(command, str),
        strays_killed=box.killed,
    )


def resolve_dir(root: Path, cwd: str | None) -> Path:
    """A plan's directory: relative ones are relative to the project root."""
    return (root / cwd).resolve() if cwd else root.resolve()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):  # in blocks: a report can be huge
            digest.update(block)
    return digest.hexdigest()


def seconds(duration_s: float) -> str:
    """A run's duration as summaries print it: ``3.1 s``."""
    return f"{duration_s:.1f} s"


# ------------------------------------------------------------------------------ JUnit


class JUnitError(ValueError):
    """A file that is not a JUnit XML report."""


@dataclass(frozen=True)
class FailedCase:
    """A test case that failed or errored, named ``classname::name``."""

    name: str
    outcome: str  # "failure" or "error"
    message: str


@dataclass(frozen=True)
class JUnitReport:
    """The counts of a JUnit report and its failing cases."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failing: tuple[FailedCase, ...] = ()
    unlisted: int = 0
    """Failures and errors the suites' own counts declare beyond the failing cases listed."""

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    @property
    def ok(self) -> bool:
        """No failure and no error, listed or declared."""
        return self.failed == 0 and self.errors == 0 and self.unlisted == 0


def _local(tag: str) -> str:
    """A tag without its XML namespace (``{ns}testcase`` → ``testcase``)."""
    return tag.rsplit("}", 1)[-1]


def _message(child: ET.Element) -> str:
    """What a failure or error says: its message attribute, else the first line of its text."""
    text = child.get("message") or next((ln for ln in (child.text or "").splitlines() if ln.strip()), "")
    text = text or child.get("type") or _local(child.tag)
    return one_line(text, defaults.CHECK_MESSAGE_CHARS)


def parse_junit(data: bytes) -> JUnitReport:
    """Count the test cases of a JUnit XML report held in memory (see ``parse_junit_file``)."""
    return parse_junit_file(io.BytesIO(data))


def parse_junit_file(source: IO[bytes]) -> JUnitReport:
    """Count the test cases of a JUnit XML report (a ``<testsuites>`` or a ``<testsuite>`` root).

    A case counts once: failed if it has a ``<failure>``, else errored if it has an ``<error>``
    (pytest reports setup and collection errors so), else skipped if it has a ``<skipped>``, else
    passed. Nested suites are walked, so suites of suites count every case once.

    The report is read as a stream and each case is dropped once counted: a suite that captures
    its output (``<system-out>`` in every case) writes reports of hundreds of MiB, which read
    whole took three times their size in memory and could take the CI runner down with them.
    """
    counts = {"passed": 0, "failure": 0, "error": 0, "skipped": 0}
    failing: list[FailedCase] = []
    declared = 0
    # The open elements, each with whether a <testsuite> was seen in it (a suite's own counts
    # are read only for innermost suites, so a suite of suites does not count its cases twice).
    open_: list[tuple[str, list[bool]]] = []
    try:
        for event, element in ET.iterparse(source, events=("start", "end")):
            tag = _local(element.tag)
            if event == "start":
                if not open_ and tag not in ("testsuites", "testsuite"):
                    raise JUnitError(f"its root element is <{tag}>, not <testsuites> or <testsuite>")
                if tag == "testsuite" and open_:
                    open_[-1][1][0] = True
                open_.append((tag, [False]))
                continue
            _, has_suite = open_.pop()
            if tag == "testcase":
                children = {_local(c.tag): c for c in reversed(list(element))}  # the first of each kind wins
                outcome = next((k for k in ("failure", "error", "skipped") if k in children), "passed")
                counts[outcome] += 1
                if outcome in ("failure", "error"):
                    classname, name = element.get("classname", ""), element.get("name", "?")
                    failing.append(
                        FailedCase(f"{classname}::{name}" if classname else name, outcome, _message(children[outcome]))
                    )
            elif tag == "testsuite" and not has_suite[0]:
                # A suite may count failures it lists no case for (<testsuite tests="3"
                # failures="3"/>): the innermost suites' own counts, where given, must not exceed
                # what the cases show.
                for attribute in ("failures", "errors"):
                    with contextlib.suppress(TypeError, ValueError):
                        declared += max(0, int(element.get(attribute, "0")))
            if not open_ or open_[-1][0] != "testcase":
                element.clear()  # counted (a case, a suite) or not needed (output beside the cases)
    except ET.ParseError as exc:
        raise JUnitError(f"it is not well-formed XML ({exc})") from exc
    return JUnitReport(
        passed=counts["passed"],
        failed=counts["failure"],
        errors=counts["error"],
        skipped=counts["skipped"],
        failing=tuple(failing),
        unlisted=max(0, declared - counts["failure"] - counts["error"]),
    )


def _named(cases: Sequence[FailedCase]) -> str:
    shown = [c.name for c in cases[: defaults.CHECK_FAILURES_NAMED]]
    more = len(cases) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def report_summary(report: JUnitReport, duration_s: float) -> str:
    """One line: ``12 passed, 1 failed (test_x::test_y), 2 skipped in 3.1 s``."""
    parts = [f"{report.passed} passed"]
    if report.failed:
        parts.append(f"{report.failed} failed ({_named([c for c in report.failing if c.outcome == 'failure'])})")
    if report.errors:
        word = "error" if report.errors == 1 else "errors"
        parts.append(f"{report.errors} {word} ({_named([c for c in report.failing if c.outcome == 'error'])})")
    if report.skipped:
        parts.append(f"{report.skipped} skipped")
    if report.unlisted:
        parts.append(f"{report.unlisted} more failed or errored by the suites' counts (no case listed)")
    if report.total == 0:
        parts = ["no test cases in the report", *parts[1:]]
    return f"{', '.join(parts)} in {seconds(duration_s)}"


def report_evidence(report: JUnitReport) -> dict[str, Any]:
    """The counts and the failing cases (the first few dozen) of a report."""
    kept = report.failing[: defaults.CHECK_FAILURES_KEPT]
    return {
        "passed": report.passed,
        "failed": report.failed,
        "errors": report.errors,
        "skipped": report.skipped,
        "failing": [{"case": c.name, "outcome": c.outcome, "message": c.message} for c in kept],
        "failing_not_shown": len(report.failing) - len(kept),
    }


# ------------------------------------------------------------------------------ the check


def run_test(test: TestCommand, root: Path, environ: Mapping[str, str] | None = None) -> CheckResult:
    """Run one test command of a plan and judge it; never raises for a failing or broken command.

    ``cwd`` is relative to the project ``root``; ``junit`` is relative to ``cwd`` (where the
    command writes it). A report left by an earlier run is removed first, so only a report this
    run wrote can pass the check.
    """
    cwd = resolve_dir(root, test.cwd)
    env = {**(os.environ if environ is None else environ), **test.env}
    report_path = (cwd / test.junit) if test.junit else None
    evidence: dict[str, Any] = {
        "command": test.command,
        "cwd": str(cwd),
        "env": sorted(test.env),  # names only: values may be secrets
        "timeout_s": test.timeout,
        "junit": None,
    }

    def result(passed: bool, summary: str) -> CheckResult:
        return CheckResult(KIND, test.name, passed, summary, evidence)

    if not cwd.is_dir():
        return result(False, f"its directory {test.cwd} ({cwd}) does not exist")
    if report_path is not None and report_path.is_file():
        report_path.unlink()
    done = run_command(test.command, cwd=cwd, env=env, timeout_s=test.timeout)
    evidence |= done.evidence()
    if done.start_error is not None:
        return result(False, f"could not start: {done.start_error}")
    why = done.last_line()
    if done.output_cap is not None:
        # A report it may have written before it was killed does not count: the run did not finish.
        return result(False, f"{done.capped()}; its processes were killed" + (f" ({why})" if why else ""))
    if done.timed_out:
        return result(
            False,
            f"timed out after {format_duration(test.timeout)}; its processes were killed"
            + (f" ({why})" if why else ""),
        )
    ran = f"{done.ended()} {'after' if done.signalled else 'in'} {seconds(done.duration_s)}"
    if report_path is None:
        if done.exit_code == 0:
            return result(True, f"passed (exit 0) in {seconds(done.duration_s)}")
        return result(False, f"{ran}: {why}" if why else ran)
    assert test.junit is not None
    evidence["junit"] = {"path": str(report_path)}
    if not report_path.is_file():
        return result(False, f"junit report {test.junit} was not written; the command {ran}")
    evidence["junit"]["sha256"] = file_sha256(report_path)
    try:
        with report_path.open("rb") as handle:
            report = parse_junit_file(handle)
    except JUnitError as exc:
        return result(False, f"junit report {test.junit} is unreadable: {exc}; the command {ran}")
    evidence["junit"] |= report_evidence(report)
    summary = report_summary(report, done.duration_s)
    if done.exit_code != 0 and report.ok and report.passed == 0:
        # Nothing ran and the command failed too (pytest exits 5 when it collects no test): the two
        # agree, so no "but"; the tour's project, which has no suite, shows this.
        return result(False, f"{summary}: no test ran, so none passed (the command {done.ended()})")
    if done.exit_code != 0 and report.ok:
        # The report is clean but the command says otherwise (a crash after the report, a
        # coverage threshold, a linter in the same command): the exit code wins.
        return result(False, f"{summary}, but the command {done.ended()}")
    if report.ok and report.passed == 0:
        # No test ran (an empty report, every test skipped): the gate is never passed on tests
        # that did not run, as a load test is never passed on numbers it does not have.
        return result(False, f"{summary}: no test ran, so none passed")
    return result(done.exit_code == 0 and report.ok, summary)
