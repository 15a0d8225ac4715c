"""Stage's load test: a headless Locust run (or a command writing Locust-style CSV stats), judged
against the plan's thresholds.

With ``locustfile`` shiprail runs ``locust -f FILE --headless -u USERS -r SPAWN_RATE -t Ns --host
HOST --csv PREFIX --only-summary`` from the project root and reads ``PREFIX_stats.csv``, which it
keeps under ``.shiprail/checks/<release>/``. With ``command`` it runs the command through the shell
from the project root and reads ``stats_csv``. Either way the verdict comes from the CSV's
``Aggregated`` row: the 95th percentile (``95%``, ms), the error rate (``Failure Count`` /
``Request Count``) and the throughput (``Requests/s``), each against its threshold. A run that
cannot start, exits non-zero, writes no CSV or makes no request fails the check.

Locust rewrites its CSV every second while it runs, and does not rewrite it at exit, so the
numbers are those of the run's last second or so: negligible for the minutes a load test lasts.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiprail import defaults
from shiprail.checks.tests import CheckResult, file_sha256, run_command, seconds
from shiprail.durations import format_duration
from shiprail.schema.plan import LoadTest, LoadThresholds

KIND = "load_test"
NAME = "load_test"
"""The kind and name a load test run is recorded under; the ``load_test`` gate reads that record."""

# Column names Locust writes, with the names older versions used ("# requests" before 2.0).
REQUESTS_COLUMNS = ("Request Count", "# requests")
FAILURES_COLUMNS = ("Failure Count", "# failures")
RPS_COLUMNS = ("Requests/s",)
P95_COLUMNS = ("95%",)
AGGREGATED = "Aggregated"


class StatsError(ValueError):
    """A stats CSV without the numbers a load test is judged on."""


@dataclass(frozen=True)
class LoadStats:
    """The ``Aggregated`` row of a Locust stats CSV."""

    requests: int
    failures: int
    rps: float | None
    p95_ms: float | None
    median_ms: float | None = None
    average_ms: float | None = None
    max_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed requests as a share of all; None when there were none."""
        return self.failures / self.requests if self.requests else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "error_rate": self.error_rate,
            "rps": self.rps,
            "p95_ms": self.p95_ms,
            "median_ms": self.median_ms,
            "average_ms": self.average_ms,
            "max_ms": self.max_ms,
        }


def _number(row: Mapping[str, str | None], names: Sequence[str]) -> float | None:
    """The first of ``names`` present in ``row`` as a number; None for a missing column, "N/A", or a
    value no measurement has (NaN, infinite, negative: the file was not written by a load test)."""
    for name in names:
        raw = row.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            return None  # Locust writes "N/A" for percentiles of an empty run
        return value if math.isfinite(value) and value >= 0 else None
    return None


def parse_stats_csv(text: str) -> LoadStats:
    """Read the ``Aggregated`` row of a Locust ``*_stats.csv``; ``StatsError`` when it is unusable."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        raise StatsError("it is empty")
    for wanted in (REQUESTS_COLUMNS, FAILURES_COLUMNS):
        if not any(name in header for name in wanted):
            raise StatsError(f"it has no {wanted[0]!r} column (columns: {', '.join(header)})")
    row = next((r for r in reader if (r.get("Name") or "").strip() == AGGREGATED), None)
    if row is None:
        raise StatsError(f"it has no {AGGREGATED!r} row")
    requests, failures = _number(row, REQUESTS_COLUMNS), _number(row, FAILURES_COLUMNS)
    if requests is None or failures is None:
        raise StatsError(f"its {AGGREGATED!r} row has no request or failure count (or not one of 0 or more)")
    if failures > requests:
        raise StatsError(f"its {AGGREGATED!r} row counts {failures:g} failures of {requests:g} requests")
    return LoadStats(
        requests=int(requests),
        failures=int(failures),
        rps=_number(row, RPS_COLUMNS),
        p95_ms=_number(row, P95_COLUMNS),
        median_ms=_number(row, ("Median Response Time",)),
        average_ms=_number(row, ("Average Response Time",)),
        max_ms=_number(row, ("Max Response Time",)),
    )


@dataclass(frozen=True)
class ThresholdResult:
    """One threshold against the measured value."""

    name: str  # the LoadThresholds field: p95_ms, error_rate, min_rps
    value: float | None
    limit: float
    passed: bool
    text: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "threshold": self.name,
            "value": self.value,
            "limit": self.limit,
            "comparison": ">=" if self.name == "min_rps" else "<=",
            "passed": self.passed,
            "text": self.text,
        }


def _pct(x: float, places: int = 2) -> str:
    return f"{x * 100:.{places}f}%"


def _pct_limit(x: float) -> str:
    """An error-rate limit as a percentage with 2 places, or as many more as it needs: ``0.125%``, not
    the ``0.13%`` that would misstate it."""
    places = 2
    while places < 8 and abs(float(f"{x * 100:.{places}f}") - x * 100) > 1e-9:
        places += 1
    return _pct(x, places)


def _apart(value: float, limit: float, shown: Callable[[float, int], str], places: int) -> str:
    """``value`` as ``shown`` prints it with ``places`` decimals, or with as many more as it takes not
    to print a value that is not the limit as the limit: a failed threshold must not read
    ``10.0 req/s < 10 req/s`` (9.96) or ``error rate 1.00% > 1.00%`` (1.001 %)."""
    text = shown(value, places)
    while value != limit and text == shown(limit, places) and places < 12:
        places += 1
        text = shown(value, places)
    return text


def _ms(x: float, places: int) -> str:
    return _num(float(round(x, places)))


def _rps(x: float, places: int) -> str:
    return f"{x:.{places}f}"


def _num(x: float) -> str:
    """A limit as written in the plan: ``300``, ``0.5``, ``1000000`` (not ``1e+06``)."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def judge(stats: LoadStats, thresholds: LoadThresholds) -> list[ThresholdResult]:
    """Every threshold the plan sets, in the order p95, error rate, throughput.

    A value that is missing (no requests, no such column) fails its threshold: a load test is
    never passed on numbers it does not have.
    """
    out: list[ThresholdResult] = []
    if thresholds.p95_ms is not None:
        limit, v = thresholds.p95_ms, stats.p95_ms
        if v is None:
            out.append(ThresholdResult("p95_ms", None, limit, False, f"p95 unknown (limit {_num(limit)} ms)"))
        else:
            ok = v <= limit
            text = f"p95 {_apart(v, limit, _ms, 1)} ms {'<=' if ok else '>'} {_num(limit)} ms"
            out.append(ThresholdResult("p95_ms", v, limit, ok, text))
    if thresholds.error_rate is not None:
        limit, v = thresholds.error_rate, stats.error_rate
        if v is None:
            text = f"error rate unknown (limit {_pct_limit(limit)})"
            out.append(ThresholdResult("error_rate", None, limit, False, text))
        else:
            ok = v <= limit
            text = f"error rate {_apart(v, limit, _pct, 2)} {'<=' if ok else '>'} {_pct_limit(limit)}"
            out.append(ThresholdResult("error_rate", v, limit, ok, text))
    if thresholds.min_rps is not None:
        limit, v = thresholds.min_rps, stats.rps
        if v is None:
            text = f"throughput unknown (minimum {_num(limit)} req/s)"
            out.append(ThresholdResult("min_rps", None, limit, False, text))
        else:
            ok = v >= limit
            text = f"{_apart(v, limit, _rps, 1)} req/s {'>=' if ok else '<'} {_num(limit)} req/s"
            out.append(ThresholdResult("min_rps", v, limit, ok, text))
    return out


def verdict(stats: LoadStats, results: Sequence[ThresholdResult]) -> tuple[bool, str]:
    """Pass or fail, and the one-line summary: failed thresholds first, then the rest."""
    failed = [r for r in results if not r.passed]
    counts = f"{stats.requests} requests, {stats.failures} failed"
    if not results:
        return False, f"no thresholds to judge the run by; {counts}"  # the plan guardrails require one
    if stats.requests == 0:
        return False, "no requests were made; " + "; ".join(r.text for r in results)
    if failed:
        held = [r.text for r in results if r.passed]
        return False, (
            f"{len(failed)} of {len(results)} thresholds failed: "
            + "; ".join(r.text for r in failed)
            + (f" (held: {'; '.join(held)})" if held else "")
            + f"; {counts}"
        )
    return True, "; ".join(r.text for r in results) + f"; {counts}"


def locust_command(env: Mapping[str, str]) -> list[str] | None:
    """How to start Locust: ``locust`` on the command's PATH, else the one installed beside shiprail."""
    found = shutil.which("locust", path=env.get("PATH"))
    if found:
        return [found]
    if importlib.util.find_spec("locust") is not None:
        return [sys.executable, "-m", "locust"]
    return None


def run_load_test(load: LoadTest, root: Path, artifacts: Path, environ: Mapping[str, str] | None = None) -> CheckResult:
    """Run the plan's load test from the project ``root`` and judge it; never raises for a bad run.

    ``artifacts`` is where Locust writes its CSV files. A stats CSV left by an earlier run is
    removed first, so only numbers this run produced can pass the check.
    """
    env = dict(os.environ if environ is None else environ)
    timeout = load.duration + defaults.LOAD_TEST_GRACE_SECONDS
    evidence: dict[str, Any] = {
        "mode": "locust" if load.locustfile else "command",
        "cwd": str(root.resolve()),
        "duration_s": load.duration,
        "timeout_s": timeout,
        "thresholds": load.thresholds.model_dump(mode="json", exclude_none=True),
        "stats_csv": None,
    }

    def result(passed: bool, summary: str) -> CheckResult:
        return CheckResult(KIND, NAME, passed, summary, evidence)

    command: str | list[str]
    if load.locustfile is not None:
        locustfile = (root / load.locustfile).resolve()
        if not locustfile.is_file():
            return result(False, f"locustfile {load.locustfile} does not exist ({locustfile})")
        locust = locust_command(env)
        if locust is None:
            return result(False, f"Locust is not installed (pip install locust), so {load.locustfile} cannot run")
        artifacts.mkdir(parents=True, exist_ok=True)
        prefix = artifacts / "load_test"
        stats_path = Path(f"{prefix}_stats.csv")
        command = [
            *locust,
            *("-f", str(locustfile), "--headless"),
            *("-u", str(load.users), "-r", f"{load.spawn_rate:g}", "-t", f"{load.duration}s"),
            *("--host", str(load.host), "--csv", str(prefix), "--only-summary"),
            # Failed requests are judged by the error_rate threshold, not by Locust's exit code;
            # a non-zero exit then means the run itself broke.
            *("--exit-code-on-error", "0"),
        ]
        evidence |= {"host": load.host, "users": load.users, "spawn_rate": load.spawn_rate}
        what = "locust"
    else:
        assert load.command is not None and load.stats_csv is not None  # the plan's guardrails say so
        command, stats_path, what = load.command, (root / load.stats_csv).resolve(), "the load-test command"
    evidence["command"] = command
    evidence["stats_csv"] = {"path": str(stats_path)}
    if stats_path.is_file():
        stats_path.unlink()
    done = run_command(command, cwd=root, env=env, timeout_s=timeout)
    evidence |= done.evidence()
    why = f": {done.last_line()}" if done.last_line() else ""
    if done.start_error is not None:
        return result(False, f"{what} could not start: {done.start_error}")
    if done.output_cap is not None:
        return result(False, f"{what} was killed: {done.capped()}{why}")
    if done.timed_out:
        return result(False, f"{what} was still running {format_duration(timeout)} after it started and was killed")
    if done.exit_code != 0:
        return result(False, f"{what} {done.ended()} after {seconds(done.duration_s)}{why}")
    if not stats_path.is_file():
        return result(False, f"{what} wrote no stats CSV ({stats_path.name}) in {seconds(done.duration_s)}{why}")
    evidence["stats_csv"]["sha256"] = file_sha256(stats_path)
    try:
        stats = parse_stats_csv(stats_path.read_text(encoding="utf-8", errors="replace"))
    except StatsError as exc:
        return result(False, f"the stats CSV {stats_path.name} is unusable: {exc}")
    results = judge(stats, load.thresholds)
    evidence |= {"stats": stats.to_json(), "threshold_results": [r.to_json() for r in results]}
    passed, summary = verdict(stats, results)
    return result(passed, summary)
