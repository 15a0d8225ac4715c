"""An anytime-valid test that the canary is not slower than the baseline, from histogram buckets.

Each version's latencies arrive as cumulative histogram buckets (Prometheus' ``le`` counts): the
only thing known is how many requests took at most each bound. The test works on exactly that —
the empirical CDF at the bucket bounds — and never guesses values inside a bucket.

Howard & Ramdas ("Sequential estimation of quantiles with applications to A/B-testing and best-arm
identification", Bernoulli 2022, Theorem 2) bound the empirical CDF of ``t`` i.i.d. draws uniformly
over every point *and every time*:

    P(∃ t ≥ 1, x : |F̂_t(x) − F(x)| > u_t) ≤ α,   u_t = 0.85 · √((log(1 + log t) + 0.8 · log(1612/α)) / t).

With ``α/2`` for each version, both bands hold at once, at every look, with probability ≥ 1 − α.
The canary is declared slower when at some bound ``b`` its CDF's upper band lies below the
baseline's lower band — fewer canary requests than baseline requests finish within ``b``, beyond
what chance allows at any time:

    F̂_c(b) + u_c  <  F̂_b(b) − u_b   (− ``tolerance``, a share of requests that does not matter).

If the canary is in truth no slower (``F_c ≥ F_b`` everywhere, or by less than ``tolerance``), this
needs a band to fail, so the false-fail chance is at most α however often one looks.

That is ``method="bands"``. Its bands are as wide in the tail as in the middle, so a slowdown of
the slowest 2 % needs hundreds of thousands of requests to show.

The default, ``method="order"`` (``shiprail.judges.ordered``), tests the same null — the canary's
latencies are stochastically no larger than the baseline's, at the bucket bounds — with an
e-process on the buckets' counts: each update multiplies in a likelihood ratio of an alternative
fitted to the data before it (the canary's share over-represented in slower buckets, in any
non-decreasing pattern), normalised so that its mean is at most 1 under the null. Its width
follows the data, all buckets count at once, and a shift of the median or a slowdown of the
slowest 2 % is learnt alike.

``method="exceedance"`` asks the question bound by bound instead: at each bucket bound ``b`` the
requests slower than ``b`` are events, and the rate test of ``shiprail.judges.rates`` (one-sided,
anytime-valid, shocks cancel) asks whether the canary has more of them per request than the
baseline — ``min_ratio`` times more, with a tolerance. The evidence of the ``K`` bounds is
averaged: the mean ``M̄_t = (1/K) Σ_k M_k,t`` of test supermartingales under the null is a test
supermartingale too, so rejecting when ``M̄_t ≥ 1/α`` keeps the false-fail chance below α at every
look. Averaging 14 strongly dependent bounds costs it time at low traffic, and the rate test's
split of each bound's slow requests (Poisson, not binomial) loses the information in the
requests that were not slow — a loss that grows with the share above the bound.

With ``quantile`` (0.99 for p99) and ``method="bands"`` the test compares that quantile only: the bands give, for each
version, bucket bounds that bracket its quantile at every time; the canary fails when the lowest
its quantile can be is above the highest the baseline's can be.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Mapping
from typing import Literal

import numpy as np

from shiprail.judges.base import (
    LOG_P_FLOOR,
    MAX_COUNT,
    JudgeInputError,
    Verdict,
    apart,
    check_alpha,
    check_count,
    check_min_ratio,
    is_number,
    p_value_of,
)
from shiprail.judges.ordered import OrderedEvidence
from shiprail.judges.rates import RatioEvidence

# Theorem 2's constants (A = 0.85 and C = 0.8·log(1612/α)); valid for every t ≥ 1.
HR_A = 0.85
HR_C_SCALE = 0.8
HR_C_NUMERATOR = 1612.0
# The order method's weight on the ordered plug-in e-process; the rest goes to the exceedance
# mean (the "rescue"). The plug-in learns its alternative from earlier updates, so the first update
# of a test can give it no evidence; the exceedance streams' fixed mixture can, and a catastrophic
# slowdown fed as one update fails at once. The 0.1 share costs the ordered test log(1/0.9) ≈ 0.1
# of evidence, against the log(1/α) ≈ 3 it needs at α = 0.05.
ORDER_SHARE = 0.9
# The rescue's grid: ratios ×1.16 apart, not ×1.025 (it is there for slowdowns too large to miss).
RESCUE_GRID_POINTS = 41
# Once the ordered e-process has seen this many canary requests (its plug-in then trusts the
# canary's shape at least half-way), the rescue's wealth is moved onto it and the rescue stops:
# E_s = E_t · (E_order,s / E_order,t) after the move at t, which is again a product of the plug-in's
# per-update e-values, so the mixture stays a test supermartingale, and an update costs ~40 % less.
RESCUE_CANARY_REQUESTS = 100.0
# How far below zero, relative to the largest count, a bucket's increment may be and still count
# as rounding (it is then taken as 0): float64 sums of fractional counts drift by ~10⁻¹⁶ each.
COUNT_TOLERANCE = 1e-9
# The smallest p-value the bands report (log α): the count tests' floor.
LOG_ALPHA_FLOOR = LOG_P_FLOOR


def band(t: float, alpha: float) -> float:
    """The half-width of the time-uniform CDF band after ``t`` observations at level ``alpha``."""
    if t < 1:
        return math.inf
    return HR_A * math.sqrt((math.log(1 + math.log(t)) + HR_C_SCALE * math.log(HR_C_NUMERATOR / alpha)) / t)


Buckets = Mapping[float, float]
Method = Literal["order", "exceedance", "bands"]


def _cdf(name: str, buckets: Buckets) -> tuple[float, dict[float, float], dict[float, float]]:
    """(total, {finite bound: share ≤ bound}, {finite bound: count ≤ bound}) from cumulative ``le`` counts."""
    if not isinstance(buckets, Mapping) or not buckets:
        raise JudgeInputError(f"{name} must map bucket bounds to cumulative counts, with +Inf for the total")
    clean: dict[float, float] = {}
    last, ascending = -1.0, True
    for bound, count in buckets.items():
        # The exact-type tests first: they are most of the cost of an update otherwise (bool is an
        # int subclass and not a number; numpy's numbers are numbers.Real).
        key = bound if type(bound) is float and bound >= 0 else _bound(name, bound)
        if type(count) is not float or not 0 <= count <= MAX_COUNT:
            count = check_count(f"{name}[{bound!r}]", count)
        clean[key] = count
        ascending = ascending and key > last
        last = key
    if math.inf not in clean:
        raise JudgeInputError(f"{name} has no +Inf bucket (the total count)")
    if not ascending:  # histograms come in order; anything else is sorted once here
        clean = dict(sorted(clean.items()))
    counts = list(clean.values())
    if counts != sorted(counts):  # one C-level pass; the message looks for the first culprit
        ordered = list(clean.items())
        for (b1, c1), (b2, c2) in itertools.pairwise(ordered):
            if c2 < c1:
                raise JudgeInputError(
                    f"{name}: bucket {_le(b2)} counts {_exact(c2)}, fewer than bucket {_le(b1)} ({_exact(c1)}); "
                    "counts are cumulative"
                )
    total = clean.pop(math.inf)  # +Inf sorts last, and _bound refused NaN: the rest are the finite bounds
    return total, {b: c / total for b, c in clean.items()} if total else dict.fromkeys(clean, 0.0), clean


def _bound(name: str, bound: object) -> float:
    """A bucket bound as a float of at least 0 (``math.inf`` for +Inf); ``JudgeInputError`` otherwise."""
    value = math.nan
    if is_number(bound):
        with contextlib.suppress(OverflowError):  # an int beyond float: not a latency either
            value = float(bound)  # type: ignore[arg-type]
    if not value >= 0:  # NaN, negative, not a number
        raise JudgeInputError(
            f"{name}: bucket bound {bound!r} is not a latency; bounds are seconds of at least 0, math.inf for +Inf"
        )
    return value


class LatencyRegressionTest:
    """Sequential test of "canary not slower than baseline", fed cumulative histogram buckets.

    ``method``: ``order`` (the default), ``exceedance`` or ``bands`` (see the module's text).
    ``quantile`` (e.g. 0.99): with ``method="bands"`` the test compares that quantile only; with
    the others it only adds the quantile's interval to the report. None: the whole distribution.
    ``min_ratio`` (exceedance only): how many times more requests slower than a bound the canary
    may have before it counts (1: any increase the data can show). ``tolerance`` (bands): the share of
    requests by which the canary's CDF may trail the baseline's before it counts.
    """

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        quantile: float | None = None,
        tolerance: float = 0.0,
        min_ratio: float = 1.0,
        method: Method = "order",
    ) -> None:
        self.alpha = check_alpha(alpha)
        min_ratio = check_min_ratio(min_ratio)
        if method not in ("order", "exceedance", "bands"):
            raise JudgeInputError(f"method must be order, exceedance or bands, got {method!r}")
        # A setting the method does not read is refused, not ignored: a caller who asked for a
        # tolerance would otherwise get a stricter test than asked for, and never know.
        if method == "order" and min_ratio != 1:
            raise JudgeInputError(
                f"min_ratio {min_ratio!r} needs method exceedance (the order test asks whether it is slower at all)"
            )
        if method == "bands" and min_ratio != 1:
            raise JudgeInputError(
                f"min_ratio {min_ratio!r} needs method exceedance (the bands method's allowance is tolerance)"
            )
        self.method = method
        self.min_ratio = min_ratio
        self.bounds: list[float] | None = None
        self.evidence: RatioEvidence | None = None  # exceedance
        self.ordered: OrderedEvidence | None = None  # order
        self.rescue: RatioEvidence | None = None  # order, until RESCUE_CANARY_REQUESTS
        self.fold = 0.0  # order, after the rescue: log(E / E_order)
        # Each version's cumulative counts at the bounds, +Inf last (lists: an update's arithmetic on
        # 15 buckets costs less in Python than numpy's per-call overhead).
        self.seen: tuple[list[float], list[float]] = ([], [])
        if quantile is not None and (not is_number(quantile) or not 0 < quantile < 1):
            raise JudgeInputError(f"quantile must be between 0 and 1 (0.99 for p99), got {quantile!r}")
        if not is_number(tolerance) or not 0 <= tolerance < 1:
            raise JudgeInputError(f"tolerance must be a share between 0 and 1, got {tolerance!r}")
        if tolerance != 0 and method != "bands":
            raise JudgeInputError(
                f"tolerance {tolerance!r} needs method bands (the count tests' allowance is min_ratio, "
                "with method exceedance)"
            )
        self.quantile = quantile
        self.tolerance = tolerance
        self.min_p = 1.0
        self.totals = (0.0, 0.0)
        self.cdfs: tuple[dict[float, float], dict[float, float]] = ({}, {})
        # Per bound, the running intersection of the excess share's intervals (a confidence sequence).
        self.excess_cs: dict[float, tuple[float, float]] = {}

    def update(self, *, canary_buckets: Buckets, baseline_buckets: Buckets) -> Verdict:
        """Take each version's cumulative buckets so far (``{le: count}``, ``math.inf`` the total)."""
        tc, fc, cc = _cdf("canary_buckets", canary_buckets)
        tb, fb, cb = _cdf("baseline_buckets", baseline_buckets)
        for name, total, before in (("canary_buckets", tc, self.totals[0]), ("baseline_buckets", tb, self.totals[1])):
            if total < before:
                was, now = apart(before, total)
                raise JudgeInputError(
                    f"{name}[+Inf] (the total) went down from {was} to {now}; buckets are cumulative over time"
                )
        self._take(tc, tb, cc, cb)
        self.totals, self.cdfs = (tc, tb), (fc, fb)
        return self.verdict()

    @staticmethod
    def _cumulative(
        bounds: list[float], tc: float, tb: float, cc: dict[float, float], cb: dict[float, float]
    ) -> tuple[list[float], list[float]]:
        """Both versions' cumulative ``le`` counts at ``bounds`` and +Inf."""
        return [*(cc[b] for b in bounds), tc], [*(cb[b] for b in bounds), tb]

    def _start(self, bounds: list[float]) -> None:
        """Count from now on at ``bounds``, the bounds both versions' histograms share."""
        self.bounds = bounds
        if self.method == "order":
            self.ordered = OrderedEvidence(1, len(bounds) + 1)
            self.rescue = RatioEvidence(len(bounds), points=RESCUE_GRID_POINTS)
        elif self.method == "exceedance":
            self.evidence = RatioEvidence(len(bounds), min_ratio=self.min_ratio)
        self.seen = ([0.0] * (len(bounds) + 1), [0.0] * (len(bounds) + 1))

    def _take(self, tc: float, tb: float, cc: dict[float, float], cb: dict[float, float]) -> None:
        """Check the update's buckets against the ones before and feed the evidence; nothing changes if refused."""
        # _cdf's dicts hold their bounds in order; most histograms share every bound.
        bounds = list(cc) if cc.keys() == cb.keys() else sorted(cc.keys() & cb.keys())
        first = self.bounds is None
        if first:
            if not bounds:
                return
            if self.totals != (0.0, 0.0):
                # Earlier requests came without shared bounds: counting starts from here, and adds
                # no evidence for them (their split by bucket is unknown).
                self._start(bounds)
                self.seen = self._cumulative(bounds, tc, tb, cc, cb)
                return
            seen = ([0.0] * (len(bounds) + 1), [0.0] * (len(bounds) + 1))
        elif bounds != self.bounds:
            raise JudgeInputError(
                f"the bucket bounds both versions share changed between updates, from {_bounds(self.bounds or [])} to "
                f"{_bounds(bounds)}; a new histogram needs a new test"
            )
        else:
            seen = self.seen
        now = self._cumulative(bounds, tc, tb, cc, cb)
        # Counts subtracted, not shares multiplied back: at 10⁷ requests the rounding of t·F alone
        # would make a bucket seem to lose requests. [0] the canary, [1] the baseline.
        per = (_per_bucket(now[0], seen[0]), _per_bucket(now[1], seen[1]))
        # Relative tolerance: fractional counts (Prometheus' increase, summed) of 10⁷ carry rounding
        # errors of ~10⁻⁹ that must not read as a bucket losing requests.
        if min(min(per[0]), min(per[1])) < -COUNT_TOLERANCE * max(1.0, max(now[0]), max(now[1])):
            raise JudgeInputError(_went_down(bounds, seen, now, per))
        per = ([x if x > 0.0 else 0.0 for x in per[0]], [x if x > 0.0 else 0.0 for x in per[1]])
        if first:
            self._start(bounds)
        self.seen = now
        if self.ordered is not None:
            self.ordered.add_one(*per)
        streams = self.evidence or self.rescue
        if streams is None:
            return
        # The exceedance streams' events: requests in the buckets above each finite bound.
        per_bucket = np.array(per)
        above = np.cumsum(per_bucket[:, ::-1], axis=1)[:, ::-1][:, 1:]
        streams.add(tc - self.totals[0], tb - self.totals[1], above[0], above[1])
        if self.ordered is not None and self.ordered.canary.sum() >= RESCUE_CANARY_REQUESTS:
            log_order = self.ordered.log_e()
            self.fold = float(mix_order(log_order, np.array([_log_mean(streams)[0]]))[0] - log_order[0])
            self.rescue = None

    def verdict(self) -> Verdict:
        """The verdict on the buckets taken so far."""
        (tc, tb), (fc, fb) = self.totals, self.cdfs
        half = self.alpha / 2
        uc, ub = band(tc, half), band(tb, half)
        if self.method != "bands":
            return self._by_evidence(tc, tb, uc, ub)
        bounds = sorted(set(fc) & set(fb))
        if self.quantile is None:
            return self._distribution(bounds, tc, tb, uc, ub)
        return self._quantile(bounds, tc, tb, uc, ub)

    def _log_evidence(self) -> tuple[float, float | None]:
        """(log e-value now, the bound to report)."""
        if not self.bounds:
            return 0.0, None
        if self.ordered is None:
            assert self.evidence is not None
            log_mean, i = _log_mean(self.evidence)
            return log_mean, self.bounds[i]
        fc, fb = self.cdfs
        # The bound where the canary has most more requests above it than the baseline.
        gaps = [fb[b] - fc[b] for b in self.bounds]
        at = self.bounds[gaps.index(max(gaps))]  # the first of equal gaps, as max(key=...) takes
        log_order = self.ordered.log_e()
        if self.rescue is None:
            return self.fold + float(log_order[0]), at
        return float(mix_order(log_order, np.array([_log_mean(self.rescue)[0]]))[0]), at

    def _by_evidence(self, tc: float, tb: float, uc: float, ub: float) -> Verdict:
        fc, fb = self.cdfs
        log_e, at = self._log_evidence()
        if at is not None:
            # Evidence below 1 is p = 1 (and exp(−log e) would overflow past log e = −709).
            self.min_p = min(self.min_p, p_value_of(log_e))
        failed = self.min_p <= self.alpha
        if at is None:
            what = "no common bucket bounds yet"
        elif tc == 0 or tb == 0:
            what, at = f"no {'canary' if tc == 0 else 'baseline'} requests yet", None
        else:
            what = f"slower than {at:g}s: canary {1 - fc[at]:.2%} vs baseline {1 - fb[at]:.2%} of requests"
        if self.quantile is not None and self.bounds:
            c_low, c_high = _bracket(self.bounds, fc, uc, self.quantile)
            b_low, b_high = _bracket(self.bounds, fb, ub, self.quantile)
            what += (
                f"; p{self.quantile * 100:g} canary in ({_s(c_low)}, {_s(c_high)}], "
                f"baseline in ({_s(b_low)}, {_s(b_high)}]"
            )
            interval: tuple[float, float] | None = (c_low, c_high)
        elif at is not None:
            # The canary's excess share of requests slower than the bound: both versions' CDF bands
            # hold at every bound and every look together (α/2 each), so this interval does too.
            # They are intersected over the looks at each bound, as the rate test's interval is.
            excess, width = fb[at] - fc[at] + 0.0, min(2.0, uc + ub)  # + 0.0: no "-0.00%"
            interval = (max(-1.0, excess - width), min(1.0, excess + width))
            before = self.excess_cs.get(at)
            if before is not None and max(before[0], interval[0]) <= min(before[1], interval[1]):
                interval = (max(before[0], interval[0]), min(before[1], interval[1]))
            # (Else the rare, at most α, miss where the intersection would be empty: this look's interval.)
            self.excess_cs[at] = interval
            what += f", excess {excess:+.2%} (CS {interval[0]:+.2%} … {interval[1]:+.2%})"
        else:
            interval = None
        reason = (
            f"canary slower than baseline: {what}, p = {self.min_p:.2g} ≤ α {self.alpha:g}"
            if failed
            else f"no slowdown shown yet: {what}, p = {self.min_p:.2g} > α {self.alpha:g}"
        )
        estimate = None if at is None else (1 - fc[at]) - (1 - fb[at])
        return Verdict(
            "fail" if failed else "continue",
            self.min_p,
            self.alpha,
            estimate,
            interval,
            tc,
            tb,
            reason,
            {"bound": at, "method": self.method},
        )

    def _distribution(self, bounds: list[float], tc: float, tb: float, uc: float, ub: float) -> Verdict:
        fc, fb = self.cdfs
        # The widest gap between the curves, and the α at which the bands would just separate there.
        gap, at = -math.inf, None
        for b in bounds:
            g = fb[b] - fc[b] - self.tolerance
            if g > gap:
                gap, at = g, b
        p_now = 1.0 if at is None else self._p_for_gap(gap, tc, tb)
        self.min_p = min(self.min_p, p_now)
        failed = self.min_p <= self.alpha
        if at is None:
            what = "no common bucket bounds yet"
        else:
            what = (
                f"within {at:g}s: canary {fc[at]:.1%} vs baseline {fb[at]:.1%} of requests "
                f"(bands ±{min(uc, 1):.1%} / ±{min(ub, 1):.1%})"
            )
        reason = (
            f"canary slower than baseline: {what}, p = {self.min_p:.2g} ≤ α {self.alpha:g}"
            if failed
            else f"no slowdown shown yet: {what}, p = {self.min_p:.2g} > α {self.alpha:g}"
        )
        estimate = None if at is None else fb[at] - fc[at]
        details = {"bound": at, "band_canary": _finite(uc), "band_baseline": _finite(ub)}
        return Verdict(
            "fail" if failed else "continue", self.min_p, self.alpha, estimate, None, tc, tb, reason, details
        )

    def _p_for_gap(self, gap: float, tc: float, tb: float) -> float:
        """The smallest α at which bands of ``tc`` and ``tb`` observations (α/2 each) leave ``gap`` between them."""
        if gap <= 0 or tc < 1 or tb < 1:
            return 1.0
        # band() falls as α rises: bisect on log α (α itself would underflow) for band_c + band_b = gap.
        lo, hi = LOG_ALPHA_FLOOR, 0.0
        if band(tc, math.exp(lo) / 2) + band(tb, math.exp(lo) / 2) < gap:
            return math.exp(lo)
        for _ in range(60):
            mid = (lo + hi) / 2
            if band(tc, math.exp(mid) / 2) + band(tb, math.exp(mid) / 2) < gap:
                hi = mid
            else:
                lo = mid
        return min(1.0, math.exp(hi))

    def _quantile(self, bounds: list[float], tc: float, tb: float, uc: float, ub: float) -> Verdict:
        q = self.quantile
        assert q is not None
        fc, fb = self.cdfs
        c_low, c_high = _bracket(bounds, fc, uc, q)
        b_low, b_high = _bracket(bounds, fb, ub, q)
        # The canary's quantile is above c_low, the baseline's at most b_high: slower when c_low ≥ b_high.
        p_now = self._quantile_p(bounds, tc, tb, q)
        self.min_p = min(self.min_p, p_now)
        failed = self.min_p <= self.alpha
        what = f"p{q * 100:g} canary in ({_s(c_low)}, {_s(c_high)}], baseline in ({_s(b_low)}, {_s(b_high)}]"
        reason = (
            f"canary slower than baseline: {what}, p = {self.min_p:.2g} ≤ α {self.alpha:g}"
            if failed
            else f"no slowdown shown yet: {what}, p = {self.min_p:.2g} > α {self.alpha:g}"
        )
        details = {
            "baseline_interval": [_finite(b_low), _finite(b_high)],
            "band_canary": _finite(uc),
            "method": "bands",
        }
        return Verdict(
            "fail" if failed else "continue",
            self.min_p,
            self.alpha,
            None,
            (c_low, c_high),
            tc,
            tb,
            reason,
            details,
        )

    def _quantile_p(self, bounds: list[float], tc: float, tb: float, q: float) -> float:
        """The smallest α at which some bound b has canary's F(b) surely < q ≤ baseline's F(b)."""
        fc, fb = self.cdfs
        best = 1.0
        for b in bounds:
            # Canary: F̂_c(b) + u_c < q;  baseline: F̂_b(b) − u_b ≥ q.  Both widths scale together with α.
            room_c, room_b = q - fc[b], fb[b] - q
            if room_c <= 0 or room_b < 0:
                continue
            best = min(best, self._p_for_rooms(room_c, room_b, tc, tb))
        return best

    def _p_for_rooms(self, room_c: float, room_b: float, tc: float, tb: float) -> float:
        lo, hi = LOG_ALPHA_FLOOR, 0.0
        if band(tc, 0.5) >= room_c or band(tb, 0.5) > room_b:
            return 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if band(tc, math.exp(mid) / 2) < room_c and band(tb, math.exp(mid) / 2) <= room_b:
                hi = mid
            else:
                lo = mid
        return math.exp(hi)


def _log_mean(streams: RatioEvidence) -> tuple[float, int]:
    """The log of the mean of the streams' mixture ratios (each anytime-valid), and the strongest stream."""
    log_m = streams.log_m()
    i = int(np.argmax(log_m))
    top = float(log_m[i])
    return top + math.log(float(np.sum(np.exp(log_m - top)))) - math.log(log_m.size), i


def mix_order(log_order: np.ndarray, log_exceedance: np.ndarray) -> np.ndarray:
    """The log of ``ORDER_SHARE·E_order + (1 − ORDER_SHARE)·E_exceedance`` (elementwise)."""
    out: np.ndarray = np.logaddexp(math.log(ORDER_SHARE) + log_order, math.log(1 - ORDER_SHARE) + log_exceedance)
    return out


def _bracket(bounds: list[float], cdf: dict[float, float], u: float, q: float) -> tuple[float, float]:
    """Bucket bounds (low, high] holding the quantile ``q`` at every time, given a band of ``u``."""
    low, high = 0.0, math.inf
    for b in bounds:
        if cdf[b] + u < q:
            low = b  # F(b) < q for sure: the quantile is above b
    for b in bounds:
        if cdf[b] - u >= q:
            high = b  # F(b) ≥ q for sure: the quantile is at most b
            break
    return low, high


def _exact(count: float) -> str:
    """``count`` in few digits when they say it exactly, else all of them (0.2 vs 0.19999999999999973)."""
    short = f"{count:g}"
    return short if float(short) == count else repr(count)


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes its ``le`` label."""
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def _bounds(bounds: list[float]) -> str:
    return "[" + ", ".join(_le(b) for b in bounds) + "]"


def _per_bucket(now: list[float], seen: list[float]) -> list[float]:
    """The requests in each bucket between two cumulative readings (``le`` counts, +Inf last)."""
    out, before = [], 0.0
    for n, s in zip(now, seen, strict=True):
        grown = n - s
        out.append(grown - before)
        before = grown
    return out


Rows = tuple[list[float], list[float]]


def _went_down(bounds: list[float], seen: Rows, now: Rows, per: Rows) -> str:
    """Why an update is refused whose fewest requests in a bucket (``per``, canary then baseline) went down."""
    flat = [*per[0], *per[1]]
    row, i = divmod(flat.index(min(flat)), len(bounds) + 1)
    name = ("canary_buckets", "baseline_buckets")[row]
    les = [*bounds, math.inf]
    if now[row][i] < seen[row][i]:
        was, count = apart(seen[row][i], now[row][i])
        return f"{name}[{_le(les[i])}] went down from {was} to {count}; buckets are cumulative over time"
    # Each le count grew, but the requests between two bounds shrank: one of the two is off.
    low = les[i - 1]
    old, new = apart(seen[row][i] - seen[row][i - 1], now[row][i] - now[row][i - 1])
    return (
        f"{name}: the requests between {_le(low)} and {_le(les[i])} went down from {old} to {new} "
        f"({name}[{_le(low)}] grew by more than {name}[{_le(les[i])}]); buckets are cumulative over time"
    )


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def _s(x: float) -> str:
    return "∞" if not math.isfinite(x) else f"{x:g}s"
