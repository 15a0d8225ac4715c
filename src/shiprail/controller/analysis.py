"""One analysis of a rollback contract: query what each trigger watches, judge it.

Metric triggers ask the service's provider for the canary (and the baseline, when the trigger
compares with it) over the trigger's window; signal triggers count what was pushed
(``shiprail signal``) since the rollout began. A provider that raises is treated like one that
reports an error: the trigger is inconclusive, never passing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shiprail.domain.contract import Sample, Streaks, TriggerResult, as_judged, judge, trigger_name
from shiprail.judges.base import JudgeInputError
from shiprail.judges.base import Verdict as JudgeVerdict
from shiprail.judges.contract import Increment, Replay, increment_of, judge_regression
from shiprail.providers.base import Provider
from shiprail.schema.plan import RollbackContract, Trigger
from shiprail.schema.service import REGRESSION_KINDS, Service

# The canary weight at which the baseline serves no traffic.
FULL_WEIGHT = 100.0
# (signal name, window in seconds) → how many were pushed for the canary in that window.
SignalCounter = Callable[[str, int], float]
# (trigger, metric kind) → the trigger's test, fed every increment earlier analyses of this
# release stored for it (the analysis feeds this one's to a copy).
History = Callable[[Trigger, str], Replay]


@dataclass(frozen=True)
class Measured:
    """A trigger's verdict and the samples it was judged on (and, for a regression test, its increment)."""

    result: TriggerResult
    canary: Sample
    baseline: Sample | None
    increment: Increment | None = None
    judged: JudgeVerdict | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.result
        extra: dict[str, Any] = {}
        if self.increment is not None:
            # Stored with the analysis: the trigger's test is rebuilt from these after a restart.
            extra["increment"] = self.increment.to_json()
        if self.judged is not None:
            extra["judge"] = self.judged.to_json()
        if r.dry_run:
            # Only on a dry run's row: the rows of plans without one read as before.
            extra["dry_run"] = True
        return extra | {
            "trigger": r.trigger,
            "verdict": r.verdict,
            "reason": r.reason,
            "value": r.value,
            "threshold": r.threshold,
            "baseline": r.baseline,
            "canary_samples": self.canary.count,
            "baseline_samples": self.baseline.count if self.baseline else None,
        }


def safe_query(provider: Provider, name: str, target: Service, version: str, window_s: int) -> Sample:
    """The provider's answer, with anything it raises turned into an error sample; an error names
    the provider (``prometheus: …``), which the analysis, the pause and its notification then say."""
    metric = target.metrics.get(name)
    if metric is None:
        return Sample.failed(f"the service defines no metric {name!r}")
    try:
        sample = provider.query(name, metric, version, window_s)
    except Exception as exc:  # a plugin's bug must not stop the contract from being judged
        sample = Sample.failed(f"{type(exc).__name__}: {exc}")
    return replace(sample, error=f"{target.provider.type}: {sample.error}") if sample.error else sample


def window_of(trigger: Trigger, interval_s: int) -> int:
    """How far back the trigger looks (its window; the analysis interval when it gives none)."""
    return int(trigger.window or interval_s)


def evaluate(
    contract: RollbackContract,
    target: Service,
    provider: Provider,
    signals: SignalCounter,
    *,
    version: str,
    baseline: str,
    interval_s: int,
    streaks: Streaks,
    weight: float | None = None,
    since_s: int | None = None,
    history: History | None = None,
) -> list[Measured]:
    """Every trigger of ``contract`` judged once, in contract order; ``streaks`` is updated.

    ``weight`` is the canary's share the router holds: at 100 % the baseline serves nothing, so
    triggers comparing with it are ``skipped`` rather than left inconclusive forever.
    Regression triggers read what happened in the last ``since_s`` seconds (since the previous
    analysis; the interval when there was none) and are judged with ``history``'s tests.
    A ``dry_run`` trigger is judged the same way; its result is marked ``dry_run``.
    """
    out: list[Measured] = []
    for trigger in contract.triggers:
        window = window_of(trigger, interval_s)
        base: Sample | None = None
        compares = trigger.above_baseline is not None or trigger.regression is not None
        if compares and weight is not None and weight >= FULL_WEIGHT:
            why = f"not judged at {weight:g}%: the baseline takes no traffic to compare with"
            out.append(Measured(TriggerResult(trigger_name(trigger), "skipped", why), Sample(None), None))
            continue
        if trigger.regression is not None and trigger.metric:
            out.append(
                _regression(trigger, target, provider, version, baseline, since_s or interval_s, history, streaks)
            )
            continue
        if trigger.signal:
            count = signals(trigger.signal, window)
            canary = Sample(count, count)
        else:
            assert trigger.metric is not None
            canary = safe_query(provider, trigger.metric, target, version, window)
            if compares:
                base = safe_query(provider, trigger.metric, target, baseline, window)
        result = streaks.apply(trigger, judge(trigger, canary, base))
        out.append(Measured(result, canary, base))
    return [_marked(trigger, m) for trigger, m in zip(contract.triggers, out, strict=True)]


def _marked(trigger: Trigger, measured: Measured) -> Measured:
    """``measured`` with its result marked as a dry run's when the trigger is one."""
    judged = as_judged(trigger, measured.result)
    return measured if judged is measured.result else replace(measured, result=judged)


def _regression(
    trigger: Trigger,
    target: Service,
    provider: Provider,
    version: str,
    baseline: str,
    window_s: int,
    history: History | None,
    streaks: Streaks,
) -> Measured:
    """A regression trigger: this window's counts for both versions, judged with every earlier one."""
    assert trigger.metric is not None
    metric = target.metrics.get(trigger.metric)
    kind = metric.kind if metric else ""
    window_s = max(1, window_s)
    canary = safe_query(provider, trigger.metric, target, version, window_s)
    base = safe_query(provider, trigger.metric, target, baseline, window_s)
    now = increment_of(kind, canary, base)
    stored = now if isinstance(now, Increment) else None
    earlier: Replay | list[Increment] = []
    if history is not None and kind in REGRESSION_KINDS:
        try:
            earlier = history(trigger, kind)
        except JudgeInputError as exc:  # settings the test refuses: the plan checks prevent them
            why = TriggerResult(trigger_name(trigger), "inconclusive", f"regression: {exc}")
            return Measured(streaks.apply(trigger, why), canary, base, stored)
    result, judged = judge_regression(trigger, kind, earlier, now)
    return Measured(streaks.apply(trigger, result), canary, base, stored, judged)


def metrics_now(
    contract: RollbackContract,
    target: Service,
    provider: Provider,
    *,
    version: str,
    baseline: str,
    interval_s: int,
    sides: Sequence[str] = ("canary", "baseline"),
) -> list[dict[str, Any]]:
    """What each metric trigger's metric reads now, for both versions (the rollback log's "after").

    ``sides`` limits it to ``canary`` or ``baseline`` (``plan validate --live`` asks the baseline
    only: the canary does not run yet).
    """
    out: list[dict[str, Any]] = []
    for trigger in contract.triggers:
        if not trigger.metric:
            continue
        window = window_of(trigger, interval_s)
        row: dict[str, Any] = {"trigger": trigger_name(trigger), "metric": trigger.metric, "window_s": window}
        for side, v in (("canary", version), ("baseline", baseline)):
            if side not in sides:
                continue
            sample = safe_query(provider, trigger.metric, target, v, window)
            row[side] = {"value": sample.value, "samples": sample.count, "error": sample.error}
        out.append(row)
    return out
