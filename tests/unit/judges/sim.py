"""Simulated traffic for the judges' tests: per-interval Poisson requests, binomial errors, bucketed latency."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from shiprail.defaults import LATENCY_BUCKETS

BOUNDS = (*LATENCY_BUCKETS, math.inf)


def error_stream(
    seed: int,
    *,
    looks: int,
    rps: float = 1000,
    interval_s: float = 10,
    shares: Sequence[float] = (0.1,),
    base_rate: float = 0.001,
    ratio: float = 1.0,
    shock: tuple[int, int, float] | None = None,
) -> Iterator[tuple[float, float, float, float]]:
    """Cumulative (canary requests, canary errors, baseline requests, baseline errors) after each look.

    ``shares`` are the canary's share, stepped through evenly over the looks; ``shock`` = (first
    look, last look, factor) multiplies both versions' error rates in those looks.
    """
    rng = np.random.default_rng(seed)
    nc = ec = nb = eb = 0.0
    for look in range(looks):
        share = shares[min(len(shares) - 1, look * len(shares) // looks)]
        factor = shock[2] if shock and shock[0] <= look <= shock[1] else 1.0
        n = rng.poisson(rps * interval_s)
        c = rng.binomial(n, share)
        nc += c
        nb += n - c
        ec += rng.binomial(c, min(1.0, base_rate * ratio * factor))
        eb += rng.binomial(n - c, min(1.0, base_rate * factor))
        yield nc, ec, nb, eb


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if math.isinf(x):
        return 1.0
    return 0.5 * (1 + math.erf((math.log(x) - math.log(median)) / (sigma * math.sqrt(2))))


def bucket_probabilities(median: float, sigma: float, tail_share: float = 0.0, tail_factor: float = 1.0) -> np.ndarray:
    """P(latency in each bucket) for a log-normal, optionally with ``tail_share`` of requests ``tail_factor`` slower."""
    cdf = np.array(
        [
            (1 - tail_share) * lognormal_cdf(b, median, sigma)
            + tail_share * lognormal_cdf(b, median * tail_factor, sigma)
            for b in BOUNDS
        ]
    )
    return np.diff(np.concatenate([[0.0], cdf]))


def latency_stream(
    seed: int,
    *,
    looks: int,
    rps: float = 100,
    interval_s: float = 10,
    share: float = 0.1,
    canary: np.ndarray,
    baseline: np.ndarray,
) -> Iterator[tuple[dict[float, float], dict[float, float]]]:
    """Cumulative ``{le: count}`` buckets of canary and baseline after each look."""
    rng = np.random.default_rng(seed)
    cum_c = np.zeros(len(BOUNDS))
    cum_b = np.zeros(len(BOUNDS))
    for _ in range(looks):
        n = rng.poisson(rps * interval_s)
        c = rng.binomial(n, share)
        cum_c += rng.multinomial(c, canary)
        cum_b += rng.multinomial(n - c, baseline)
        yield (
            dict(zip(BOUNDS, np.cumsum(cum_c).tolist(), strict=True)),
            dict(zip(BOUNDS, np.cumsum(cum_b).tolist(), strict=True)),
        )
