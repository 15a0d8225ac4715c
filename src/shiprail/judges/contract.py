"""A contract's ``regression`` trigger, judged by the sequential tests over every analysis so far.

Each analysis reads, for the canary and the baseline, what happened since the previous analysis
(an *increment*: requests and errors, or latency histogram buckets) and stores it with its
verdict. The trigger's verdict is the test's after every stored increment of the release, in
order, then this one's (a ``Replay``). The tests are deterministic, so the controller may keep a
replay between analyses and feed it only what was stored since, or, after a restart, rebuild it
from the analyses themselves: the verdicts are the same.

- ``fail`` when the test rejects "the canary is no worse than the baseline" at the trigger's
  ``alpha`` (anytime-valid: judged at every analysis, wrong at most ``alpha`` of the time);
- ``inconclusive`` when this analysis has no traffic on one of the versions, the provider cannot
  give counts or buckets, or fewer than ``min_samples`` canary requests have been seen;
- ``pass`` otherwise: no regression shown so far (the reason carries the p-value and interval).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shiprail.domain.contract import Sample, TriggerResult, trigger_name
from shiprail.judges.base import JudgeInputError, Verdict
from shiprail.schema.plan import Regression, Trigger
from shiprail.schema.service import LATENCY_KINDS, REGRESSION_KINDS

if TYPE_CHECKING:
    from shiprail.judges.latency import LatencyRegressionTest
    from shiprail.judges.rates import RateRegressionTest

Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Increment:
    """What one analysis read for a regression trigger: each version's counts since the previous one."""

    canary_requests: float
    baseline_requests: float
    canary_events: float = 0.0
    baseline_events: float = 0.0
    canary_buckets: Buckets | None = None
    baseline_buckets: Buckets | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"canary_requests": self.canary_requests, "baseline_requests": self.baseline_requests}
        if self.canary_buckets is None:
            out |= {"canary_events": self.canary_events, "baseline_events": self.baseline_events}
        else:
            out |= {"canary_buckets": _buckets_json(self.canary_buckets)}
            out |= {"baseline_buckets": _buckets_json(self.baseline_buckets or ())}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Increment:
        """The increment ``to_json`` wrote; ``TypeError`` when a value is not a number as it writes them."""

        def number(value: Any) -> float:
            # As written: JSON numbers only, not true (a bool is an int) or "100".
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"not a number: {value!r}")
            return float(value)

        def buckets(key: str) -> Buckets | None:
            raw = data.get(key)
            return None if raw is None else tuple((math.inf if b is None else number(b), number(c)) for b, c in raw)

        return cls(
            number(data["canary_requests"]),
            number(data["baseline_requests"]),
            number(data.get("canary_events", 0.0)),
            number(data.get("baseline_events", 0.0)),
            buckets("canary_buckets"),
            buckets("baseline_buckets"),
        )


def _buckets_json(buckets: Buckets) -> list[list[float | None]]:
    # JSON has no infinity: the +Inf bound is written null.
    return [[None if math.isinf(b) else b, c] for b, c in buckets]


def increment_of(kind: str, canary: Sample, baseline: Sample) -> Increment | str:
    """The increment two samples of one window make, or why they cannot make one."""
    for who, sample in (("canary", canary), ("baseline", baseline)):
        if sample.error:
            return f"{who}: provider error: {sample.error}"
    for who, sample in (("canary", canary), ("baseline", baseline)):
        if sample.value is None and sample.count is None and sample.buckets is None:
            # Nothing measured (no series yet, a single scrape so far): not a provider that cannot count.
            return f"{who}: no data since the previous analysis"
    if kind in LATENCY_KINDS:
        if canary.buckets is None or baseline.buckets is None:
            return "the provider gives no histogram buckets for this metric; the regression test compares buckets"
        for who, buckets in (("canary", canary.buckets), ("baseline", baseline.buckets)):
            fell = _falls(buckets)
            if fell is not None:
                return f"{who}: {fell}; this window is left out"
        return Increment(
            _total(canary.buckets),
            _total(baseline.buckets),
            canary_buckets=canary.buckets,
            baseline_buckets=baseline.buckets,
        )
    for who, sample in (("canary", canary), ("baseline", baseline)):
        if sample.count is None:
            return (
                f"{who}: the provider gives no request count (e.g. a prometheus `count_query`); "
                "the regression test needs counts"
            )
    assert canary.count is not None and baseline.count is not None
    return Increment(
        canary.count,
        baseline.count,
        _events(canary),
        _events(baseline),
    )


def _bounds(buckets: Buckets | None) -> str:
    finite = [f"{b:g}" for b, _ in buckets or () if math.isfinite(b)]
    return "le " + ", ".join(finite) if finite else "no finite le"


def _falls(buckets: Buckets) -> str | None:
    """Why a window's buckets are not cumulative (a count below a lower bound's), or None.

    Each bucket series' increase is taken on its own (PromQL ``increase``, the scrape provider), so
    a process that restarted within the window can look like a counter reset to some of its series
    and not to others (those whose new count already passed the old one). What the window held is
    then unknowable: lifting the low counts, as ``histogram_quantile`` does, would invent fast
    requests (a restarted baseline would look faster than it is, a bias against a good canary).
    The window is left out, as a counter reset's lost requests are: power lost, not validity. It
    is not refused by the test, which would break the trigger for the rest of the release.
    """
    below: tuple[float, float] | None = None
    for bound, count in sorted(buckets):
        if below is not None and 0 <= count < below[1]:
            return (
                f"its histogram buckets fall as the bound rises (le {bound:g}: {count:g} after le "
                f"{below[0]:g}: {below[1]:g}), a restart seen by some bucket series only"
            )
        if below is None or count > below[1]:
            below = (bound, count)
    return None


def _total(buckets: Buckets) -> float:
    return max((c for b, c in buckets if math.isinf(b)), default=0.0)


def _events(sample: Sample) -> float:
    # A rate times the requests behind it; rounded because counters are whole and floats are not.
    if sample.value is None or not sample.count:
        return 0.0
    return float(round(sample.value * sample.count, 6))


def regression_test(kind: str, regression: Regression) -> RateRegressionTest | LatencyRegressionTest:
    """The test a ``regression`` comparison runs on a metric of ``kind``, nothing fed yet."""
    # Imported here: the tests need numpy, and every CLI command reads this module (through the
    # store) while only the controller's analyses (and `shiprail judge`) run a test.
    from shiprail.judges.latency import LatencyRegressionTest
    from shiprail.judges.rates import RateRegressionTest

    if kind in LATENCY_KINDS:
        # The order test asks "slower at all"; a tolerance (min_ratio above 1) is the exceedance test's.
        method: Literal["order", "exceedance"] = "order" if regression.min_ratio == 1 else "exceedance"
        return LatencyRegressionTest(regression.alpha, quantile=None, min_ratio=regression.min_ratio, method=method)
    return RateRegressionTest(regression.alpha, min_ratio=regression.min_ratio, bursts=regression.bursts)


class RunningSums:
    """The running sums of a trigger's increments: the cumulative counts its test is fed."""

    def __init__(self) -> None:
        self.counts = (0.0, 0.0, 0.0, 0.0)
        """``(canary_requests, canary_events, baseline_requests, baseline_events)``."""
        self.canary: dict[float, float] = {}
        self.baseline: dict[float, float] = {}
        """Each version's buckets, ``{le: count}``, ``math.inf`` the total."""

    def add(self, inc: Increment) -> None:
        """Add ``inc``; ``JudgeInputError``, nothing added, when a version's buckets are not the ones it had.

        A bucket series that stops arriving (gone stale, relabelled) would otherwise freeze its
        running count while the total grows: read as "no request that fast any more", a false
        regression. An increment without buckets for a version (no series: no traffic) adds none.
        """
        for who, sums, buckets in (
            ("canary", self.canary, inc.canary_buckets),
            ("baseline", self.baseline, inc.baseline_buckets),
        ):
            if not buckets:
                continue
            bounds = {b for b, _ in buckets}
            if len(bounds) < len(buckets):
                raise JudgeInputError(f"{who} buckets: one bound (le) appears twice in one analysis")
            if math.inf not in bounds:
                raise JudgeInputError(f"{who} buckets: no +Inf bucket, so the requests they count are unknown")
            if sums and bounds != sums.keys():
                gone, new = sorted(sums.keys() - bounds), sorted(bounds - sums.keys())
                change = [f"le {b:g} no longer comes" for b in gone] + [f"le {b:g} is new" for b in new]
                raise JudgeInputError(
                    f"{who} buckets changed ({', '.join(change)}); the test compares the same buckets "
                    "throughout a release"
                )
        nc, ec, nb, eb = self.counts
        self.counts = (
            nc + inc.canary_requests,
            ec + inc.canary_events,
            nb + inc.baseline_requests,
            eb + inc.baseline_events,
        )
        for target, buckets in ((self.canary, inc.canary_buckets or ()), (self.baseline, inc.baseline_buckets or ())):
            for bound, count in buckets:
                target[bound] = target.get(bound, 0.0) + count

    @property
    def histograms(self) -> bool:
        """Both versions have had a complete histogram (a +Inf bucket): a latency test can take them."""
        return math.inf in self.canary and math.inf in self.baseline


class Replay:
    """A regression trigger's test, fed the increments of the release's analyses in order.

    Feeding ``i₁ … iₙ`` one at a time, over any number of analyses, leaves the same test as feeding
    them at once. An increment the test refuses (``JudgeInputError``, e.g. a count that went down)
    breaks the replay for good: every later feed raises the same error, as a fresh replay of the
    stored increments would.
    """

    def __init__(self, kind: str, trigger: Trigger) -> None:
        """A test for ``trigger`` (its ``regression`` settings) on a metric of ``kind``; nothing fed yet."""
        from shiprail.judges.latency import LatencyRegressionTest

        assert trigger.regression is not None
        self.verdict: Verdict | None = None
        self.fed = 0
        self.broken: str | None = None
        self.rate: RateRegressionTest | None = None
        self.lat: LatencyRegressionTest | None = None
        test = regression_test(kind, trigger.regression)
        if isinstance(test, LatencyRegressionTest):
            self.lat = test
        else:
            self.rate = test
        self.sums = RunningSums()

    def feed(self, inc: Increment) -> Verdict | None:
        """The verdict after ``inc`` too (None while a latency test has had no complete histogram)."""
        if self.broken is not None:
            raise JudgeInputError(self.broken)
        self.fed += 1
        try:
            self.sums.add(inc)
            if self.lat is not None:
                if self.sums.histograms:
                    self.verdict = self.lat.update(canary_buckets=self.sums.canary, baseline_buckets=self.sums.baseline)
            elif self.rate is not None:
                nc, ec, nb, eb = self.sums.counts
                self.verdict = self.rate.update(
                    canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb
                )
        except JudgeInputError as exc:
            self.broken = str(exc)
            raise
        return self.verdict

    def copy(self) -> Replay:
        """An independent replay in the same state (to feed an increment that may not be stored)."""
        return copy.deepcopy(self)


def replayed(kind: str, trigger: Trigger, increments: Sequence[Increment]) -> Replay:
    """A replay fed ``increments`` in order (raises ``JudgeInputError`` when the test refuses one)."""
    replay = Replay(kind, trigger)
    for inc in increments:
        replay.feed(inc)
    return replay


def judge_regression(
    trigger: Trigger, kind: str, history: Sequence[Increment] | Replay, now: Increment | str
) -> tuple[TriggerResult, Verdict | None]:
    """The trigger's verdict at this analysis.

    ``history``: the earlier increments, or a replay already fed them (left as it is: ``now`` is
    fed to a copy); ``now``: this analysis's increment, or why there is none.
    """
    name = trigger_name(trigger)
    if kind not in REGRESSION_KINDS:
        why = f"a regression test judges error_rate, ratio and latency metrics, not {kind}"
        return TriggerResult(name, "inconclusive", why), None
    if isinstance(now, str):
        return TriggerResult(name, "inconclusive", now), None
    try:
        replay = history.copy() if isinstance(history, Replay) else replayed(kind, trigger, history)
        verdict = replay.feed(now)
    except JudgeInputError as exc:
        return TriggerResult(name, "inconclusive", f"regression: {exc}"), None
    alpha = trigger.regression.alpha if trigger.regression else None
    if verdict is not None and verdict.failed:
        return TriggerResult(name, "fail", verdict.reason, verdict.p_value, alpha), verdict
    if now.canary_requests <= 0 or now.baseline_requests <= 0:
        who = "canary" if now.canary_requests <= 0 else "baseline"
        return TriggerResult(name, "inconclusive", f"{who}: no requests since the last analysis"), verdict
    if verdict is None:
        return TriggerResult(name, "inconclusive", "regression: no data yet"), None
    if replay.lat is not None and not replay.lat.bounds:
        # Nothing was compared: "no slowdown shown" would be a pass on no evidence at all.
        bounds = ", ".join(
            f"{who} {_bounds(b)}" for who, b in (("canary", now.canary_buckets), ("baseline", now.baseline_buckets))
        )
        why = f"regression: the versions' histograms share no finite bucket bound ({bounds}); "
        why += "give both the same buckets"
        return TriggerResult(name, "inconclusive", why), verdict
    minimum = trigger.min_samples
    if minimum and verdict.canary_samples < minimum:
        why = f"canary: {verdict.canary_samples:g} requests so far, fewer than the {minimum} required"
        return TriggerResult(name, "inconclusive", why, verdict.p_value, alpha), verdict
    return TriggerResult(name, "pass", verdict.reason, verdict.p_value, alpha), verdict
