"""Evidence that the canary's latencies are stochastically larger than the baseline's, bucket by bucket.

Between two updates the canary served ``n_c`` requests, ``x_k`` of them in histogram bucket ``k``
(bucket 0 the fastest, the last one +Inf), the baseline ``n_b`` requests, ``y_k`` in bucket ``k``.
Within an update each version's requests are independent draws from its latency distribution,
a multinomial over the buckets: ``π_c`` for the canary, ``π_b`` for the baseline. The null
hypothesis is first-order stochastic order on the buckets, "the canary is no slower": at every
bucket bound the canary has at most the baseline's share of requests above it.

The e-value of one update, for an alternative ``p_c = p_b · r`` (a distribution for each version)
chosen *before* the update, with ``w = n_c / (n_c + n_b)`` and ``q = w·p_c + (1 − w)·p_b``:

    e = Π_k (p_c,k / q_k)^{x_k} · (p_b,k / q_k)^{y_k}
      = Π_k r_k^{x_k} / (w·r_k + 1 − w)^{x_k + y_k}.

Its mean given the past and ``(n_c, n_b)`` is at most 1 whenever the canary is no slower,
provided ``r`` is positive and non-decreasing (the alternative has monotone likelihood ratio:
the slower the bucket, the more the canary is over-represented). Proof: the mean is
``A^{n_c} · B^{n_b}`` with ``A = Σ_k π_c,k·a_k``, ``B = Σ_k π_b,k·b_k``, ``a = r / (w·r + 1 − w)``
non-decreasing and ``b = 1 / (w·r + 1 − w)`` non-increasing in ``k``. A stochastically larger
``π_b`` gives the non-increasing ``b`` a smaller mean, so ``B ≤ B' = Σ_k π_c,k·b_k``; and
``w·A + (1 − w)·B' = Σ_k π_c,k = 1``, so by the weighted AM–GM inequality
``A^{n_c}·B'^{n_b} = (A^w·B'^{1−w})^{n_c + n_b} ≤ (w·A + (1 − w)·B')^{n_c + n_b} = 1``. (Neither the
normalisation of ``r`` nor its rounding matters for validity; only its order does, and the fit
below is monotone by construction.) This is the two-sample e-value of Turner, Ly & Grünwald
("Generic E-variables for exact sequential k-sample tests that allow for optional stopping",
2024), restricted to ordered alternatives so that it tests stochastic order rather than
equality: a canary that is faster gives no evidence.

The product of the updates' e-values is then a non-negative supermartingale under the null (and
so is a mean of such products, which ``shiprail.judges.latency`` takes): Ville's inequality makes
``P(∃t: E_t ≥ 1/α) ≤ α`` however often one looks. A shock that moves both versions alike within an
update leaves the null true and costs nothing; nothing is assumed about the shape of the
distribution, and nothing about values inside a bucket.

The alternative is a *plug-in* (predictable): from the counts before the update, the baseline's
bucket shares ``p_b`` (with ``BASELINE_PSEUDO_COUNT`` per bucket, so that an empty bucket is not
impossible), the canary's ``p_c`` (with ``CANARY_PSEUDO_COUNT`` in the buckets above the baseline's
median), and the canary's likelihood ratio to the baseline fitted under the order constraint —
the weighted isotonic regression of ``p_c,k / p_b,k`` with weights ``p_b,k``, which is the maximum-likelihood
non-decreasing ratio and keeps ``Σ p_b·r = 1`` (Robertson, Wright & Dykstra, *Order Restricted
Statistical Inference*, 1988, §1.5) — pulled towards ``r = 1`` (no difference, ``e = 1``) while the
canary has few requests: ``r ← 1 + λ·(r̂ − 1)``, ``λ = N_c / (N_c + s)``. A wrong plug-in only
costs power, never validity.
"""

from __future__ import annotations

import math

import numpy as np

# The shrinkage strength s: the canary requests at which the plug-in trusts the canary's own
# shape half-way. In a one-off sweep on bench/judges.py's simulated traffic (not its default run),
# s = 50, 100 and 200 and the mean of two e-processes (s = 30
# and 300) were tried at 10 requests a second: 100 was within 10 % of the fastest of them on both a
# +10 % shift and a slow tail of 2 % of requests, and the two-strength mean behind it on both.
SHRINK = 100.0
# Pseudo-requests per bucket in the baseline's estimated shares: the slowest buckets are usually
# empty, and a ratio against an empty bucket would be infinite. Small, so that a canary's requests
# in a bucket the baseline never reaches count as strongly as they should.
BASELINE_PSEUDO_COUNT = 0.05
# Pseudo-requests per bucket in the canary's estimated shares, in the buckets above the baseline's
# median only: the guess, before the canary has shown anything, that a regression would show as
# requests in slow buckets where the baseline has few. Without it the plug-in learns from a
# canary's first request in an empty slow bucket and only bets on the second; with it the first
# one counts too. In the same one-off sweep (10 requests a second) it found a slow tail of 2 % of
# requests 34 % sooner (6.5 → 4.3 min) and a +10 % shift 8 % later (5.3 → 5.7 min); in the
# baseline's faster half it only cost, as it made the fit pool the fastest buckets.
# A later sweep (bench/judges.py --full, latency scenarios, seeds 5–7) looked for a stronger prior
# with slower shrinkage (pseudo-counts 1–3, s = 150–300): at 10 requests a second the slow tail
# came 15 % sooner (4.7 → 4.0 min, the median canary's second request above 500 ms comes at
# 4.3), but +10 % came 18 % later (5.5 → 6.5 min), +10 % at 100/s with a 1 % canary 5.5 → 8.5 min,
# and at 10/s with a 1 % canary it was no longer found within the hour. Kept as it is.
# bench/tail_frontier.py keeps the comparison with other plug-ins (stronger priors, a prior on the
# slowest buckets, a big bet above the baseline's slowest request, two plug-ins' leader or mean,
# a fit on the tail alone) reproducible: none finds the tail sooner without losing the shifts.
CANARY_PSEUDO_COUNT = 0.2
# Up to this many rows, isotonic() loops over rows; above, it works on all rows at once.
FEW_ROWS = 4


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted non-decreasing least-squares fit of each row of ``values`` (rows × buckets).

    Weights must be positive. Hand-written, not scipy's ``isotonic_regression``: scipy would be a
    large dependency for one 1-D function, and the benchmark fits hundreds of runs per update,
    which the max–min formula does in a few array operations. A live test fits one row, where
    the pool-adjacent-violators loop is ~5× faster than those array operations.
    """
    if values.shape[0] <= FEW_ROWS:
        return np.array(
            [_pool_adjacent_violators(v, w) for v, w in zip(values.tolist(), weights.tolist(), strict=True)]
        )
    return _max_min(values, weights)


def _pool_adjacent_violators(values: list[float], weights: list[float]) -> list[float]:
    blocks: list[tuple[float, float, int]] = []  # (weighted mean, weight, buckets)
    for value, weight in zip(values, weights, strict=True):
        mean, total, size = value, weight, 1
        while blocks and blocks[-1][0] > mean:
            m, w, n = blocks.pop()
            mean, total, size = (mean * total + m * w) / (total + w), total + w, size + n
        blocks.append((mean, total, size))
    return [mean for mean, _, size in blocks for _ in range(size)]


def _max_min(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``fit_k = max_{i ≤ k} min_{j ≥ k} mean_w(values[i..j])`` over every row at once."""
    rows, k = values.shape
    zero = np.zeros((rows, 1))
    cw = np.concatenate([zero, np.cumsum(weights, axis=1)], axis=1)
    cv = np.concatenate([zero, np.cumsum(weights * values, axis=1)], axis=1)
    # mean[r, i, j]: the weighted mean of values[r, i..j] (only i ≤ j is used).
    mean = (cv[:, None, 1:] - cv[:, :-1, None]) / np.maximum(cw[:, None, 1:] - cw[:, :-1, None], 1e-300)
    i, j = np.indices((k, k))
    mean = np.where(j >= i, mean, np.inf)
    # low[r, i, m] = min over j ≥ m of mean[r, i, j]; kept only where i ≤ m.
    low = np.minimum.accumulate(mean[:, :, ::-1], axis=2)[:, :, ::-1]
    low = np.where(i <= j, low, -np.inf)
    fit: np.ndarray = low.max(axis=1)
    return fit


def log_e_values(canary: np.ndarray, baseline: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Each row's log e-value of one update (rows × buckets of requests) for the ratios ``r`` (rows × buckets)."""
    nc, nb = canary.sum(axis=1), baseline.sum(axis=1)
    total = nc + nb
    # Exactly n_c / (n_c + n_b), fractional counts below 1 included: validity rests on it.
    if total.all():
        w = (nc / total)[:, None]
    else:
        w = np.divide(nc, total, out=np.zeros_like(total), where=total > 0)[:, None]
    # An update where one version served nothing has w = 0 or 1 and an e-value of exactly 1.
    out: np.ndarray = (canary * np.log(r)).sum(axis=1) - ((canary + baseline) * np.log(w * r + 1.0 - w)).sum(axis=1)
    return out


def _log_e_one(canary: list[float], baseline: list[float], r: list[float]) -> float:
    """``log_e_values`` of one row, on Python floats."""
    nc, nb = sum(canary), sum(baseline)
    total = nc + nb
    if total == 0:
        return 0.0
    w = nc / total
    pairs = zip(canary, baseline, r, strict=True)
    return sum(c * math.log(x) - (c + b) * math.log(w * x + 1.0 - w) for c, b, x in pairs)


class OrderedEvidence:
    """The plug-in e-processes of ``rows`` independent canary/baseline pairs of bucket counts.

    One row per pair: one for a live test; the benchmark runs its simulated runs as rows.
    """

    def __init__(
        self,
        rows: int,
        buckets: int,
        *,
        canary_pseudo_count: float = CANARY_PSEUDO_COUNT,
        shrink: float = SHRINK,
        prior_above: float = 0.5,
    ) -> None:
        """``canary_pseudo_count`` per bucket starting above the baseline's ``prior_above`` quantile, ``shrink`` s.

        The defaults are the test's; bench/tail_frontier.py tries others.
        """
        self.canary = np.zeros((rows, buckets))
        self.baseline = np.zeros((rows, buckets))
        self.log_sum = np.zeros(rows)
        self.canary_pseudo_count = canary_pseudo_count
        self.shrink = shrink
        self.prior_above = prior_above

    def shares(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row, from the counts so far: the canary's requests, the baseline's and the canary's bucket shares.

        Both shares with their pseudo-requests (the canary's: its prior on where a regression shows).
        """
        # The arrays' own methods throughout: numpy's function wrappers cost ~1 µs a call, as much
        # as the arithmetic on one row of 15 buckets (a live test updates one row at a time).
        nc = self.canary.sum(axis=1)
        nb = self.baseline.sum(axis=1)
        k = self.canary.shape[1]
        p_b = (self.baseline + BASELINE_PSEUDO_COUNT) / (nb + BASELINE_PSEUDO_COUNT * k)[:, None]
        slow = p_b.cumsum(axis=1) - p_b >= self.prior_above  # buckets starting above the baseline's median
        prior = self.canary_pseudo_count * slow
        p_c = (self.canary + prior) / np.maximum(nc + prior.sum(axis=1), 1e-300)[:, None]
        return nc, p_b, p_c

    def ratios(self) -> np.ndarray:
        """The alternative for the next update: ``r`` per row and bucket, from the counts so far."""
        nc, p_b, p_c = self.shares()
        fitted = isotonic(p_c / p_b, p_b)
        if not nc.all():
            fitted[nc == 0] = 1.0
        lam = (nc / (nc + self.shrink))[:, None]
        out: np.ndarray = 1.0 + lam * (fitted - 1.0)
        return out

    def add(self, canary: np.ndarray, baseline: np.ndarray) -> None:
        """One update's requests per bucket (rows × buckets), canary and baseline."""
        if self.canary.shape[0] == 1 and type(self).ratios is OrderedEvidence.ratios:  # not a variant's plug-in
            self.add_one(canary[0].tolist(), baseline[0].tolist())
            return
        self.log_sum += log_e_values(canary, baseline, self.ratios())
        self.canary += canary
        self.baseline += baseline

    def add_one(self, canary: list[float], baseline: list[float]) -> None:
        """``add`` for the one row of a live test (this class's plug-in), from lists of requests per bucket."""
        self.log_sum[0] += _log_e_one(canary, baseline, self._ratios_one())
        self.canary[0] += canary
        self.baseline[0] += baseline

    def _ratios_one(self) -> list[float]:
        """``ratios()`` of the one row of a live test, on Python floats.

        The same arithmetic as ``shares`` and ``ratios``, without numpy's per-call cost, which on
        15 buckets is most of an update (a live test updates one row at a time; the benchmark's
        many rows keep the array code). Sums may round differently in the last bit.
        """
        cn, bn = self.canary[0].tolist(), self.baseline[0].tolist()
        k, nc, nb = len(cn), sum(cn), sum(bn)
        norm = nb + BASELINE_PSEUDO_COUNT * k
        p_b = [(x + BASELINE_PSEUDO_COUNT) / norm for x in bn]
        prior, below = [], 0.0
        for p in p_b:  # the pseudo-requests go to the buckets starting above the baseline's prior_above quantile
            prior.append(self.canary_pseudo_count if below >= self.prior_above else 0.0)
            below += p
        denom = max(nc + sum(prior), 1e-300)
        if nc == 0:
            return [1.0] * k
        fitted = _pool_adjacent_violators([(x + q) / denom / p for x, q, p in zip(cn, prior, p_b, strict=True)], p_b)
        lam = nc / (nc + self.shrink)
        return [1.0 + lam * (f - 1.0) for f in fitted]

    def log_e(self) -> np.ndarray:
        """Each row's log e-value."""
        return self.log_sum.copy()
