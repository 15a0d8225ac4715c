"""Recorded counts, judged after the fact: what ``shiprail judge`` reads and how it replays them.

Release engineers adopting a statistical judge first ask what it would have said about releases
they remember: the incident it should have caught, the healthy canary it must not roll back.
``shiprail judge`` answers from a CSV file of the *cumulative* counts each analysis would have
read (what Prometheus' counters and ``_bucket`` series hold), judged by the very test a contract's
``regression`` trigger runs (``contract.regression_test``), one analysis at a time, stopping at
the first ``fail`` as the controller would. Two layouts, told apart by the header:

- **rates** (errors, or any event count per request): the columns ``canary_requests``,
  ``canary_events``, ``baseline_requests`` and ``baseline_events``, one row per analysis;
- **latency** (histogram buckets): a ``version`` column (``canary`` or ``baseline``) and one
  column per bucket bound (``0.005``, ``0.01``, … and ``+Inf``, the request count), each analysis
  a canary row and a baseline row, one after the other.

An optional ``time`` column labels the analyses (any text: ``12:05``, ``2026-11-27T12:05:00Z``).
Pure: the caller reads the file and passes its text.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Literal

from shiprail.errors import BadInput
from shiprail.judges.base import JudgeInputError, Verdict
from shiprail.judges.contract import regression_test
from shiprail.schema.plan import Regression

RATE_COLUMNS = ("canary_requests", "canary_events", "baseline_requests", "baseline_events")
TIME_COLUMN = "time"
VERSION_COLUMN = "version"
VERSIONS = ("canary", "baseline")

Kind = Literal["error_rate", "latency"]


@dataclass(frozen=True)
class Look:
    """One analysis's cumulative counts and where they stand in the file."""

    line: int
    """The file line of the analysis's (last) row."""
    label: str
    rates: tuple[float, float, float, float] | None = None
    """``(canary_requests, canary_events, baseline_requests, baseline_events)``."""
    canary_buckets: dict[float, float] = field(default_factory=dict)
    baseline_buckets: dict[float, float] = field(default_factory=dict)

    @property
    def canary_requests(self) -> float:
        return self.rates[0] if self.rates else self.canary_buckets[math.inf]

    @property
    def baseline_requests(self) -> float:
        return self.rates[2] if self.rates else self.baseline_buckets[math.inf]


@dataclass(frozen=True)
class Recorded:
    """A file's analyses: the kind of metric its header shows, and each analysis's counts."""

    source: str
    kind: Kind
    looks: list[Look]


def _count(source: str, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadInput(f"{source}:{line}: {column}: {text.strip()!r} is not a count; write a number of at least 0")
    return value


def _bound(source: str, text: str) -> float:
    try:
        bound = float(text)
    except ValueError:
        raise BadInput(
            f"{source}:1: column {text!r} is neither time, version nor a bucket bound (a number or +Inf)"
        ) from None
    if math.isnan(bound) or bound == -math.inf:
        raise BadInput(f"{source}:1: column {text!r} is not a bucket bound; write a number or +Inf")
    return bound


def parse_recorded(text: str, source: str) -> Recorded:
    """The analyses of a CSV file's ``text`` (``source`` names it in errors); ``BadInput`` naming the line."""
    rows = [(n, [cell.strip() for cell in row]) for n, row in enumerate(csv.reader(text.splitlines()), 1) if row]
    rows = [(n, row) for n, row in rows if any(row)]
    if not rows:
        raise BadInput(f"{source}: the file is empty; write a header and one row per analysis (see docs/judges.md)")
    header_line, header = rows[0]
    if header_line != 1:
        raise BadInput(f"{source}:1: the first line must be the header")
    if len(set(header)) != len(header):
        raise BadInput(f"{source}:1: a column is named twice")
    body = rows[1:]
    if not body:
        raise BadInput(f"{source}: no analyses after the header; write one row per analysis")
    for n, row in body:
        if len(row) != len(header):
            raise BadInput(f"{source}:{n}: {len(row)} cells for the header's {len(header)} columns")
    if set(RATE_COLUMNS) <= set(header):
        return Recorded(source, "error_rate", _rate_looks(source, header, body))
    if VERSION_COLUMN in header:
        return Recorded(source, "latency", _latency_looks(source, header, body))
    raise BadInput(
        f"{source}:1: the header needs the columns {', '.join(RATE_COLUMNS)} (rates) or a version column "
        "and bucket bounds (latency)"
    )


def _label(header: list[str], row: list[str], fallback: int) -> str:
    return row[header.index(TIME_COLUMN)] if TIME_COLUMN in header else str(fallback)


def _rate_looks(source: str, header: list[str], body: list[tuple[int, list[str]]]) -> list[Look]:
    extra = [c for c in header if c not in (*RATE_COLUMNS, TIME_COLUMN)]
    if extra:
        raise BadInput(f"{source}:1: unknown column {extra[0]!r}; a rates file has {', '.join(RATE_COLUMNS)} and time")
    looks = []
    for i, (n, row) in enumerate(body, 1):
        nc, ec, nb, eb = (_count(source, n, c, row[header.index(c)]) for c in RATE_COLUMNS)
        looks.append(Look(n, _label(header, row, i), rates=(nc, ec, nb, eb)))
    return looks


def _latency_looks(source: str, header: list[str], body: list[tuple[int, list[str]]]) -> list[Look]:
    columns = [(i, c) for i, c in enumerate(header) if c not in (VERSION_COLUMN, TIME_COLUMN)]
    bounds = [_bound(source, c) for _, c in columns]
    if math.inf not in bounds:
        raise BadInput(f"{source}:1: the bucket bounds need +Inf, the count of every request")
    looks: list[Look] = []
    pending: dict[str, dict[float, float]] = {}
    first_line = 0
    for n, row in body:
        version = row[header.index(VERSION_COLUMN)]
        if version not in VERSIONS:
            raise BadInput(f"{source}:{n}: version {version!r}; write canary or baseline")
        if version in pending:
            raise BadInput(
                f"{source}:{n}: a second {version} row before the other version's; each analysis is a canary row "
                "and a baseline row"
            )
        if not pending:
            first_line = n
        pending[version] = {b: _count(source, n, c, row[i]) for b, (i, c) in zip(bounds, columns, strict=True)}
        if len(pending) == len(VERSIONS):
            label = _label(header, row, len(looks) + 1)
            looks.append(Look(n, label, canary_buckets=pending["canary"], baseline_buckets=pending["baseline"]))
            pending = {}
    if pending:
        missing = next(v for v in VERSIONS if v not in pending)
        raise BadInput(f"{source}:{first_line}: this analysis has no {missing} row; add it after line {first_line}")
    return looks


def judge_recorded(recorded: Recorded, regression: Regression) -> list[Verdict]:
    """Each analysis's verdict, in order, up to and including the first ``fail``.

    ``BadInput`` naming the line when the test refuses an analysis's counts (a count that went
    down, bucket bounds that changed).
    """
    from shiprail.judges.rates import RateRegressionTest

    test = regression_test(recorded.kind, regression)
    verdicts: list[Verdict] = []
    for look in recorded.looks:
        try:
            if isinstance(test, RateRegressionTest):
                assert look.rates is not None
                nc, ec, nb, eb = look.rates
                verdict = test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
            else:
                verdict = test.update(canary_buckets=look.canary_buckets, baseline_buckets=look.baseline_buckets)
        except JudgeInputError as exc:
            raise BadInput(f"{recorded.source}:{look.line}: {exc}") from None
        verdicts.append(verdict)
        if verdict.failed:
            break
    return verdicts
