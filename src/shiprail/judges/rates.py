"""An anytime-valid, one-sided test that the canary's event rate is no worse than the baseline's.

The statistic (Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data", 2022, made
one-sided, with the request share observed per update). Between two updates the canary served
``n_c`` requests and had ``e_c`` events (errors), the baseline ``n_b`` and ``e_b``. If events arrive
as Poisson processes with rates ``λ_c`` and ``λ_b`` per request, then given the ``k = e_c + e_b``
events of the update, each one came from the canary with probability

    q(ρ) = ρ·s / (ρ·s + 1 − s),   s = n_c / (n_c + n_b),   ρ = λ_c / λ_b,

whatever the common level of the rates — so a shock that raises both versions' errors alike
cancels out. The likelihood ratio of ``ρ`` against ``ρ₀`` multiplies over updates:

    L_t(ρ) = Π_updates (q(ρ)/q(ρ₀))^{e_c} · ((1 − q(ρ))/(1 − q(ρ₀)))^{e_b}.

Each factor has expectation 1 under ``ρ₀`` and at most 1 under any ``ρ ≤ ρ₀`` when ``ρ > ρ₀`` (the
binomial family has monotone likelihood ratio), so ``L_t(ρ)`` is a non-negative supermartingale
under the null "ρ ≤ ρ₀", and so is any mixture ``M_t = Σ_j w_j L_t(ρ_j)`` over alternatives
``ρ_j > ρ₀`` with fixed weights. Ville's inequality then gives ``P(∃t: M_t ≥ 1/α) ≤ α``: the test
may be looked at after every update, forever, and rejects wrongly with probability at most α.
The weights are a half-normal prior on ``log ρ − log ρ₀`` over a grid of ratios. The p-value is
``min(1, 1 / max_{s≤t} M_s)``. The confidence sequence for ρ inverts the same construction two-sided:
``{ρ_k : Σ_j w_j L_t(ρ_j)/L_t(ρ_k) < 1/α}``, intersected over time.

Errors are Bernoulli per request, not Poisson. With ``a = q(ρ_j)/q(ρ₀) > 1`` and
``b = (1 − q(ρ_j))/(1 − q(ρ₀)) < 1`` a factor's mean given the requests is
``(1 − p_c + p_c·a)^{n_c} (1 − p_b + p_b·b)^{n_b} ≤ exp(p_b·(ρ₀·n_c·(a − 1) + n_b·(b − 1))) = 1``
when ``p_c ≤ ρ₀·p_b`` (``1 + x ≤ eˣ``; the bracket is identically 0), so the test stays valid for
any ``ρ₀`` and any rates (it is slightly conservative when error rates are high). Conditioning on
``k`` gives the hypergeometric, less spread than the binomial, only at ``ρ₀ = 1``; for ``ρ₀ > 1``
the conditional law is Fisher's noncentral hypergeometric, and the bound holds only on average
over ``k``.

Bursts. The bound assumes events independent given the requests. Errors that come in bursts (a
retry storm, one client hammering a failing endpoint) make the canary's share of an update's
events vary more than the binomial allows, and the product above counts that spread as evidence.
Two things temper it:

- Every update's log-likelihoods are divided by a *discount* ``φ ≥ 1``: the dispersion of the
  canary's share over the updates before it (``shiprail.judges.dispersion``, Pearson's statistic
  at the likeliest ratio at or above ``ρ₀`` so far), taken only beyond chance. Because ``φ`` is
  fixed before the update and ``x ↦ x^{1/φ}`` is concave, Jensen's inequality gives
  ``E[L^{1/φ}] ≤ E[L]^{1/φ} ≤ 1``: with independent events the test stays valid, whatever the
  discount. With bursts, ``L^{1/φ}`` is the quasi-likelihood ratio, whose spread is about that of
  independent events again: an approximation that makes false rollbacks rarer, not a guarantee.
- ``bursts="tolerate"`` also caps each update's log-evidence for every alternative at
  ``BURST_CAP``: ``min(L_update(ρ_j)^{1/φ}/L_update(ρ₀)^{1/φ}, e^cap)`` has a mean at most 1
  wherever the uncapped ratio's is, so the test stays valid with independent events; and no burst
  in the first updates, before the dispersion can be measured, can roll back on its own. It costs
  time on independent events (each update's evidence is bounded), so it is not the default.

Neither makes the test valid under bursts; both are measured in bench/judges.py
(docs/benchmarks.md; bursty errors: each second's error rate × a Gamma draw of mean 1) and in
``tests/unit/judges/test_dispersion.py`` (harsher bursts, where ``tolerate`` stays above α).
Most false rollbacks under bursts come at the first updates, before the dispersion is known;
bench/burst_guard.py measures what guarding them would buy and cost: a burn-in cap on large
updates helps only with bursts much shorter than an update, and no per-update cap helps with
bursts as long as an update or longer (docs/judges.md, "Bursts of errors").
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from shiprail.judges.base import (
    JudgeInputError,
    Verdict,
    check_alpha,
    check_min_ratio,
    increment,
    is_number,
    p_value_of,
)
from shiprail.judges.dispersion import SplitDispersion

# The grid of log rate ratios the mixture and the confidence sequence range over: ratios from
# 1/20 to 20 in steps of 2.5 % — wide enough for any regression worth a rollback, fine enough that
# the interval's rounding to the grid is below what the data can tell apart anyway.
LOG_RATIO_MAX = math.log(20.0)
GRID_POINTS = 241
# The prior on log ρ: an equal mixture of half-normals above ρ₀ (scales in log ratio) for the test,
# a normal around 1 for the interval. Scale 1 weighs regressions ×1.2 … ×3, scale 2 reaches ×10:
# on bench/judges.py's runs (a one-off comparison, not in its tables) the mixture kept ×2 as fast
# as scale 1 alone and detected ×5 at a trickle of traffic ~10 % sooner; a mixture of
# e-processes is one, at the price of at most log 2 of evidence.
PRIOR_SCALES = (1.0, 2.0)
PRIOR_SCALE = 1.5  # the interval's prior
# The interval's prior scales a caller may choose: below a few grid steps the prior is a spike on
# ρ = 1; above the grid's half-width it is flat.
PRIOR_SCALE_RANGE = (0.1, 10.0)
# With ``bursts="tolerate"``: the most log-evidence one update may add against ρ₀ (×3.5). At
# α = 0.05 (log 20 ≈ 3.0) no fewer than three updates must agree, so a single burst cannot roll a
# release back. Chosen in a one-off sweep on bench/judges.py's bursty A/A runs (1 % errors,
# dispersion ~3, 2,000 runs of another seed): caps 1.0 / 1.25 / 1.5 rolled back 2.1 / 4.0 /
# 5.1 %; its default run gives 3.0 % for 1.25. On independent errors it costs time: errors ×2
# at 1000/s, 10 % share, 0.1 %: 1.8 → 2.5 min.
BURST_CAP = 1.25

Bursts = Literal["independent", "tolerate"]


def _logsumexp1(x: np.ndarray) -> float:
    """``log Σ exp(x)`` of a vector, as a float: ``_logsumexp`` in fewer numpy calls (each costs ~1–2 µs)."""
    top = float(x.max())
    return top + math.log(float(np.exp(x - top).sum()))


def _logsumexp(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    # The arrays' own methods: numpy's function wrappers (np.max, np.sum) cost ~1 µs a call here.
    top = x.max(axis=axis, keepdims=True)
    out = top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))
    result: np.ndarray = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return result


class RatioEvidence:
    """The mixture likelihood ratios of ``streams`` event counts that share one stream of requests.

    One row per event stream (errors; or, for latency, requests slower than each bucket bound),
    all split between the same canary and baseline requests, so each update is a few array
    operations whatever the number of streams. ``log_m`` is each stream's log mixture ratio
    against ``ρ₀``; ``ell`` its log-likelihood over the grid (for the confidence sequence).
    """

    def __init__(
        self,
        streams: int,
        *,
        min_ratio: float = 1.0,
        prior_scales: tuple[float, ...] = PRIOR_SCALES,
        points: int = GRID_POINTS,
        cap: float | None = None,
    ) -> None:
        """``points``: the grid's size (fewer is coarser and faster; the confidence sequence needs the default).

        ``cap``: the most log-evidence against ``ρ₀`` each alternative may gain in one update (None: no cap).
        """
        min_ratio = check_min_ratio(min_ratio)
        self.x = np.linspace(-LOG_RATIO_MAX, LOG_RATIO_MAX, points)
        self.ratio = np.exp(self.x)
        self.x0 = math.log(min_ratio)
        self.rho0 = float(min_ratio)
        self.top = float(self.ratio[-1])
        above = self.x > self.x0
        w = np.zeros_like(self.x)
        for scale in prior_scales:
            part = np.where(above, np.exp(-((self.x - self.x0) ** 2) / (2 * scale**2)), 0.0)
            w += part / part.sum() / len(prior_scales)
        with np.errstate(divide="ignore"):
            self.log_w = np.log(w)
        # The grid points above ρ₀, a contiguous run at the grid's top (the grid rises).
        self.above = slice(int(np.argmax(above)), points)
        self.ell = np.zeros((streams, points))
        self.ell0 = np.zeros(streams)
        self.informative = np.zeros(streams, dtype=bool)
        self.cap = cap
        # With a cap: Σ over updates of min(that update's log ratio of ρ_j to ρ₀, cap), per stream and ρ_j.
        self.gain = np.zeros((streams, points))

    def add(
        self,
        canary_requests: float,
        baseline_requests: float,
        canary: np.ndarray,
        baseline: np.ndarray,
        discount: float = 1.0,
    ) -> None:
        """One update's increments: requests per version, and each stream's events per version.

        ``discount`` (at least 1, fixed before the update): the update's log-likelihoods are divided by it.
        """
        if canary_requests <= 0 or baseline_requests <= 0:
            return  # events where one version served nothing say nothing about the ratio
        k = canary + baseline
        has_events = k > 0
        if not has_events.any():
            return
        s = canary_requests / (canary_requests + baseline_requests)
        # log q(ρ) = x + log s − log(ρs + 1 − s); the terms without ρ cancel in every ratio.
        log_norm = np.log(self.ratio * s + (1 - s))
        step = canary[:, None] * self.x - k[:, None] * log_norm
        step0 = canary * self.x0 - k * math.log(self.rho0 * s + (1 - s))
        if discount != 1.0:
            step, step0 = step / discount, step0 / discount
        self.ell += step
        self.ell0 += step0
        if self.cap is not None:
            self.gain += np.minimum(step - step0[:, None], self.cap)
        self.informative |= has_events

    def add_one(
        self, canary_requests: float, baseline_requests: float, canary: float, baseline: float, discount: float = 1.0
    ) -> None:
        """``add`` for one stream of events, on floats: the rate test's update, in half the numpy calls."""
        k = canary + baseline
        if canary_requests <= 0 or baseline_requests <= 0 or k <= 0:
            return
        s = canary_requests / (canary_requests + baseline_requests)
        log_norm = np.log(self.ratio * s + (1 - s))
        step = canary * self.x - k * log_norm
        step0 = canary * self.x0 - k * math.log(self.rho0 * s + (1 - s))
        if discount != 1.0:
            step, step0 = step / discount, step0 / discount
        self.ell[0] += step
        self.ell0[0] += step0
        if self.cap is not None:
            self.gain[0] += np.minimum(step - step0, self.cap)
        self.informative[0] = True

    def log_m1(self) -> float:
        """``log_m`` of stream 0, as a float."""
        if self.cap is not None:
            return _logsumexp1(self.log_w + self.gain[0])
        return _logsumexp1(self.log_w + self.ell[0]) - float(self.ell0[0])

    def log_m(self) -> np.ndarray:
        """Each stream's log mixture likelihood ratio against ``ρ₀`` (0 before any event)."""
        if self.cap is not None:
            return _logsumexp(self.log_w[None, :] + self.gain, axis=1)
        return _logsumexp(self.log_w[None, :] + self.ell, axis=1) - self.ell0

    def centre(self) -> float:
        """Stream 0's likeliest ratio at or above ``ρ₀``: the likeliest grid point above ``ρ₀``, or ``ρ₀``."""
        ell = self.ell[0][self.above]
        j = int(np.argmax(ell))
        return float(self.ratio[self.above][j]) if ell[j] > self.ell0[0] else self.rho0


class RateRegressionTest:
    """Sequential test of "canary rate ≤ min_ratio × baseline rate", fed cumulative counts.

    ``update`` takes the counts so far (requests and events per version, as counters report
    them); it works on the increments, so the request share may change between updates (every
    rollout step changes it). Deterministic and pure: the same updates give the same verdicts.
    """

    def __init__(
        self,
        alpha: float = 0.01,
        *,
        min_ratio: float = 1.0,
        prior_scale: float = PRIOR_SCALE,
        bursts: Bursts = "independent",
    ) -> None:
        """``prior_scale`` is the confidence sequence's prior on log ρ (the test uses ``PRIOR_SCALES``).

        ``bursts``: ``independent`` (the default) for the fastest test when events are independent;
        ``tolerate`` caps each update's evidence at ``BURST_CAP``, so that bursts of errors do not
        roll a healthy canary back (see the module's text).
        """
        if bursts not in ("independent", "tolerate"):
            raise JudgeInputError(f"bursts must be independent or tolerate, got {bursts!r}")
        low, high = PRIOR_SCALE_RANGE
        if not is_number(prior_scale) or not low <= prior_scale <= high:
            raise JudgeInputError(
                f"prior_scale must be between {low:g} and {high:g} (a scale of log ratios), got {prior_scale!r}"
            )
        self.alpha = check_alpha(alpha)
        self.min_ratio = check_min_ratio(min_ratio)
        self.bursts: Bursts = bursts
        self.evidence = RatioEvidence(1, min_ratio=min_ratio, cap=BURST_CAP if bursts == "tolerate" else None)
        self.discount = 1.0  # the divisor of the latest update's evidence
        log_w_cs = -(self.evidence.x**2) / (2 * prior_scale**2)  # in logs: no weight underflows to 0
        self.log_w_cs = log_w_cs - _logsumexp1(log_w_cs)
        self.threshold = -math.log(self.alpha)  # not log(1/α): 1/α overflows below α ≈ 5.6e-309
        self.counts = (0.0, 0.0, 0.0, 0.0)
        self.max_log_m = 0.0
        self.lo, self.hi = 0, GRID_POINTS - 1  # the running confidence sequence, as grid indices
        self.split = SplitDispersion()

    def update(
        self, *, canary_requests: float, canary_events: float, baseline_requests: float, baseline_events: float
    ) -> Verdict:
        """Take the cumulative counts so far; return the verdict after them."""
        before = self.counts
        d_nc = increment("canary_requests", canary_requests, before[0])
        d_ec = increment("canary_events", canary_events, before[1])
        d_nb = increment("baseline_requests", baseline_requests, before[2])
        d_eb = increment("baseline_events", baseline_events, before[3])
        self.counts = (float(canary_requests), float(canary_events), float(baseline_requests), float(baseline_events))
        # The discount is measured on the updates before this one (at the likeliest ratio at or
        # above ρ₀ so far), so it is fixed before this update's counts: predictable, as validity needs.
        centre = self.evidence.centre()
        # A likelihood still rising at the grid's top: the ratio lies beyond it, and the spread of
        # the split around ×20 is the regression itself, not bursts; no discount (still predictable).
        discount = 1.0 if centre >= self.evidence.top else self.split.discount(centre)
        self.evidence.add_one(d_nc, d_nb, d_ec, d_eb, discount)
        # What the verdict reports: 1 when this update had no evidence to divide.
        self.discount = discount if d_nc > 0 and d_nb > 0 and d_ec + d_eb > 0 else 1.0
        if d_nc > 0 and d_nb > 0:
            self.split.add(d_nc / (d_nc + d_nb), d_ec + d_eb, d_ec)
        return self.verdict()

    def verdict(self) -> Verdict:
        """The verdict on the counts taken so far."""
        log_m = self.evidence.log_m1() if self.evidence.informative[0] else 0.0
        self.max_log_m = max(self.max_log_m, log_m)
        p_value = p_value_of(self.max_log_m)
        failed = self.max_log_m >= self.threshold
        nc, ec, nb, eb = self.counts
        interval, estimate = self._interval()
        if interval is not None and self.bursts == "tolerate" and not failed:
            # The interval comes from the uncapped evidence; while the capped test has not failed it
            # is widened down to ρ₀ (a wider set is as valid), so that it never claims the regression
            # the test does not.
            interval = (min(interval[0], self.min_ratio), interval[1])
        rate_c = ec / nc if nc else None
        rate_b = eb / nb if nb else None
        what = f"canary {_rate(rate_c)} vs baseline {_rate(rate_b)}"
        if interval is not None and estimate is not None:
            high = "∞" if math.isinf(interval[1]) else f"{interval[1]:.3g}"
            what += f", ratio {estimate:.3g} (CS {interval[0]:.3g}–{high})"
        if failed:
            reason = f"canary worse than baseline: {what}, p = {p_value:.2g} ≤ α {self.alpha:g}"
        else:
            reason = f"no regression shown yet: {what}, p = {p_value:.2g} > α {self.alpha:g}"
        spread = None if estimate is None else self.split.measure(estimate)
        if self.discount > 1:
            reason += f"; the latest evidence divided by the measured dispersion {self.discount:.2g}"
        if spread is not None and spread.flagged and self.bursts == "independent":
            reason += (
                f"; beware: events arrive in bursts (dispersion {spread.ratio:.1f} over {spread.updates} updates), "
                "and this test's false-rollback bound assumes independent events: set the trigger's "
                "regression `bursts: tolerate`"
            )
        return Verdict(
            "fail" if failed else "continue",
            p_value,
            self.alpha,
            estimate,
            interval,
            nc,
            nb,
            reason,
            {
                "log_e_value": round(log_m, 6),
                "canary_events": ec,
                "baseline_events": eb,
                "dispersion": None if spread is None else round(spread.ratio, 3),
                "discount": round(self.discount, 6),
                "bursts": self.bursts,
            },
        )

    def _interval(self) -> tuple[tuple[float, float] | None, float | None]:
        ev = self.evidence
        if not ev.informative[0]:
            return None, None
        ell = ev.ell[0]
        # ρ_k stays in while Σ_j w_j L(ρ_j) / L(ρ_k) < 1/α; ell is concave in log ρ, so the set is an interval.
        inside = np.nonzero(ell > _logsumexp1(self.log_w_cs + ell) - self.threshold)[0]
        estimate = float(ev.ratio[int(ell.argmax())])
        if inside.size:
            # Widened by one grid step each way: ρ between two grid points may belong to the set even
            # when neither neighbour does. Intersected over time: a confidence sequence may only shrink.
            first, last = max(0, int(inside[0]) - 1), min(GRID_POINTS - 1, int(inside[-1]) + 1)
            if max(self.lo, first) <= min(self.hi, last):
                self.lo, self.hi = max(self.lo, first), min(self.hi, last)
            else:
                # The rare (≤ α) miss where the running intersection would be empty: keep this look's set.
                self.lo, self.hi = first, last
        low = 0.0 if self.lo == 0 else float(ev.ratio[self.lo])
        high = math.inf if self.hi == GRID_POINTS - 1 else float(ev.ratio[self.hi])
        return (low, high), estimate


def _rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.3%}"
