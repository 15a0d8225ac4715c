"""What a sequential test says after each update, and the errors it raises."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from shiprail.errors import BadInput

Decision = Literal["fail", "continue"]


class JudgeInputError(BadInput):
    """Counts a test cannot take: negative, shrinking (a counter reset), or not numbers."""


@dataclass(frozen=True)
class Verdict:
    """One look at a sequential test.

    ``decision`` is ``fail`` once the evidence that the canary is worse than the baseline crossed
    ``1/alpha`` (anytime-valid: looking after every update keeps the false-fail chance below
    ``alpha``), else ``continue``. ``p_value`` is the anytime-valid p-value (the running minimum,
    so it never rises); ``interval`` a time-uniform interval for the compared quantity (the
    rate ratio canary/baseline, a confidence sequence; for latency, from the CDF bands, which
    assume i.i.d. latencies: the canary's quantile in seconds when one was asked for, else its
    excess share of requests slower than the bound ``details["bound"]``), ``estimate`` the
    rate ratio or that excess share.
    """

    decision: Decision
    p_value: float
    alpha: float
    estimate: float | None
    interval: tuple[float, float] | None
    canary_samples: float
    baseline_samples: float
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.decision == "fail"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (infinite bounds as None)."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, 6)

        return {
            "decision": self.decision,
            "p_value": num(self.p_value),
            "alpha": self.alpha,
            "estimate": num(self.estimate),
            "interval": None if self.interval is None else [num(self.interval[0]), num(self.interval[1])],
            "canary_samples": self.canary_samples,
            "baseline_samples": self.baseline_samples,
            "reason": self.reason,
            **self.details,
        }


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in (0, 0.5]; ``JudgeInputError`` otherwise."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 0.5:
        raise JudgeInputError(f"alpha must be more than 0 and at most 0.5, got {alpha!r}")
    return float(alpha)


def increment(name: str, now: float, before: float) -> float:
    """``now - before`` for a cumulative count; ``JudgeInputError`` when it is not a count or shrank."""
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now) or now < 0:
        raise JudgeInputError(f"{name} must be a finite count of at least 0, got {now!r}")
    if now < before:
        raise JudgeInputError(
            f"{name} went down from {before:g} to {now:g}; counts are cumulative (a counter reset needs a new test)"
        )
    return float(now) - before
