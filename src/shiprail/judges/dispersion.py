"""Whether events arrive more clumped than the rate test assumes, from the canary's share of them.

The rate test (``shiprail.judges.rates``) is valid when, given an update's ``k`` events, each is
the canary's independently with probability ``q = ρ·s / (ρ·s + 1 − s)`` (``s`` the canary's share
of requests). Errors that come in bursts — a retry storm, one client hammering a failing
endpoint — make the canary's count vary more than that binomial allows, and the test then counts
the bursts as evidence: its false-rollback bound no longer holds.

Pearson's statistic measures it: over the updates with events,

    X² = Σ_t (e_c,t − k_t·q_t)² / (k_t·q_t·(1 − q_t)),

at the current estimate of ``ρ``. Each term has mean 1 under the test's model, so ``X² / n`` is
the dispersion (1: as assumed; 3: the split varies three times as much). A term's variance under
the model is ``2·(1 − 1/k) + (1 − 6·q·(1 − q)) / (k·q·(1 − q))``; with ``V`` their sum,
``z = (X² − n) / √V`` says how far beyond chance the excess is. This is a diagnostic, reported
with the verdict; it does not change the test.

bench/judges.py replays A/A runs of each errors scenario for the whole hour and counts the
verdicts that flag bursts (column *shiprail says: bursts* in docs/benchmarks.md): none of the
runs with independent errors, all of those whose errors come in bursts at a 1 % error rate
(dispersion about 3), where the test's false rollbacks rise to ~25 %. Replaying 200 runs each of
the independent-error scenarios (10 %, 1 % and 50 % canary shares, 0.1 % and 1 % error rates,
×2 and ×5 regressions, shared shocks) flagged at most 1 run after 10 minutes and none after 60.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Fewer updates with events than this say too little about the spread of the split.
DISPERSION_MIN_UPDATES = 20
# Flagged when the dispersion is above this and z above DISPERSION_Z.
DISPERSION_FLAG = 1.5
DISPERSION_Z = 4.0


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
    """The updates with events (share of requests, events, canary's events), kept to measure the dispersion."""

    def __init__(self) -> None:
        self._rows = np.zeros((3, 64))
        self.updates = 0

    def add(self, share: float, events: float, canary_events: float) -> None:
        """One update: the canary's share of its requests, its events, and the canary's part of them."""
        if events <= 0 or not 0 < share < 1:
            return
        if self.updates == self._rows.shape[1]:
            self._rows = np.concatenate([self._rows, np.zeros_like(self._rows)], axis=1)
        self._rows[:, self.updates] = (share, events, canary_events)
        self.updates += 1

    def measure(self, ratio: float) -> Dispersion | None:
        """The dispersion with the canary's rate ``ratio`` × the baseline's; None with too few updates."""
        if self.updates < DISPERSION_MIN_UPDATES:
            return None
        s, k, e = self._rows[:, : self.updates]
        q = ratio * s / (ratio * s + 1 - s)
        pq = np.maximum(q * (1 - q), 1e-12)
        x2 = float(np.sum((e - k * q) ** 2 / (k * pq)))
        variance = float(np.sum(2 * (1 - 1 / k) + (1 - 6 * pq) / (k * pq)))
        n = self.updates
        return Dispersion(x2 / n, (x2 - n) / math.sqrt(max(variance, 1e-12)), n)
