"""Whether events arrive more clumped than the rate test assumes, from the canary's share of them.

The rate test (``shiprail.judges.rates``) is valid when, given an update's ``k`` events, each is
the canary's independently with probability ``q = ρ·s / (ρ·s + 1 − s)`` (``s`` the canary's share
of requests). Errors that come in bursts — a retry storm, one client hammering a failing
endpoint — make the canary's count vary more than that binomial allows, and the test then counts
the bursts as evidence: its false-rollback bound no longer holds.

Pearson's statistic measures it: over the updates with at least two events,

    X² = Σ_t (e_c,t − k_t·q_t)² / (k_t·q_t·(1 − q_t)),

at the current estimate of ``ρ``. Each term has mean 1 under the test's model, so ``X² / n`` is
the dispersion (1: as assumed; 3: the split varies three times as much). A term's variance under
the model is ``2 − 6/k + 1/(k·q·(1 − q))`` (from the binomial's fourth central moment); with
``V`` their sum, ``z = (X² − n) / √V`` says how far beyond chance the excess is. It is reported with the verdict,
and its lower confidence bound ``(X² − DISCOUNT_Z·√V) / n`` discounts the rate test's next update
(``SplitDispersion.discount``; why that keeps the test valid: ``shiprail.judges.rates``).

bench/judges.py replays A/A runs of each errors scenario for the whole hour and counts the
verdicts that flag bursts (column *shiprail says: bursts* in docs/benchmarks.md): none of the
runs with independent errors, all of those whose errors come in bursts at a 1 % error rate
(dispersion about 3), where the test's false rollbacks rise to ~14 % with the discount (~25 %
without). A one-off replay of 200 of
the bench's runs each (not its default run) of independent-error traffic (10 %, 1 % and 50 %
canary shares, 0.1 % and 1 % error rates, ×2 and ×5 regressions, shared shocks) flagged at most
1 run after 10 minutes and none after 60.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Fewer updates with (two or more) events than this say too little about the spread of the split.
DISPERSION_MIN_UPDATES = 20
# The fewest events an update needs to count towards the spread (see SplitDispersion.add).
MIN_EVENTS = 2
# Flagged when the dispersion is above this and z above DISPERSION_Z.
DISPERSION_FLAG = 1.5
DISPERSION_Z = 4.0
# The rate test divides each update's evidence by the dispersion measured on the updates before
# it, once there are this many (with two or more events), and only by what lies DISCOUNT_Z
# standard deviations beyond chance: with independent events the divisor stays 1 almost always
# (bench/burst_guard.py: of its rows with independent errors one median moved, by one analysis
# of a minute), with bursts it follows the measured spread. In bench/judges.py's bursty A/A runs
# at a 1 % error rate (dispersion ~3) the false rollbacks fall from 24.9 % to 14.4 % (10 s
# updates, 2,000 runs; bench/burst_guard.py's column "no discount"). Waiting for 10 updates or
# z = 3 gave 18–19 % (one-off).
DISCOUNT_MIN_UPDATES = 3
DISCOUNT_Z = 2.0


@dataclass(frozen=True)
class Dispersion:
    """Pearson's dispersion of the canary's share of events over ``updates`` updates, and its z-score."""

    ratio: float
    z: float
    updates: int

    @property
    def flagged(self) -> bool:
        """Events clearly more clumped than independent ones: the rate test's bound is not to be trusted."""
        return self.ratio > DISPERSION_FLAG and self.z > DISPERSION_Z


class SplitDispersion:
    """Running sums over the updates with two or more events, from which the dispersion at any ratio follows.

    With ``q = ρs / (ρs + 1 − s)`` a term of ``X²`` expands to
    ``e²(1 − s)/(k·s·ρ) + 2e(e − k)/k + ρ·s(e − k)²/(k(1 − s))`` and ``1/(q(1 − q))`` to
    ``(1 − s)/(ρs) + 2 + ρs/(1 − s)``, so six sums give ``X²`` and ``V`` at any ``ρ``: an update
    costs the same however long the release has run (a controller that starts replays every
    stored increment; then it feeds one per analysis). The arithmetic is in ``split_terms``,
    ``split_statistic`` and ``split_discount``, which take arrays as well (bench/judges.py runs
    them over every simulated run at once).
    """

    def __init__(self) -> None:
        self.sums = np.zeros(SUMS)

    @property
    def updates(self) -> int:
        """The updates counted so far."""
        return int(self.sums[-1])

    def add(self, share: float, events: float, canary_events: float) -> None:
        """One update: the canary's share of its requests, its events, and the canary's part of them.

        Updates with fewer than two events are left out: one event is the canary's with probability
        ``q`` however clumped events are, so its term says nothing about the spread, and its skew
        (at ``q = 0.1``: 9 one time in ten, 0.11 otherwise) would make chance look like bursts.
        """
        if events < MIN_EVENTS or not 0 < share < 1:
            return
        self.sums += split_terms(share, events, canary_events)

    def measure(self, ratio: float) -> Dispersion | None:
        """The dispersion with the canary's rate ``ratio`` × the baseline's; None with too few updates."""
        n = self.updates
        if n < DISPERSION_MIN_UPDATES:
            return None
        x2, variance = self._statistic(ratio)
        return Dispersion(x2 / n, (x2 - n) / math.sqrt(variance), n)

    def discount(self, ratio: float) -> float:
        """The divisor of the next update's evidence (``split_discount``), from the updates so far."""
        n = float(self.sums[6])
        if n < DISCOUNT_MIN_UPDATES:
            return 1.0
        x2, variance = self._statistic(ratio)
        return max(1.0, (x2 - DISCOUNT_Z * math.sqrt(variance)) / max(n, 1.0))

    def _statistic(self, ratio: float) -> tuple[float, float]:
        """``split_statistic`` at one ratio, on Python floats: the same arithmetic, in the same order.

        numpy's per-call cost on seven scalars was a tenth of an update; bench/judges.py runs
        ``split_statistic`` itself over every simulated run, and replays check the two agree.
        """
        s0, s1, s2, s3, s4, s5, n = self.sums.tolist()
        x2 = s0 / ratio + s1 + s2 * ratio
        return x2, max(2 * n - 4 * s3 + s4 / ratio + s5 * ratio, 1e-12)


# SplitDispersion's sums: the parts of X² with 1/ρ, 1 and ρ; Σ 1/k, Σ (1 − s)/(k·s), Σ s/(k·(1 − s));
# and the count of updates.
SUMS = 7
Values = float | npt.NDArray[np.float64]


def split_terms(s: Values, k: Values, e: Values) -> npt.NDArray[np.float64]:
    """One update's contribution to each of the ``SUMS`` sums (share ``s``, ``k`` events, ``e`` the canary's)."""
    terms = (
        e * e * (1 - s) / (k * s),
        2 * e * (e - k) / k,
        s * (e - k) ** 2 / (k * (1 - s)),
        1 / k,
        (1 - s) / (k * s),
        s / (k * (1 - s)),
        k / k,  # 1 per update (k ≥ MIN_EVENTS), shaped like the others
    )
    return np.array(terms, dtype=float)


def split_statistic(
    sums: npt.NDArray[np.float64], ratio: Values
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(X², V)`` at the canary's rate ``ratio`` × the baseline's: Pearson's sum, its variance under the model."""
    n = sums[6]
    x2 = sums[0] / ratio + sums[1] + sums[2] * ratio
    # Σ [2 − 6/k + 1/(k·q(1 − q))], with 1/(q(1 − q)) = (1 − s)/(ρs) + 2 + ρs/(1 − s):
    # 2n − 6 Σ 1/k + (Σ (1 − s)/(k·s) / ρ + 2 Σ 1/k + ρ Σ s/(k·(1 − s))).
    variance = np.fmax(2 * n - 4 * sums[3] + sums[4] / ratio + sums[5] * ratio, 1e-12)
    return np.asarray(x2), np.asarray(variance)


def split_discount(sums: npt.NDArray[np.float64], ratio: Values) -> npt.NDArray[np.float64]:
    """The divisor of the next update's evidence: the dispersion at ``ratio`` beyond chance, at least 1.

    ``(X² − DISCOUNT_Z·√V) / n``, a lower confidence bound on the dispersion, from the updates
    so far (so it is fixed before the next one: see ``shiprail.judges.rates``); 1 before
    ``DISCOUNT_MIN_UPDATES`` updates with two or more events, or when the spread is within chance.
    """
    n = sums[6]
    x2, variance = split_statistic(sums, ratio)
    lower = (x2 - DISCOUNT_Z * np.sqrt(variance)) / np.fmax(n, 1.0)
    out: npt.NDArray[np.float64] = np.where(n < DISCOUNT_MIN_UPDATES, 1.0, np.fmax(1.0, lower))
    return out
