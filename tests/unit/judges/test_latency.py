"""The sequential latency test, from histogram buckets: valid at every look, catches shifts and tails."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from shiprail.judges import JudgeInputError, LatencyRegressionTest, band
from shiprail.judges.latency import Method
from tests.unit.judges.sim import bucket_probabilities, latency_stream

HEALTHY = bucket_probabilities(0.08, 0.5)


def first_fail(test: LatencyRegressionTest, seed: int, canary: object, looks: int = 90) -> int | None:
    for look, (c, b) in enumerate(latency_stream(seed, looks=looks, canary=canary, baseline=HEALTHY)):  # type: ignore[arg-type]
        if test.update(canary_buckets=c, baseline_buckets=b).failed:
            return look
    return None


@pytest.mark.parametrize("method", ["order", "exceedance", "bands"])
def test_a_healthy_canary_fails_at_most_alpha_of_the_time(method: Method) -> None:
    fails = sum(
        first_fail(LatencyRegressionTest(0.05, method=method), seed, HEALTHY) is not None for seed in range(200)
    )
    assert fails / 200 <= 0.09


@pytest.mark.parametrize("method", ["order", "exceedance", "bands"])
def test_half_again_as_slow_is_caught(method: Method) -> None:
    slower = bucket_probabilities(0.12, 0.5)
    looks = [first_fail(LatencyRegressionTest(0.01, method=method), seed, slower) for seed in range(10)]
    assert all(look is not None and look < 30 for look in looks), looks


def test_a_slow_tail_is_caught_by_the_count_tests_where_uniform_bands_see_nothing() -> None:
    # 2 % of the canary's requests five times slower: the middle of the distribution is unchanged.
    tail = bucket_probabilities(0.08, 0.5, tail_share=0.02, tail_factor=5)
    by_order = [first_fail(LatencyRegressionTest(0.01), seed, tail, looks=180) for seed in range(10)]
    by_exceedance = [
        first_fail(LatencyRegressionTest(0.01, method="exceedance"), seed, tail, looks=180) for seed in range(10)
    ]
    by_bands = [first_fail(LatencyRegressionTest(0.01, method="bands"), seed, tail, looks=180) for seed in range(10)]
    assert all(look is not None for look in by_order), by_order
    assert all(look is not None for look in by_exceedance), by_exceedance
    assert all(look is None for look in by_bands), by_bands


def test_a_faster_canary_is_never_slower() -> None:
    faster = bucket_probabilities(0.06, 0.5)
    assert all(first_fail(LatencyRegressionTest(0.05), seed, faster) is None for seed in range(50))


def test_a_tolerance_needs_the_exceedance_method() -> None:
    with pytest.raises(JudgeInputError, match=r"min_ratio 1\.5 needs method exceedance"):
        LatencyRegressionTest(0.01, min_ratio=1.5)
    assert LatencyRegressionTest(0.01, min_ratio=1.5, method="exceedance").min_ratio == 1.5


def test_the_band_follows_howard_and_ramdas_theorem_2() -> None:
    t, alpha = 1000, 0.05
    expected = 0.85 * math.sqrt((math.log(1 + math.log(t)) + 0.8 * math.log(1612 / alpha)) / t)
    assert band(t, alpha) == pytest.approx(expected)
    assert band(0.5, alpha) == math.inf
    assert band(10_000, alpha) < band(1000, alpha)


def test_the_verdict_names_the_bound_and_brackets_the_quantile() -> None:
    test = LatencyRegressionTest(0.01, quantile=0.99)
    canary = {0.1: 200.0, 0.25: 600.0, 0.5: 1000.0, math.inf: 1000.0}
    baseline = {0.1: 9000.0, 0.25: 9900.0, 0.5: 10000.0, math.inf: 10000.0}
    verdict = test.update(canary_buckets=canary, baseline_buckets=baseline)
    assert verdict.decision == "fail"
    assert verdict.details == {"bound": 0.1, "method": "order"}
    # 1,000 canary requests cannot pin a p99 down from above: its band is ±13 % at α/2.
    assert verdict.interval == (0.25, math.inf)
    assert verdict.reason.startswith(
        "canary slower than baseline: slower than 0.1s: canary 80.00% vs baseline 10.00% of requests; "
        "p99 canary in (0.25s, ∞], baseline in (0.1s, ∞]"
    )


def test_buckets_that_are_not_cumulative_or_lack_a_total_are_refused() -> None:
    test = LatencyRegressionTest(0.01)
    with pytest.raises(JudgeInputError, match=r"canary_buckets has no \+Inf bucket"):
        test.update(canary_buckets={0.1: 1}, baseline_buckets={0.1: 1, math.inf: 1})
    with pytest.raises(JudgeInputError, match=r"bucket 0\.25 counts 1, fewer than bucket 0\.1 \(2\)"):
        test.update(canary_buckets={0.1: 2, 0.25: 1, math.inf: 2}, baseline_buckets={0.1: 1, math.inf: 1})
    test.update(canary_buckets={0.1: 2, math.inf: 2}, baseline_buckets={0.1: 2, math.inf: 2})
    with pytest.raises(
        JudgeInputError,
        match=r"the bucket bounds both versions share changed between updates, from \[0\.1\] to \[0\.2\]",
    ):
        test.update(canary_buckets={0.2: 2, math.inf: 2}, baseline_buckets={0.2: 2, math.inf: 2})


def test_counts_that_go_down_are_refused_naming_the_version_and_bucket() -> None:
    test = LatencyRegressionTest(0.01)
    first = test.update(
        canary_buckets={0.1: 5, 0.25: 8, math.inf: 10}, baseline_buckets={0.1: 50, 0.25: 80, math.inf: 100}
    )
    baseline = {0.1: 90, 0.25: 180, math.inf: 200}
    refused = [
        ({0.1: 4, 0.25: 8, math.inf: 20}, baseline, "canary_buckets[0.1] went down from 5 to 4"),
        (
            {0.1: 5, 0.25: 8, math.inf: 10},
            {0.1: 50, 0.25: 80, math.inf: 90},
            "baseline_buckets[+Inf] (the total) went down from 100 to 90",
        ),
        (
            {0.1: 7, 0.25: 8.5, math.inf: 20},
            baseline,
            "canary_buckets: the requests between 0.1 and 0.25 went down from 3 to 1.5 "
            "(canary_buckets[0.1] grew by more than canary_buckets[0.25])",
        ),
        ({0.1: 5, 0.25: 3, math.inf: 20}, baseline, "canary_buckets: bucket 0.25 counts 3, fewer than bucket 0.1 (5)"),
        ({0.1: 5, 0.25: 9, math.inf: 2}, baseline, "canary_buckets: bucket +Inf counts 2, fewer than bucket 0.25 (9)"),
    ]
    for canary, base, message in refused:
        with pytest.raises(JudgeInputError) as caught:
            test.update(canary_buckets=canary, baseline_buckets=base)
        assert str(caught.value).startswith(message + ";") or str(caught.value) == message + "; counts are cumulative"
    assert test.verdict() == first  # nothing taken from any refused update


def test_the_excess_share_s_interval_only_shrinks_at_each_bound() -> None:
    # The CDF bands hold at every look together, so their intersection over looks does too.
    same = bucket_probabilities(0.08, 0.5)
    test = LatencyRegressionTest(0.05)
    intervals: dict[float, list[tuple[float, float]]] = {}
    for canary, baseline in latency_stream(7, looks=120, canary=same, baseline=same):
        verdict = test.update(canary_buckets=canary, baseline_buckets=baseline)
        assert verdict.interval is not None
        intervals.setdefault(verdict.details["bound"], []).append(verdict.interval)
    for held in intervals.values():
        for (lo1, hi1), (lo2, hi2) in itertools.pairwise(held):
            assert lo2 >= lo1 and hi2 <= hi1
    assert sum(len(h) for h in intervals.values()) == 120 and len(intervals) > 1


def test_ten_million_requests_do_not_make_a_bucket_seem_to_shrink() -> None:
    # tc·(1 − F) rounding at this size once produced a negative increment and an error.
    test = LatencyRegressionTest(0.01)
    total, slow = 12_198_783, 311
    same = {2.5: float(total - slow), math.inf: float(total)}
    test.update(canary_buckets=same, baseline_buckets=same)
    grown = {2.5: float(total - slow + 1862), math.inf: float(total + 1862)}
    assert test.update(canary_buckets=grown, baseline_buckets=grown).decision == "continue"


def test_overwhelming_evidence_gives_a_tiny_p_value_not_a_crash() -> None:
    canary, baseline = {0.1: 2000.0, math.inf: 10000.0}, {0.1: 5000.0, math.inf: 10000.0}
    verdict = LatencyRegressionTest(0.01, method="bands").update(canary_buckets=canary, baseline_buckets=baseline)
    assert verdict.decision == "fail"
    assert 0 < verdict.p_value < 1e-100


def test_without_a_quantile_the_interval_bounds_the_excess_share_slower_than_the_bound() -> None:
    test = LatencyRegressionTest(0.05)
    canary = {0.1: 700.0, 0.25: 950.0, math.inf: 1000.0}
    baseline = {0.1: 8000.0, 0.25: 9700.0, math.inf: 10000.0}
    verdict = test.update(canary_buckets=canary, baseline_buckets=baseline)
    width = band(1000, 0.025) + band(10000, 0.025)
    assert verdict.details["bound"] == 0.1
    assert verdict.estimate == pytest.approx(0.1)
    assert verdict.interval == (pytest.approx(0.1 - width), pytest.approx(0.1 + width))
    assert "excess +10.00% (CS" in verdict.reason


@pytest.mark.parametrize(("method", "min_ratio"), [("order", 1.0), ("exceedance", 1.2)])
def test_evidence_far_below_one_is_p_1_not_an_overflow(method: Method, min_ratio: float) -> None:
    # A canary slightly slower at first, then much faster: the log e-value falls past −709.
    test = LatencyRegressionTest(0.01, method=method, min_ratio=min_ratio)
    canary, baseline = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]

    def update(dc: list[float], db: list[float]) -> float:
        for i in range(3):
            canary[i] += dc[i]
            baseline[i] += db[i]

        def cum(x: list[float]) -> dict[float, float]:
            return {0.1: x[0], 0.2: x[0] + x[1], math.inf: sum(x)}

        return test.update(canary_buckets=cum(canary), baseline_buckets=cum(baseline)).p_value

    update([60, 20, 20], [700, 200, 100])
    before = update([60, 20, 20], [700, 200, 100])
    # No OverflowError, and the running p-value stays where it was.
    assert update([1e5, 0, 0], [7e4, 2e4, 1e4]) == before


def test_fractional_counts_of_ten_million_do_not_read_as_a_bucket_losing_requests() -> None:
    # Prometheus' increase() gives fractional counts; summed to 10⁷ their rounding is ~10⁻⁹.
    test = LatencyRegressionTest(0.01)
    canary, baseline = {0.1: 0.0, 0.2: 0.0, math.inf: 0.0}, {0.1: 0.0, 0.2: 0.0, math.inf: 0.0}
    rng = random.Random(4)
    for i in range(1200):
        for cum, scale in ((canary, 1e3), (baseline, 1.5e4)):
            fast, middle, slow = (rng.uniform(0.5, 1.0) * scale for _ in range(3))
            middle = middle if i % 2 else 0.0  # the middle bucket empty every other update
            cum[0.1] += fast
            cum[0.2] += fast + middle
            cum[math.inf] += fast + middle + slow
        # Only that no update is refused: these made-up counts are not multinomial, so no verdict is asserted.
        test.update(canary_buckets=canary, baseline_buckets=baseline)


def test_before_a_version_has_requests_the_verdict_says_so() -> None:
    verdict = LatencyRegressionTest(0.01).update(
        canary_buckets={0.1: 0.0, math.inf: 0.0}, baseline_buckets={0.1: 90.0, math.inf: 100.0}
    )
    assert verdict.decision == "continue"
    assert verdict.reason == "no slowdown shown yet: no canary requests yet, p = 1 > α 0.01"
    assert (verdict.estimate, verdict.interval, verdict.details["bound"]) == (None, None, None)


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ("0.1", r"canary_buckets: bucket bound '0\.1' is not a latency; bounds are seconds of at least 0"),
        (None, "canary_buckets: bucket bound None is not a latency"),
        (math.nan, "canary_buckets: bucket bound nan is not a latency"),
        (-1.0, r"canary_buckets: bucket bound -1\.0 is not a latency"),
    ],
)
def test_bucket_bounds_that_are_not_latencies_are_refused(bound: object, message: str) -> None:
    with pytest.raises(JudgeInputError, match=message):
        LatencyRegressionTest().update(
            canary_buckets={bound: 1, math.inf: 2},  # type: ignore[dict-item]
            baseline_buckets={0.1: 1, math.inf: 2},
        )


def test_counts_beyond_any_traffic_are_refused_and_numpy_counts_are_taken() -> None:
    with pytest.raises(JudgeInputError, match=r"canary_buckets\[0\.1\] is more than 1e\+15"):
        LatencyRegressionTest().update(
            canary_buckets={0.1: 10**400, math.inf: 10**400}, baseline_buckets={0.1: 1, math.inf: 2}
        )
    numpy_counts = LatencyRegressionTest().update(
        canary_buckets={0.1: np.int64(50), math.inf: np.int64(100)}, baseline_buckets={0.1: 500, math.inf: 1000}
    )
    plain = LatencyRegressionTest().update(
        canary_buckets={0.1: 50, math.inf: 100}, baseline_buckets={0.1: 500, math.inf: 1000}
    )
    assert numpy_counts == plain


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"method": "exceedance", "min_ratio": 25}, "min_ratio must be at least 1 and at most 10, got 25"),
        ({"method": "exceedance", "min_ratio": "abc"}, "min_ratio must be at least 1 and at most 10, got 'abc'"),
        ({"quantile": "x"}, r"quantile must be between 0 and 1 \(0\.99 for p99\), got 'x'"),
        ({"tolerance": "x"}, "tolerance must be a share between 0 and 1, got 'x'"),
    ],
)
def test_settings_are_checked_when_the_test_is_made(settings: dict[str, object], message: str) -> None:
    with pytest.raises(JudgeInputError, match=message):
        LatencyRegressionTest(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tolerance": 0.05}, r"tolerance 0\.05 needs method bands"),
        ({"method": "exceedance", "min_ratio": 1.2, "tolerance": 0.05}, r"tolerance 0\.05 needs method bands"),
        ({"method": "bands", "min_ratio": 1.5}, r"min_ratio 1\.5 needs method exceedance"),
    ],
)
def test_a_setting_the_method_does_not_read_is_refused_not_ignored(settings: dict[str, object], message: str) -> None:
    # The order test used to take tolerance=0.05 and judge as if it were 0 (and bands min_ratio as 1):
    # a stricter test than the caller asked for, without a word.
    with pytest.raises(JudgeInputError, match=message):
        LatencyRegressionTest(0.01, **settings)  # type: ignore[arg-type]
    assert LatencyRegressionTest(0.01, method="bands", tolerance=0.05).tolerance == 0.05
    assert LatencyRegressionTest(0.01, method="exceedance", min_ratio=1.2).min_ratio == 1.2


def test_a_bucket_that_went_down_by_a_little_is_told_in_digits_that_differ() -> None:
    test = LatencyRegressionTest(0.01)
    baseline = {0.1: 1.0, math.inf: 2.0}
    test.update(canary_buckets={0.1: 1_234_567, math.inf: 2_345_678}, baseline_buckets=baseline)
    with pytest.raises(JudgeInputError) as info:
        test.update(canary_buckets={0.1: 1_234_566, math.inf: 2_345_679}, baseline_buckets=baseline)
    assert str(info.value) == "canary_buckets[0.1] went down from 1234567 to 1234566; buckets are cumulative over time"
    with pytest.raises(JudgeInputError) as info:
        test.update(canary_buckets={0.1: 1_234_567, math.inf: 2_345_677}, baseline_buckets=baseline)
    assert str(info.value) == (
        "canary_buckets[+Inf] (the total) went down from 2345678 to 2345677; buckets are cumulative over time"
    )


def test_the_bands_method_refuses_what_the_count_tests_refuse() -> None:
    test = LatencyRegressionTest(method="bands")
    baseline = {0.1: 500, 0.5: 900, math.inf: 1000}
    before = test.update(canary_buckets={0.1: 50, 0.5: 90, math.inf: 100}, baseline_buckets=baseline)
    with pytest.raises(JudgeInputError, match=r"canary_buckets\[0\.1\] went down from 50 to 40"):
        test.update(canary_buckets={0.1: 40, 0.5: 150, math.inf: 200}, baseline_buckets=baseline)
    with pytest.raises(JudgeInputError, match="the bucket bounds both versions share changed between updates"):
        test.update(canary_buckets={0.2: 50, math.inf: 200}, baseline_buckets={0.2: 500, math.inf: 1000})
    assert test.verdict() == before


def test_overwhelming_evidence_reports_the_smallest_p_value_not_zero() -> None:
    test = LatencyRegressionTest(0.05)
    # Every canary request slower than every baseline one, at a size where exp(-evidence) underflowed.
    verdict = test.update(
        canary_buckets={0.1: 0, 1.0: 0, math.inf: 10**9}, baseline_buckets={0.1: 10**9, 1.0: 10**9, math.inf: 10**9}
    )
    assert verdict.decision == "fail"
    assert verdict.p_value == math.exp(-690)
