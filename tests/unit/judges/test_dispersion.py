"""The rate test's dispersion diagnostic: quiet on independent errors, loud on bursts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shiprail.judges import RateRegressionTest
from shiprail.judges.dispersion import DISCOUNT_Z, DISPERSION_MIN_UPDATES, SplitDispersion, split_statistic
from shiprail.judges.rates import Bursts


def run(
    seed: int,
    *,
    bursty: bool,
    updates: int = 120,
    test: RateRegressionTest | None = None,
    shape: float = 1.0,
    until_fail: bool = False,
) -> RateRegressionTest:
    """1000 requests/s, 10 % canary, 1 % errors, 10 s updates; bursty: each version's rate × Gamma(shape) per update."""
    rng = np.random.default_rng(seed)
    test = test or RateRegressionTest(0.01)
    nc = ec = nb = eb = 0.0
    for _ in range(updates):
        c, b = rng.poisson(1000), rng.poisson(9000)
        gc, gb = rng.gamma(shape, 1.0 / shape, 2) if bursty else (1.0, 1.0)
        nc, nb = nc + c, nb + b
        ec += rng.binomial(c, min(1.0, 0.01 * gc))
        eb += rng.binomial(b, min(1.0, 0.01 * gb))
        verdict = test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
        if until_fail and verdict.failed:
            break
    return test


def test_independent_errors_measure_a_dispersion_near_1_and_are_not_flagged() -> None:
    for seed in range(5):
        verdict = run(seed, bursty=False).verdict()
        assert 0.7 < verdict.details["dispersion"] < 1.3
        assert "bursts" not in verdict.reason


def test_bursty_errors_are_flagged_in_the_verdict() -> None:
    for seed in range(5):
        verdict = run(seed, bursty=True).verdict()
        assert verdict.details["dispersion"] > 3
        assert "beware: events arrive in bursts (dispersion" in verdict.reason


def test_too_few_updates_say_nothing() -> None:
    split = SplitDispersion()
    for _ in range(DISPERSION_MIN_UPDATES - 1):
        split.add(0.1, 50, 5)
    split.add(0.1, 0, 0)  # an update without events does not count
    assert split.measure(1.0) is None
    split.add(0.1, 50, 5)
    measured = split.measure(1.0)
    assert measured is not None and measured.updates == DISPERSION_MIN_UPDATES
    assert measured.ratio == 0.0  # exactly the expected split every time: no spread at all


def test_the_discount_is_the_dispersion_beyond_chance_once_three_updates_have_events() -> None:
    split = SplitDispersion()
    for canary_events in (15, 0):  # of 50 events at a 10 % share: 5 expected each time
        split.add(0.1, 50, canary_events)
    assert split.discount(1.0) == 1.0  # two updates: too few to measure
    split.add(0.1, 50, 15)
    # Pearson's X² at ratio 1: Σ (e − 5)² / 4.5; its variance 3 × a Binomial(50, 0.1) term's.
    x2 = (100 + 25 + 100) / 4.5
    variance = 3 * pearson_term_variance(50, 0.1)
    assert split.discount(1.0) == pytest.approx((x2 - DISCOUNT_Z * math.sqrt(variance)) / 3, rel=1e-12)
    assert split.discount(1.0) == pytest.approx(14.9925, abs=1e-4)


def pearson_term_variance(k: int, q: float) -> float:
    """The variance of ``(e − kq)² / (kq(1 − q))`` for ``e`` ~ Binomial(k, q), summed over every ``e``."""
    pmf = [math.comb(k, e) * q**e * (1 - q) ** (k - e) for e in range(k + 1)]
    terms = [(e - k * q) ** 2 / (k * q * (1 - q)) for e in range(k + 1)]
    mean = sum(p * t for p, t in zip(pmf, terms, strict=True))
    return sum(p * (t - mean) ** 2 for p, t in zip(pmf, terms, strict=True))


@pytest.mark.parametrize(
    ("share", "k", "ratio"), [(0.5, 2, 1.0), (0.1, 2, 1.0), (0.1, 3, 1.0), (0.1, 50, 2.5), (0.5, 7, 0.3)]
)
def test_the_variance_is_the_binomial_one_at_any_ratio(share: float, k: int, ratio: float) -> None:
    # Each update adds the exact variance of its Pearson term at the ratio's q, whatever the ratio.
    split = SplitDispersion()
    for _ in range(4):
        split.add(share, k, 0)
    q = ratio * share / (ratio * share + 1 - share)
    _, variance = split_statistic(split.sums, ratio)
    assert float(variance) == pytest.approx(4 * pearson_term_variance(k, q), rel=1e-9)


def test_a_spread_within_chance_is_no_discount() -> None:
    split = SplitDispersion()
    for canary_events in (5, 7, 3, 6, 4):
        split.add(0.1, 50, canary_events)
    assert split.discount(1.0) == 1.0


def test_the_rate_test_discounts_bursty_errors_and_not_independent_ones() -> None:
    assert run(0, bursty=False).discount == 1.0
    assert run(0, bursty=True).discount > 3


def test_tolerating_bursts_keeps_false_rollbacks_near_alpha_where_the_plain_test_loses_its_bound() -> None:
    # Each update's error rate × Gamma(4) per version (a spread of ±50 %), 20 minutes, α = 0.05.
    def rate(bursts: Bursts) -> float:
        tests = [RateRegressionTest(0.05, bursts=bursts) for _ in range(100)]
        runs = [run(seed, bursty=True, shape=4.0, test=test, until_fail=True) for seed, test in enumerate(tests)]
        return sum(t.verdict().failed for t in runs) / len(runs)

    assert rate("independent") == 0.19
    assert rate("tolerate") == 0.06
