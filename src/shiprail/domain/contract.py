"""Judging one rollback-contract trigger against what the providers measured.

Pure. The semantics, pinned by boundary tests (tests/unit/domain/test_contract.py):

- ``above: N`` fails when the value is strictly greater than N; ``below: N`` when strictly less.
- ``above_baseline: R`` fails when canary > R × baseline. A baseline of 0 fails any canary
  value above 0 (there is no ratio to take), provided both sides have their minimum samples.
- No value (or NaN, ±Inf), fewer than ``min_samples`` (or a NaN count), or a provider error is
  ``inconclusive`` — never ``pass``.
- ``consecutive: N`` needs N failing analyses in a row; without it one failure fails.
- ``dry_run: true`` changes nothing here: the trigger is judged like any other (``consecutive``
  included) and its result marked ``dry_run``; only the rollout (``rollout.analysed``) ignores it.
- ``skipped``: a comparison with the baseline is not judged while the canary holds all traffic
  (the baseline serves nothing, so there is nothing to compare with); it neither fails nor holds
  the release, and the absolute triggers keep watching the canary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from shiprail.schema.plan import Trigger

Verdict = Literal["pass", "fail", "inconclusive", "skipped"]

PROVIDER_ERROR = "provider error: "
"""What an inconclusive result's reason says after ``canary: `` or ``baseline: `` when the provider
failed (unreachable, an HTTP error, a query it refused), rather than answering with no data."""


@dataclass(frozen=True)
class Sample:
    """One measurement of a metric for one version over a window.

    ``value`` is ``None`` when the provider had no data; ``count`` is the sample size behind the
    value (requests, events) when the provider knows it; ``error`` says why a query failed.
    ``buckets`` are a latency histogram's cumulative ``(upper bound, count)`` pairs over the window
    (``inf`` last), when the provider reads a histogram: the sequential judge compares those.
    """

    value: float | None
    count: float | None = None
    error: str | None = None
    # Not part of equality: two samples with the same value and count are the same reading.
    buckets: tuple[tuple[float, float], ...] | None = field(default=None, compare=False)

    @classmethod
    def failed(cls, error: str) -> Sample:
        return cls(None, None, error)


@dataclass(frozen=True)
class TriggerResult:
    """A trigger's verdict on one analysis, with what it was judged on."""

    trigger: str
    verdict: Verdict
    reason: str
    value: float | None = None
    threshold: float | None = None
    baseline: float | None = None
    held: bool = False
    """An inconclusive result that is a failure held back by ``consecutive`` (data, not a gap in it)."""
    dry_run: bool = False
    """The verdict of a ``dry_run`` trigger: recorded and shown, never acted on (see ``rollout.analysed``)."""


def trigger_name(trigger: Trigger) -> str:
    """The trigger's name, or its metric or signal when it has none."""
    return trigger.name or trigger.metric or trigger.signal or "trigger"


def provider_failed(result: TriggerResult) -> bool:
    """Whether ``result`` is inconclusive because the provider failed, not for want of data."""
    return result.verdict == "inconclusive" and any(
        result.reason.startswith(f"{who}: {PROVIDER_ERROR}") for who in ("canary", "baseline")
    )


def as_judged(trigger: Trigger, result: TriggerResult) -> TriggerResult:
    """``result`` marked as a dry run's when ``trigger`` is one: the same verdict, only reported."""
    return replace(result, dry_run=True) if trigger.dry_run else result


def _short(x: float) -> str:
    return f"{x:.6g}"


def _enough(sample: Sample, minimum: int | None, who: str) -> str | None:
    """Why ``sample`` cannot be judged, or None when it can."""
    if sample.error:
        return f"{who}: {PROVIDER_ERROR}{sample.error}"
    # NaN compares false with every limit, so it would pass; ±Inf is no measurement either.
    if sample.value is None or not math.isfinite(sample.value):
        return f"{who}: no data"
    if minimum and (sample.count is None or not sample.count >= minimum):
        have = "unknown" if sample.count is None else _short(sample.count)
        return f"{who}: {have} sample{'' if have == '1' else 's'}, fewer than the {minimum} required"
    return None


def judge(trigger: Trigger, canary: Sample, baseline: Sample | None = None) -> TriggerResult:
    """The verdict of ``trigger`` on one analysis (``consecutive`` is applied by ``Streaks``)."""
    name = trigger_name(trigger)
    why = _enough(canary, trigger.min_samples, "canary")
    if why:
        return TriggerResult(name, "inconclusive", why)
    value = canary.value
    assert value is not None
    for side, limit in (("above", trigger.above), ("below", trigger.below)):
        if limit is not None:
            bad = value > limit if side == "above" else value < limit
            where = side if bad else "within"
            return TriggerResult(
                name, "fail" if bad else "pass", f"{_short(value)} {where} the limit {_short(limit)}", value, limit
            )
    if trigger.above_baseline is not None:
        if baseline is None:
            return TriggerResult(name, "inconclusive", "baseline: not measured", value)
        why = _enough(baseline, trigger.min_samples, "baseline")
        if why:
            return TriggerResult(name, "inconclusive", why, value)
        base = baseline.value
        assert base is not None
        limit = trigger.above_baseline * base
        bad = value > limit
        word = "above" if bad else "within"
        return TriggerResult(
            name,
            "fail" if bad else "pass",
            f"{_short(value)} {word} {_short(trigger.above_baseline)} × baseline {_short(base)} = {_short(limit)}",
            value,
            limit,
            base,
        )
    # A statistical regression test is judged by the sequential judge, which needs counts over
    # time, not one sample; until it has them the trigger cannot say pass.
    return TriggerResult(name, "inconclusive", "regression: no sequential judge verdict yet", value)


class Streaks:
    """Counts consecutive failures per trigger, to honour ``consecutive: N``."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self.counts: dict[str, int] = dict(counts or {})

    def apply(self, trigger: Trigger, result: TriggerResult) -> TriggerResult:
        """The result after ``consecutive``: a failure short of N in a row is held as inconclusive."""
        name = result.trigger
        if result.verdict != "fail":
            # A pass breaks the streak; so does missing data (a gap is not evidence of failure).
            self.counts[name] = 0
            return result
        self.counts[name] = self.counts.get(name, 0) + 1
        need = trigger.consecutive or 1
        if self.counts[name] >= need:
            return result
        return TriggerResult(
            name,
            "inconclusive",
            f"{result.reason} (failure {self.counts[name]} of {need} in a row)",
            result.value,
            result.threshold,
            result.baseline,
            held=True,
            dry_run=result.dry_run,
        )
