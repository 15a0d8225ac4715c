"""``shiprail judge``: a contract's regression test run on recorded counts, analysis by analysis."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shiprail.cli.output import JsonOpt, console, emit_json, float_flag, int_flag
from shiprail.errors import BadInput, NotFound, why_unreadable
from shiprail.judges.base import Verdict
from shiprail.judges.recorded import Look, judge_recorded, next_streak, package_settings, parse_package, parse_recorded
from shiprail.schema.plan import ALPHA_RULE, MIN_RATIO_RULE, Regression

PLAN_FILE = "plan.resolved.json"
"""Next to a package's rollout.json: the plan the release ran, whose trigger settings are the defaults."""


def _settings(
    alpha: float | None, min_ratio: float | None, bursts: str | None, base: Regression, plan: str = ""
) -> Regression:
    """``base`` (the trigger's settings, or ``regression: {}``'s) with the flags given, within plan limits.

    ``plan``: where ``base`` came from (``plan.resolved.json``, trigger ``name``), named when one
    of its values is out of range; empty for ``regression: {}``.
    """

    def bad(flag: str, given: object, value: object, rule: str) -> BadInput:
        if given is None and plan:
            key = flag.removeprefix("--").replace("-", "_")
            return BadInput(f"{plan} has regression {key} {value!r}, but it {rule}; give {flag} to replace it")
        return BadInput(f"{flag} {rule}, got {value!r}")

    new_alpha = base.alpha if alpha is None else alpha
    new_ratio = base.min_ratio if min_ratio is None else min_ratio
    new_bursts = base.bursts if bursts is None else bursts
    given = {"alpha": alpha, "min_ratio": min_ratio}
    values = {"alpha": new_alpha, "min_ratio": new_ratio}
    for field, rule in (("alpha", ALPHA_RULE), ("min_ratio", MIN_RATIO_RULE)):
        if not math.isfinite(values[field]):  # nan, inf: not even a number the plan's model takes
            raise bad("--" + field.replace("_", "-"), given[field], values[field], rule)
    for field, rule in Regression(alpha=new_alpha, min_ratio=new_ratio).out_of_range():
        raise bad("--" + field.replace("_", "-"), given[field], values[field], rule)
    if new_bursts == "independent":
        return Regression(alpha=new_alpha, min_ratio=new_ratio, bursts="independent")
    if new_bursts == "tolerate":
        return Regression(alpha=new_alpha, min_ratio=new_ratio, bursts="tolerate")
    raise bad("--bursts", bursts, new_bursts, "must be independent or tolerate")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file; give a CSV file of counts or a package's rollout.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: {why_unreadable(exc)}") from None


def _num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def judge(
    file: Annotated[
        Path,
        typer.Argument(
            help="A release package's rollout.json (shiprail release export), or a CSV file of counts since the "
            "rollout began, one analysis per row (rates) or per canary and baseline row (latency buckets); "
            "docs/cli.md describes them.",
            show_default=False,
        ),
    ],
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha",
            help="The false-rollback rate the test holds, however often it looks (default: the trigger's, else 0.01).",
            show_default=False,
            parser=float_flag,
            metavar="FLOAT",
        ),
    ] = None,
    min_ratio: Annotated[
        float | None,
        typer.Option(
            "--min-ratio",
            help="How many times the baseline's rate is still no regression (default: the trigger's, else 1).",
            show_default=False,
            parser=float_flag,
            metavar="FLOAT",
        ),
    ] = None,
    bursts: Annotated[
        str | None,
        typer.Option(
            "--bursts",
            help="independent, or tolerate: no one analysis can roll back; rates only (default: the trigger's, "
            "else independent).",
            show_default=False,
        ),
    ] = None,
    consecutive: Annotated[
        int | None,
        typer.Option(
            "--consecutive",
            help="Roll back at this many failed analyses in a row (default: the trigger's, else 1).",
            show_default=False,
            parser=int_flag,
            metavar="INTEGER",
        ),
    ] = None,
    raw_counters: Annotated[
        bool,
        typer.Option(
            "--raw-counters",
            help="A CSV file of counters as Prometheus keeps them: its first analysis is the rollout's start, "
            "subtracted from the others.",
        ),
    ] = False,
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger",
            help="In a package's rollout.json: the regression trigger to replay (needed when there are several).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the regression test on recorded counts, as the controller would; exit 1 when it rolls back."""
    plain = _settings(alpha, min_ratio, bursts, Regression())  # refuses bad flags before reading anything
    if consecutive is not None and consecutive < 1:
        raise BadInput(f"--consecutive must be at least 1 (failed analyses in a row), got {consecutive}")
    text = _read(file)
    origin = None
    # A package's rollout.json by its name too: an empty or mangled one is then told what a package
    # holds, not how to write a CSV file.
    if file.suffix.lower() == ".json" or text.removeprefix("\ufeff").lstrip()[:1] in ("{", "["):
        recorded, trigger = parse_package(text, str(file), trigger)
        flags = (alpha, min_ratio, bursts, consecutive)
        base, in_plan, origin = _package_settings(file.parent / PLAN_FILE, trigger, flags)
        regression = _settings(alpha, min_ratio, bursts, base, f"{file.parent / PLAN_FILE}: trigger {trigger!r}")
        consecutive = in_plan if consecutive is None else consecutive
        if raw_counters:
            raise BadInput(f"--raw-counters applies to a CSV file; {file} is a release package's: remove it")
    elif trigger is not None:
        raise BadInput(f"--trigger applies to a release package's rollout.json; {file} is a CSV file: remove it")
    else:
        recorded = parse_recorded(text, str(file), raw_counters)
        regression = plain
    consecutive = consecutive or 1
    if recorded.kind == "latency" and regression.bursts != "independent":
        raise BadInput(f"--bursts {regression.bursts} applies to rates; {file} holds latency buckets: remove it")
    verdicts, rolled_back = judge_recorded(recorded, regression, consecutive)
    if as_json:
        extra = {"trigger": trigger, "consecutive": consecutive, "settings_from": origin}
        emit_json(_json(recorded.kind, recorded.looks, verdicts, regression, rolled_back) | extra)
    else:
        if trigger is not None:
            settings = f"alpha {regression.alpha:g}, min_ratio {regression.min_ratio:g}, bursts {regression.bursts}"
            if consecutive > 1:
                settings += f", consecutive {consecutive}"
            console.print(f"{trigger}, from {file}: {settings} ({origin})", markup=False)
        _print(recorded.kind, recorded.looks, verdicts, rolled_back, consecutive)
    if rolled_back:
        raise typer.Exit(1)


def _package_settings(
    plan: Path, trigger: str, flags: tuple[float | None, float | None, str | None, int | None]
) -> tuple[Regression, int, str]:
    """The trigger's settings from the package's plan, its ``consecutive``, and where they came from."""
    names = ("--alpha", "--min-ratio", "--bursts", "--consecutive")
    given = [name for name, value in zip(names, flags, strict=True) if value is not None]
    by_flags = f"; {', '.join(given)} from the command line" if given else ""
    if not plan.is_file():
        return Regression(), 1, f"{plan} not found: the defaults of regression: {{}}{by_flags}"
    try:
        found = package_settings(_read(plan), str(plan), trigger)
    except BadInput:
        if len(given) == len(flags):
            return Regression(), 1, f"{plan} unusable: all from the command line"
        raise
    return found.regression, found.consecutive, f"the trigger's, from {plan}{by_flags}"


def _json(
    kind: str, looks: list[Look], verdicts: list[Verdict], regression: Regression, rolled_back: bool
) -> dict[str, Any]:
    last = looks[len(verdicts) - 1]
    return {
        "kind": kind,
        "alpha": regression.alpha,
        "min_ratio": regression.min_ratio,
        "bursts": regression.bursts,
        "analyses": len(looks),
        "judged": len(verdicts),
        "rolled_back_at": {"analysis": last.number, "time": last.label} if rolled_back else None,
        "verdicts": [
            {"analysis": look.number, "time": look.label, "where": look.where, **v.to_json()}
            for look, v in zip(looks, verdicts, strict=False)
        ],
    }


def _print(kind: str, looks: list[Look], verdicts: list[Verdict], rolled_back: bool, consecutive: int) -> None:
    if kind == "error_rate":
        title, what = "rates: canary's rate ÷ baseline's, one row per analysis", "ratio"
    else:
        title, what = "latency: the canary's excess share of slower requests, one row per analysis", "excess"
    table = Table(title=title)
    for header in ("#", "time", "canary", "baseline", "decision", "p", what, "interval"):
        table.add_column(header, justify="left" if header in ("time", "decision") else "right")
    for look, v in zip(looks, verdicts, strict=False):
        interval = "–" if v.interval is None else f"{_num(v.interval[0], 3)}…{_num(v.interval[1], 3)}"
        table.add_row(
            str(look.number),
            escape(look.label),  # a label is any text: square brackets are not Rich markup here
            _num(look.canary_requests, 12),
            _num(look.baseline_requests, 12),
            v.decision,
            _num(v.p_value, 3),
            _num(v.estimate, 3),
            interval,
        )
    console.print(table)
    last, at = verdicts[-1], looks[len(verdicts) - 1]
    if rolled_back:
        unread = len(looks) - len(verdicts)
        later = "1 later analysis" if unread == 1 else f"{unread} later analyses"
        rest = f"; {later} not judged (the release would have rolled back)" if unread else ""
        in_row = f" ({consecutive} failures in a row)" if consecutive > 1 else ""
        console.print(f"rolled back at analysis {at.number} ({at.label}){in_row}: {last.reason}{rest}", markup=False)
    else:
        judged = "1 analysis" if len(verdicts) == 1 else f"{len(verdicts)} analyses"
        streak = 0
        for look, verdict in zip(looks, verdicts, strict=False):
            streak = next_streak(streak, look, verdict)
        if streak:
            row = "1 failure" if streak == 1 else f"{streak} failures"
            console.print(
                f"no rollback after {judged}: {row} in a row at the end, of the {consecutive} it takes: {last.reason}",
                markup=False,
            )
        else:
            console.print(f"no rollback after {judged}: {last.reason}", markup=False)
