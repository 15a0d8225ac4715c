"""The rate test's dispersion diagnostic: quiet on independent errors, loud on bursts."""

from __future__ import annotations

import numpy as np

from shiprail.judges import RateRegressionTest
from shiprail.judges.dispersion import DISPERSION_MIN_UPDATES, SplitDispersion


def run(seed: int, *, bursty: bool, updates: int = 120) -> RateRegressionTest:
    """1000 requests/s, 10 % canary, 1 % errors, 10 s updates; bursty: each version's rate × Gamma(1) per update."""
    rng = np.random.default_rng(seed)
    test = RateRegressionTest(0.01)
    nc = ec = nb = eb = 0.0
    for _ in range(updates):
        c, b = rng.poisson(1000), rng.poisson(9000)
        gc, gb = rng.gamma(1.0, 1.0, 2) if bursty else (1.0, 1.0)
        nc, nb = nc + c, nb + b
        ec += rng.binomial(c, min(1.0, 0.01 * gc))
        eb += rng.binomial(b, min(1.0, 0.01 * gb))
        test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
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
