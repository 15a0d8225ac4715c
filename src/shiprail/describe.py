"""A release's live state in words: where the rollout stands and what the last analysis said.

Pure functions of a ``ReleaseView``, shared by the terminal (``release show``, ``release start
--wait``) and the status pages of ``shiprail serve``, so both say the same thing the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shiprail.domain.contract import trigger_name
from shiprail.domain.engine import ReleaseState
from shiprail.domain.states import Status
from shiprail.durations import format_duration
from shiprail.schema.plan import DRY_RUN_SHOWN

if TYPE_CHECKING:
    from shiprail.releases import ReleaseView
    from shiprail.schema.plan import Trigger

# The states in which a release's validation window is open: in Verify, or paused in it.
IN_VERIFY = frozenset(
    {ReleaseState(Status.VERIFYING).describe(), ReleaseState(Status.PAUSED, paused_from=Status.VERIFYING).describe()}
)


def utc(value: str | datetime | None, *, ms: bool = False) -> str:
    """A stored time as people read it everywhere: ``2026-11-28 04:47:31Z``.

    ``ms`` keeps the milliseconds (the rollback log's times are milliseconds apart).
    """
    if value is None:
        return "–"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S") + (f".{at.microsecond // 1000:03d}" if ms else "") + "Z"


def short(value: Any) -> str:
    """A number in at most 4 significant digits; ``–`` for none."""
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def percent(value: Any) -> str:
    """A weight in percent, ``1%``; ``–`` for none (the router has confirmed no weight yet)."""
    return "–" if value is None else f"{short(value)}%"


def p_value(value: float | None) -> str:
    """A regression test's value: its p-value."""
    return "–" if value is None else f"p = {short(value)}"


def position(view: ReleaseView) -> str | None:
    """Where the rollout stands: the step, its weight and bake, or the validation window; None before and after."""
    r = view.resolved
    progress = view.progress
    weight = progress.get("applied_weight")
    if view.step is not None:
        bake = r.steps[view.step].bake or 0
        baked = float(progress.get("baked_s") or 0)
        left = max(0.0, bake - baked)
        # Past its bake (a step waiting for a person to promote it, or for its analysis), the time it has
        # stood there, and the bake it was planned for: not "baked 5m of 2m".
        # In whole seconds, as shown: a step a fraction of a second past its bake has not "stood past" it.
        if not bake:
            of = " (no bake planned)"
        elif int(baked) <= int(bake):
            of = f" of {format_duration(int(bake))}"
        else:
            of = f" ({format_duration(int(bake))} planned)"
        return (
            f"step {view.step + 1} of {len(r.steps)}: {r.steps[view.step].weight:g}% "
            f"(router: {percent(weight)}), baked {format_duration(int(baked))}{of}"
            + (f", {format_duration(int(left))} left" if left else "")
        )
    if view.state in IN_VERIFY and progress.get("step_started"):
        # Watched time, as the verify_window gate counts it (not the wall clock since Verify began).
        # Paused in Verify, the window still waits and the on-call person still answers for it.
        left = max(0, math.ceil(r.verify_window - float(progress.get("baked_s") or 0.0)))
        where = "verifying" if view.status == Status.VERIFYING.value else "paused in Verify"
        return (
            f"{where} at {percent(weight)}: {format_duration(left)} of the validation window left; "
            f"on call: {view.on_call or r.on_call or '–'}"
        )
    return None


def router_trouble(trouble: dict[str, Any]) -> str:
    """A weight the router keeps failing to apply, as one line."""
    return (
        f"router: cannot apply {trouble['weight']:g}% ({trouble['attempts']} attempts since {utc(trouble['since'])}, "
        f"retried with backoff): {trouble['error']}"
    )


def held(view: ReleaseView) -> str | None:
    """What holds the rollout (a deployment freeze, the on_call gate before Verify), as one line; None for nothing.

    A refusal an override would name ends with its reference, as in the gate table of ``release show``:
    ``held since 2026-01-01 00:30:00Z: freeze 'maintenance' until 2026-01-01 05:00 UTC (freeze@1f2e3d4c)``,
    the ``--gate`` to copy (a step waiting for a person to promote it has none).
    """
    hold = view.held
    if hold is None:
        return None
    ref = f" ({hold['refusal']})" if hold.get("refusal") else ""
    return f"held since {utc(hold.get('at'))}: {hold.get('reason')}{ref}"


def paused(view: ReleaseView) -> str | None:
    """Who paused the release, when and why, and what resumes it, as one line; None unless it is paused.

    ``paused by bob at 2026-01-01 00:40:00Z: dashboards look odd; only a person resumes it:
    `shiprail release resume checkout-2.4.0```, or, for missing data, that it resumes by itself.
    """
    pause = view.paused
    if pause is None:
        return None
    why = f": {pause['reason']}" if pause.get("reason") else ""
    if pause.get("for_missing_data"):
        cause = "a provider error" if pause.get("provider_failing") else "missing data"
        return (
            f"paused for {cause} at {utc(pause.get('at'))}{why}; it resumes by itself at the first analysis in "
            f"which every trigger passes (while a controller runs), or by `shiprail release resume {view.id}`"
        )
    return (
        f"paused by {pause.get('by')} at {utc(pause.get('at'))}{why}; only a person resumes it: "
        f"`shiprail release resume {view.id}`"
    )


def dry_runs(view: ReleaseView) -> list[str]:
    """Where the contract's dry-run triggers would have rolled the release back, one line each, oldest first.

    ``dry run: trigger errors would have rolled back at 2026-01-01 00:40:00Z, step 2 (10%): 0.5 above the
    limit 0.01``: the first breach of each dry-run trigger at each step (and in Verify).
    """
    if not view.dry_runs:
        return []
    out = []
    steps = view.resolved.steps
    for b in view.dry_runs:
        step = b.get("step")
        # In Verify the step is still the last one's index: the status says which it was (paused in
        # Verify too; events stored before ``paused_from`` was recorded read as the step).
        verifying = b.get("status") == Status.VERIFYING.value or b.get("paused_from") == Status.VERIFYING.value
        if not verifying and isinstance(step, int) and 0 <= step < len(steps):
            where = f"step {step + 1} ({steps[step].weight:g}%)"
        else:
            where = "in Verify"
        at = utc(b.get("at"))
        out.append(f"dry run: trigger {b.get('trigger')} would have rolled back at {at}, {where}: {b.get('reason')}")
    return out


def regression_triggers(view: ReleaseView) -> set[str]:
    """The names of the contract's regression triggers: their value is a p-value, their limit α."""
    return {trigger_name(t) for t in view.resolved.contract.triggers if t.regression is not None}


@dataclass(frozen=True)
class AnalysisRow:
    """One trigger's result in the last analysis, as shown: value and limit already in words."""

    trigger: str
    verdict: str
    value: str
    limit: str
    baseline: str
    why: str


def planned_limit(trigger: Trigger, baseline: float | None) -> str:
    """The limit ``trigger`` is judged against, as its plan sets it; ``baseline``: the baseline's value, if measured.

    ``0.01``, ``α 0.01`` (a regression test), ``2 × baseline`` (``above_baseline: 2`` with no
    baseline measured), or ``–`` for none.
    """
    if trigger.regression is not None:
        return f"α {short(trigger.regression.alpha)}"
    limit = trigger.above if trigger.above is not None else trigger.below
    if limit is not None:
        return short(limit)
    if trigger.above_baseline is None:
        return "–"
    if baseline is not None:
        return short(trigger.above_baseline * baseline)
    return f"{short(trigger.above_baseline)} × baseline"


def result_limit(result: Mapping[str, Any], trigger: Trigger | None) -> str:
    """The limit a trigger's result (an analysis row) was judged against, in words.

    Its own threshold (``α 0.01`` for a regression test); for a result judged on no data, which
    stores none (nothing was compared), the plan's (``planned_limit``); ``–`` for neither (a probe).
    """
    limit = result.get("threshold")
    if limit is not None:
        return f"α {short(limit)}" if trigger is not None and trigger.regression is not None else short(limit)
    if trigger is not None:
        return planned_limit(trigger, result.get("baseline"))
    return "–"


def analysis_rows(view: ReleaseView) -> list[AnalysisRow]:
    """The last analysis, one row per trigger; empty when there was none.

    A regression trigger's value is its p-value and its limit α: shown as such, not as a number
    "above" a threshold (p = 0.117 against 0.01 read as a breach). A result judged on no data
    carries no limit (nothing was compared): its limit is the plan's, what the trigger will be
    judged against once there is data.
    """
    last = view.last_analysis
    if not last:
        return []
    tests = regression_triggers(view)
    triggers = {trigger_name(t): t for t in view.resolved.contract.triggers}
    rows = []
    for row in last["results"]:
        test = row["trigger"] in tests
        shown = result_limit(row, triggers.get(row["trigger"]))
        rows.append(
            AnalysisRow(
                # A dry run's verdict is shown as it is, marked: it acted on nothing.
                trigger=row["trigger"] + (DRY_RUN_SHOWN if row.get("dry_run") else ""),
                verdict=row["verdict"],
                value=p_value(row["value"]) if test else short(row["value"]),
                limit=shown,
                baseline=short(row["baseline"]),
                why=row["reason"],
            )
        )
    return rows
