"""What a sequential test says after each update, and the errors it raises."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

from shiprail import defaults
from shiprail.errors import BadInput

Decision = Literal["fail", "continue"]

# Beyond any stage's traffic (10⁵ requests a second for 300 years), and where float64 stops
# counting whole requests exactly: a count above it is a wrong column, not traffic.
MAX_COUNT = 1e15
MIN_RATIO_RANGE = defaults.MIN_RATIO_RANGE


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
            # Six significant digits, not six decimals: a p-value of 3e-07 is not 0.
            return None if x is None or not math.isfinite(x) else float(f"{x:.6g}")

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


def is_number(x: object) -> bool:
    """A real number (numpy's included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in (0, 0.5]; ``JudgeInputError`` otherwise."""
    if not is_number(alpha) or not 0 < alpha <= 0.5:
        raise JudgeInputError(f"alpha must be more than 0 and at most 0.5, got {alpha!r}")
    return float(alpha)


def check_min_ratio(min_ratio: float) -> float:
    """``min_ratio`` as a float in ``MIN_RATIO_RANGE``; ``JudgeInputError`` otherwise."""
    low, high = MIN_RATIO_RANGE
    if not is_number(min_ratio) or not low <= min_ratio <= high:
        raise JudgeInputError(f"min_ratio must be at least {low:g} and at most {high:g}, got {min_ratio!r}")
    return float(min_ratio)


def check_count(name: str, value: object) -> float:
    """``value`` as a float count between 0 and ``MAX_COUNT``; ``JudgeInputError`` naming ``name`` otherwise."""
    # Compared before any float(): an int too large for a float compares exactly; NaN fails.
    if not is_number(value) or not 0 <= value < math.inf:  # type: ignore[operator]
        raise JudgeInputError(f"{name} must be a finite count of at least 0, got {value!r}")
    if value > MAX_COUNT:  # type: ignore[operator]
        shown = repr(value) if len(repr(value)) <= 24 else repr(value)[:20] + "…"
        raise JudgeInputError(f"{name} is more than {MAX_COUNT:.0e} ({shown}): a wrong column, not a count")
    return float(value)  # type: ignore[arg-type]


# The smallest p-value any test reports (its log): below it the evidence is beyond any α anyone
# uses, and exp() of the evidence would underflow to a p-value of exactly 0, which no test can show.
LOG_P_FLOOR = -690.0


def p_value_of(log_evidence: float) -> float:
    """The p-value ``1/E`` of an e-process at log-evidence ``log_evidence``: at most 1, at least e^-690."""
    return 1.0 if log_evidence <= 0 else math.exp(max(-log_evidence, LOG_P_FLOOR))


def apart(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` in the fewest significant digits, six or more, that tell them apart.

    For messages that compare two counts: ``:g`` alone wrote 1234567 and 1234566 both as
    1.23457e+06, and "went down from 1.23457e+06 to 1.23457e+06" contradicts itself.
    """
    for digits in range(6, 18):
        x, y = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if x != y:
            return x, y
    return repr(a), repr(b)


def increment(name: str, now: float, before: float) -> float:
    """``now - before`` for a cumulative count; ``JudgeInputError`` when it is not a count or shrank."""
    now = check_count(name, now)
    if now < before:
        was, is_ = apart(before, now)
        raise JudgeInputError(
            f"{name} went down from {was} to {is_}; counts are cumulative (a counter reset needs a new test)"
        )
    return float(now) - before
