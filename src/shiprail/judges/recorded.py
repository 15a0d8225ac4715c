"""Recorded counts, judged after the fact: what ``shiprail judge`` reads and how it replays them.

Release engineers adopting a statistical judge first ask what it would have said about releases
they remember: the incident it should have caught, the healthy canary it must not roll back.
``shiprail judge`` answers from a CSV file of the counts *since the rollout began* at each analysis
(a Prometheus counter or ``_bucket`` series minus its value then), judged by the very test a contract's
``regression`` trigger runs (``contract.regression_test``), one analysis at a time, stopping
where the controller would roll back (the ``consecutive``-th ``fail`` in a row). A release
package's ``rollout.json`` is read too (``parse_package``): the increments its analyses stored.
Two CSV layouts, told apart by the header:

- **rates** (errors, or any event count per request): the columns ``canary_requests``,
  ``canary_events``, ``baseline_requests`` and ``baseline_events``, one row per analysis;
- **latency** (histogram buckets): a ``version`` column (``canary`` or ``baseline``) and one
  column per bucket bound (``0.005``, ``0.01``, … and ``+Inf``, the request count), each analysis
  a canary row and a baseline row, one after the other.

An optional ``time`` column labels the analyses (any text: ``12:05``, ``2026-11-27T12:05:00Z``).
Counts are checked as the rows are read, so that an error names the row and version at fault: a
count going down (a counter reset), buckets falling as the bound rises. Pure: the caller reads the
file and passes its text.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import ValidationError

from shiprail.errors import BadInput
from shiprail.judges.base import MAX_COUNT, JudgeInputError, Verdict, apart
from shiprail.judges.contract import Increment, RunningSums, regression_test
from shiprail.judges.latency import COUNT_TOLERANCE
from shiprail.schema.plan import Regression
from shiprail.text import ascii_float, digits_hint

RATE_COLUMNS = ("canary_requests", "canary_events", "baseline_requests", "baseline_events")
TIME_COLUMN = "time"
VERSION_COLUMN = "version"
VERSIONS = ("canary", "baseline")

INFINITE_BOUNDS = ("+inf", "inf", "+infinity", "infinity")
BOM = "\ufeff"
GIVE_SETTINGS = "give --alpha, --min-ratio, --bursts and --consecutive"
AS_WRITTEN = "give a release package's rollout.json as shiprail release export writes it"
"""What to do when a package's plan does not say the trigger's settings."""
PACKAGE_ADVICE = "give the rollout.json of a release package (shiprail release export)"

Kind = Literal["error_rate", "latency"]


@dataclass(frozen=True)
class Look:
    """One analysis's cumulative counts and where they stand in the file."""

    number: int
    """The analysis's number: its place in the file, or in the package's analyses."""
    line: int
    """The file line of the analysis's (last) row (a package: the analysis's number)."""
    label: str
    where: str
    """Where it stands, for errors: ``file:line``, or ``file, analysis N``."""
    after_gap: bool = False
    """An analysis of the trigger without counts came before it: a `consecutive` streak restarts."""
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
        # Not Python's literals: float() also reads 1_000, and other scripts' digits.
        value = math.nan if "_" in text else ascii_float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        advice = digits_hint(text) or "; write a number of at least 0"
        raise BadInput(f"{source}:{line}: {column}: {text!r} is not a count{advice}")
    if value > MAX_COUNT:
        raise BadInput(f"{source}:{line}: {column}: {text!r} is more than {MAX_COUNT:.0e} requests; check the column")
    return value


def _bound(source: str, line: int, text: str) -> float:
    if text.lower() in INFINITE_BOUNDS:
        return math.inf
    try:
        bound = ascii_float(text)
    except ValueError:
        raise BadInput(
            f"{source}:{line}: column {text!r} is neither time, version nor a bucket bound (a number or +Inf)"
            + digits_hint(text)
        ) from None
    if not math.isfinite(bound) or bound < 0:
        raise BadInput(f"{source}:{line}: column {text!r} is not a bucket bound; write a latency (at least 0) or +Inf")
    return bound


def _rows(text: str, source: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of ``text``, each with the file line it starts on."""
    reader = csv.reader(io.StringIO(text.removeprefix(BOM), newline=""))
    rows = []
    line = 0
    try:
        for row in reader:
            cells = [cell.strip() for cell in row]
            if any(cells):
                rows.append((line + 1, cells))
            line = reader.line_num
    except csv.Error as exc:
        raise BadInput(f"{source}:{reader.line_num}: not CSV ({exc}); write comma-separated cells") from None
    return rows


def parse_recorded(text: str, source: str, raw_counters: bool = False) -> Recorded:
    """The analyses of a CSV file's ``text`` (``source`` names it in errors); ``BadInput`` naming the line.

    ``raw_counters``: the rows hold counters as Prometheus keeps them, since the process started;
    the first analysis is the rollout's start, subtracted from the others (and not judged).
    """
    recorded = _parse_csv(text, source)
    if not raw_counters:
        return recorded
    if len(recorded.looks) < 2:
        raise BadInput(f"{source}: --raw-counters needs the rollout's start and at least one analysis after it")
    start, *looks = recorded.looks
    return replace(recorded, looks=[_since(look, start, i) for i, look in enumerate(looks, 1)])


def _since(look: Look, start: Look, number: int) -> Look:
    """``look``'s counts minus ``start``'s (counts never go down, so none is negative)."""
    if look.rates is not None and start.rates is not None:
        nc, ec, nb, eb = (now - then for now, then in zip(look.rates, start.rates, strict=True))
        return replace(look, number=number, rates=(nc, ec, nb, eb))
    canary = _rounded_up({b: c - start.canary_buckets[b] for b, c in look.canary_buckets.items()})
    baseline = _rounded_up({b: c - start.baseline_buckets[b] for b, c in look.baseline_buckets.items()})
    return replace(look, number=number, canary_buckets=canary, baseline_buckets=baseline)


def _rounded_up(counts: dict[float, float]) -> dict[float, float]:
    """Bucket counts less a start's, cumulative again where float rounding left one a hair short.

    Two buckets that grew alike can differ after the subtraction by ~10⁻¹⁶ of the counts
    (3.3 − 3.1 against 4.1 − 3.9), which would read as a histogram that is not cumulative. A
    shortfall beyond ``COUNT_TOLERANCE`` is left for the test to refuse.
    """
    slack = COUNT_TOLERANCE * max(1.0, *counts.values())
    out: dict[float, float] = {}
    top = 0.0
    for bound in sorted(counts):
        count = counts[bound]
        if top - slack <= count < top:
            count = top
        out[bound] = count
        top = max(top, count)
    return out


def _parse_csv(text: str, source: str) -> Recorded:
    rows = _rows(text, source)
    if not rows:
        raise BadInput(f"{source}: the file is empty; write a header and one row per analysis (see docs/cli.md)")
    (header_line, header), body = rows[0], rows[1:]
    for i, name in enumerate(header):
        if not name:
            raise BadInput(f"{source}:{header_line}: column {i + 1} has no name (a trailing comma?); name or remove it")
        if name in header[:i]:
            raise BadInput(f"{source}:{header_line}: column {name!r} is named twice; keep one")
    if not body:
        raise BadInput(f"{source}: no analyses after the header; write one row per analysis")
    for n, row in body:
        if len(row) != len(header):
            raise BadInput(f"{source}:{n}: {_cells(len(row))} for the header's {len(header)} columns")
    if set(RATE_COLUMNS) <= set(header):
        return Recorded(source, "error_rate", _rate_looks(source, header_line, header, body))
    if VERSION_COLUMN in header:
        return Recorded(source, "latency", _latency_looks(source, header_line, header, body))
    raise BadInput(
        f"{source}:{header_line}: the header needs the columns {', '.join(RATE_COLUMNS)} (rates) or a version "
        "column and bucket bounds (latency)"
    )


def _cells(n: int) -> str:
    return "1 cell" if n == 1 else f"{n} cells"


def _label(header: list[str], row: list[str], fallback: int) -> str:
    return row[header.index(TIME_COLUMN)] if TIME_COLUMN in header else str(fallback)


def _went_down(source: str, line: int, what: str, before: float, now: float) -> BadInput:
    was, count = apart(before, now)
    return BadInput(
        f"{source}:{line}: {what} went down from {was} to {count}; counts are cumulative since the rollout "
        "began (after a counter reset, start a new file there)"
    )


def _rate_looks(source: str, header_line: int, header: list[str], body: list[tuple[int, list[str]]]) -> list[Look]:
    extra = [c for c in header if c not in (*RATE_COLUMNS, TIME_COLUMN)]
    if extra:
        raise BadInput(
            f"{source}:{header_line}: unknown column {extra[0]!r}; a rates file has {', '.join(RATE_COLUMNS)} and time"
        )
    looks: list[Look] = []
    before: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    for i, (n, row) in enumerate(body, 1):
        counts = tuple(_count(source, n, c, row[header.index(c)]) for c in RATE_COLUMNS)
        for column, was, now in zip(RATE_COLUMNS, before, counts, strict=True):
            if now < was:
                raise _went_down(source, n, column, was, now)
        nc, ec, nb, eb = before = counts
        looks.append(Look(i, n, _label(header, row, i), f"{source}:{n}", rates=(nc, ec, nb, eb)))
    return looks


def _latency_looks(source: str, header_line: int, header: list[str], body: list[tuple[int, list[str]]]) -> list[Look]:
    columns = [
        (i, c, _bound(source, header_line, c)) for i, c in enumerate(header) if c not in (VERSION_COLUMN, TIME_COLUMN)
    ]
    columns.sort(key=lambda col: col[2])
    for (_, a, x), (_, b, y) in itertools.pairwise(columns):
        if x == y:
            raise BadInput(f"{source}:{header_line}: columns {a!r} and {b!r} are the same bucket bound; keep one")
    if not columns or columns[-1][2] != math.inf:
        raise BadInput(f"{source}:{header_line}: the bucket bounds need +Inf, the count of every request")
    if len(columns) == 1:
        raise BadInput(f"{source}:{header_line}: give at least one finite bucket bound besides +Inf (0.1, 0.5, …)")
    names = {bound: "+Inf" if math.isinf(bound) else name for _, name, bound in columns}
    looks: list[Look] = []
    last: dict[str, list[float]] = {v: [0.0] * len(columns) for v in VERSIONS}
    pending: dict[str, tuple[int, str, dict[float, float]]] = {}
    for n, row in body:
        version = row[header.index(VERSION_COLUMN)]
        if version not in VERSIONS:
            raise BadInput(f"{source}:{n}: version {version!r}; write canary or baseline")
        if version in pending:
            raise BadInput(
                f"{source}:{n}: a second {version} row before the other version's; each analysis is a canary row "
                "and a baseline row"
            )
        counts = [_count(source, n, name, row[i]) for i, name, _ in columns]
        _check_buckets(source, n, version, names, [b for _, _, b in columns], counts, last[version])
        last[version] = counts
        label = _label(header, row, len(looks) + 1)
        if pending:
            (other_line, other_label, _) = next(iter(pending.values()))
            if label != other_label:
                raise BadInput(
                    f"{source}:{n}: the {version} row says time {label!r}, its pair on line {other_line} "
                    f"{other_label!r}; give both rows of an analysis the same time"
                )
        pending[version] = (n, label, dict(zip((b for _, _, b in columns), counts, strict=True)))
        if len(pending) == len(VERSIONS):
            canary, baseline = pending["canary"][2], pending["baseline"][2]
            number = len(looks) + 1
            looks.append(Look(number, n, label, f"{source}:{n}", canary_buckets=canary, baseline_buckets=baseline))
            pending = {}
    if pending:
        version, (line, _, _) = next(iter(pending.items()))
        missing = next(v for v in VERSIONS if v != version)
        raise BadInput(f"{source}:{line}: this analysis has no {missing} row; add it after line {line}")
    return looks


def _check_buckets(
    source: str,
    line: int,
    version: str,
    names: dict[float, str],
    bounds: list[float],
    counts: list[float],
    before: list[float],
) -> None:
    """A row's cumulative buckets: rising with the bound, and no bucket (nor its share between bounds) shrinking."""
    for (a, x), (b, y) in itertools.pairwise(zip(bounds, counts, strict=True)):
        if y < x:
            low, high = apart(x, y)
            raise BadInput(
                f"{source}:{line}: {version}: bucket {names[b]} counts {high}, fewer than bucket {names[a]} ({low}); "
                "a bucket counts every request at or below its bound"
            )
    for bound, was, now in zip(bounds, before, counts, strict=True):
        if now < was:
            raise _went_down(source, line, f"{version}: bucket {names[bound]}", was, now)
    # Differences of fractional counts carry rounding (7.7 − 6.8 against 8.2 − 7.3): tolerated as
    # the test itself tolerates it (COUNT_TOLERANCE, relative to the counts).
    slack = COUNT_TOLERANCE * max(1.0, *counts)
    for i in range(1, len(bounds)):
        was, now = before[i] - before[i - 1], counts[i] - counts[i - 1]
        if now < was - slack:
            low, high = names[bounds[i - 1]], names[bounds[i]]
            raise _went_down(source, line, f"{version}: the requests between {low} and {high}", was, now)


@dataclass(frozen=True)
class Settings:
    """A package trigger's own settings, as its plan gave them."""

    regression: Regression
    consecutive: int


def parse_package(text: str, source: str, trigger: str | None) -> tuple[Recorded, str]:
    """A release package's ``rollout.json``: the increments its analyses stored for one regression trigger.

    ``trigger`` names it (None: the only one there is). Returns the analyses as cumulative counts,
    labelled by when each ran, and the trigger's name. The increments are what the controller fed
    the trigger's test, so replaying them gives the verdicts it recorded.
    """
    if not text.removeprefix(BOM).strip():
        raise BadInput(f"{source}: the file is empty; {PACKAGE_ADVICE}")
    try:
        data = json.loads(text.removeprefix(BOM))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source}:{exc.lineno}: not JSON ({exc.msg}); give a release package's rollout.json") from None
    except RecursionError:
        raise BadInput(f"{source}: nested too deeply to be a release package's rollout.json") from None
    analyses = data.get("analyses") if isinstance(data, dict) else None
    if not isinstance(analyses, list):
        raise BadInput(f"{source}: no analyses; {PACKAGE_ADVICE}")
    stored: dict[str, list[tuple[int, str, Increment | None]]] = {}
    for number, analysis in enumerate(analyses, 1):
        results = analysis.get("results", []) if isinstance(analysis, dict) else []
        if not isinstance(results, list):
            raise BadInput(f"{source}: analysis {number}: results is not a list of trigger results; {AS_WRITTEN}")
        for row in results:
            name = row.get("trigger") if isinstance(row, dict) else None
            if not isinstance(name, str):
                raise BadInput(f"{source}: analysis {number} has a result without a trigger name")
            try:
                inc = Increment.from_json(row["increment"]) if "increment" in row else None
            except (AttributeError, KeyError, TypeError, ValueError, OverflowError):  # 10**400: no float
                raise BadInput(
                    f"{source}: analysis {number}, trigger {name!r}: the increment is not as shiprail writes it "
                    "(requests per version, and events or buckets)"
                ) from None
            stored.setdefault(name, []).append((number, str(analysis.get("at", number)), inc))
    names = sorted(n for n, entries in stored.items() if any(inc is not None for _, _, inc in entries))
    listed = ", ".join(repr(n) for n in names)
    if not names:
        raise BadInput(f"{source}: no analysis stored a regression trigger's counts; nothing to judge")
    if trigger is None:
        if len(names) > 1:
            raise BadInput(f"{source}: {len(names)} regression triggers ({listed}); choose one with --trigger")
        trigger = names[0]
    elif trigger not in names:
        raise BadInput(f"--trigger {trigger!r}: {source} holds the counts of {listed} only")
    recorded = _cumulative(source, stored[trigger])
    if not recorded.looks:
        raise BadInput(f"{source}: no analysis of {trigger!r} had buckets for both versions yet; nothing to judge")
    return recorded, trigger


def _cumulative(source: str, entries: list[tuple[int, str, Increment | None]]) -> Recorded:
    """Running sums of the increments; an analysis without them (or, for latency, before both versions
    have buckets) gives no look, and the next one restarts a ``consecutive`` streak, as in the controller."""
    latency = any(inc is not None and inc.canary_buckets is not None for _, _, inc in entries)
    sums = RunningSums()
    looks = []
    gap = False
    for number, at, inc in entries:
        where = f"{source}, analysis {number}"
        if inc is None:
            gap = True
            continue
        try:
            sums.add(inc)
        except JudgeInputError as exc:
            raise BadInput(f"{where}: {exc}") from None
        if not latency:
            looks.append(Look(number, number, at, where, gap, rates=sums.counts))
        elif sums.histograms:
            canary, baseline = dict(sums.canary), dict(sums.baseline)
            looks.append(Look(number, number, at, where, gap, canary_buckets=canary, baseline_buckets=baseline))
        else:
            gap = True  # the controller's "no data yet": inconclusive
            continue
        gap = False
    return Recorded(source, "latency" if latency else "error_rate", looks)


def package_settings(text: str, source: str, trigger: str) -> Settings:
    """``trigger``'s ``regression`` settings and ``consecutive`` in a package's ``plan.resolved.json``.

    Read leniently (only that trigger's keys), so that a package from another shiprail version
    still gives them; ``BadInput`` when the file is not a plan or has no such trigger.
    """
    try:
        data = json.loads(text.removeprefix(BOM))
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{source}:{exc.lineno}: not JSON ({exc.msg}), so not a resolved plan; {GIVE_SETTINGS}"
        ) from None
    except RecursionError:
        raise BadInput(f"{source}: nested too deeply to be a resolved plan; {GIVE_SETTINGS}") from None
    try:
        triggers = data["contract"]["triggers"]
        found = [t for t in triggers if (t.get("name") or t.get("metric") or t.get("signal")) == trigger]
    except (KeyError, TypeError, AttributeError):
        raise BadInput(f"{source}: not a resolved plan (contract.triggers); {GIVE_SETTINGS}") from None
    if not found or not isinstance(found[0].get("regression"), dict):
        raise BadInput(f"{source}: no regression trigger {trigger!r} in its contract; {GIVE_SETTINGS}")
    settings = found[0]["regression"]
    try:
        regression = Regression(
            alpha=settings.get("alpha", Regression().alpha),
            min_ratio=settings.get("min_ratio", Regression().min_ratio),
            bursts=settings.get("bursts", Regression().bursts),
        )
    except (ValidationError, TypeError, ValueError, AttributeError):
        raise BadInput(f"{source}: trigger {trigger!r} has unusable regression settings; {GIVE_SETTINGS}") from None
    consecutive = found[0].get("consecutive")
    if consecutive is None:
        consecutive = 1
    elif isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
        raise BadInput(
            f"{source}: trigger {trigger!r} has consecutive {consecutive!r}, not a whole number of at least 1; "
            "give --consecutive to replace it"
        )
    return Settings(regression, consecutive)


def next_streak(streak: int, look: Look, verdict: Verdict) -> int:
    """The ``fail`` verdicts in a row after ``look``'s; a look after a gap starts a new row."""
    return (0 if look.after_gap else streak) + 1 if verdict.failed else 0


def judge_recorded(recorded: Recorded, regression: Regression, consecutive: int = 1) -> tuple[list[Verdict], bool]:
    """Each analysis's verdict, in order, until the rollback; and whether it rolled back.

    It rolls back at the ``consecutive``-th ``fail`` in a row (a look after a gap restarts the
    count, as the controller's ``Streaks`` do). ``BadInput`` naming the place when the test refuses
    an analysis's counts.
    """
    from shiprail.judges.rates import RateRegressionTest

    test = regression_test(recorded.kind, regression)
    verdicts: list[Verdict] = []
    streak = 0
    for look in recorded.looks:
        try:
            if isinstance(test, RateRegressionTest):
                assert look.rates is not None
                nc, ec, nb, eb = look.rates
                verdict = test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
            else:
                verdict = test.update(canary_buckets=look.canary_buckets, baseline_buckets=look.baseline_buckets)
        except JudgeInputError as exc:
            raise BadInput(f"{look.where}: {exc}") from None
        verdicts.append(verdict)
        streak = next_streak(streak, look, verdict)
        if streak >= consecutive:
            return verdicts, True
    return verdicts, False
