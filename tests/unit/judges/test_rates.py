"""The sequential rate test: valid at every look, powerful, shock-proof, exact on a hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shiprail.judges import JudgeInputError, RateRegressionTest
from shiprail.judges.base import Verdict
from shiprail.judges.dispersion import SplitDispersion
from shiprail.judges.rates import BURST_CAP, GRID_POINTS, LOG_RATIO_MAX, PRIOR_SCALES, RatioEvidence
from tests.unit.judges.sim import error_stream


def first_fail(test: RateRegressionTest, stream: object) -> int | None:
    for look, (nc, ec, nb, eb) in enumerate(stream):  # type: ignore[call-overload]
        if test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb).failed:
            return look
    return None


def false_fails(runs: int, alpha: float, **stream: object) -> float:
    fails = sum(
        first_fail(RateRegressionTest(alpha), error_stream(seed, **stream)) is not None  # type: ignore[arg-type]
        for seed in range(runs)
    )
    return fails / runs


# 300 runs: the standard error of a 5 % rate is 1.3 points, so 9 % is ~3 standard errors above α.
RUNS, ALPHA, LIMIT = 300, 0.05, 0.09


def test_a_healthy_canary_looked_at_every_10_s_for_half_an_hour_fails_at_most_alpha_of_the_time() -> None:
    assert false_fails(RUNS, ALPHA, looks=180, rps=100, base_rate=0.01) <= LIMIT


def test_the_share_changing_with_every_step_keeps_it_valid() -> None:
    assert false_fails(RUNS, ALPHA, looks=120, rps=100, base_rate=0.01, shares=(0.01, 0.1, 0.5)) <= LIMIT


def test_a_shock_raising_both_versions_errors_does_not_roll_back() -> None:
    # Both versions' errors ×20 for 5 minutes in the middle: a threshold rule would fire; this must not.
    assert false_fails(RUNS, ALPHA, looks=120, rps=100, base_rate=0.005, shock=(40, 70, 20.0)) <= LIMIT


def test_twice_the_errors_at_a_low_baseline_is_caught_within_minutes() -> None:
    looks = [first_fail(RateRegressionTest(0.01), error_stream(seed, looks=180, ratio=2.0)) for seed in range(20)]
    assert all(look is not None for look in looks)
    # Updates every 10 s, 1000 req/s, 10 % canary, 0.1 % errors: median well under 3 minutes.
    assert float(np.median([look for look in looks if look is not None])) * 10 < 180


def test_a_slight_increase_is_not_a_regression_beyond_min_ratio() -> None:
    fails = sum(
        first_fail(RateRegressionTest(0.05, min_ratio=1.5), error_stream(seed, looks=180, ratio=1.2)) is not None
        for seed in range(100)
    )
    assert fails <= 8


def test_the_confidence_sequence_holds_the_true_ratio() -> None:
    covered = 0
    for seed in range(100):
        test = RateRegressionTest(0.05)
        for nc, ec, nb, eb in error_stream(seed, looks=120, ratio=2.0, base_rate=0.01, rps=100):
            verdict = test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
        assert verdict.interval is not None
        covered += verdict.interval[0] <= 2.0 <= verdict.interval[1]
    assert covered >= 92


def test_the_p_value_never_rises_and_the_same_updates_give_the_same_verdicts() -> None:
    one, two = RateRegressionTest(0.01), RateRegressionTest(0.01)
    last = 1.0
    for nc, ec, nb, eb in error_stream(3, looks=60, ratio=1.5):
        a = one.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
        b = two.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
        assert a == b
        assert a.p_value <= last
        last = a.p_value


def test_one_update_matches_the_formula_worked_by_hand() -> None:
    # 100 canary and 900 baseline requests (s = 0.1); 5 canary and 10 baseline errors (k = 15).
    test = RateRegressionTest(0.05)
    verdict = test.update(canary_requests=100, canary_events=5, baseline_requests=900, baseline_events=10)
    s, k = 0.1, 15
    xs = [-LOG_RATIO_MAX + i * 2 * LOG_RATIO_MAX / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    above = [x for x in xs if x > 0]
    ratios = [
        math.exp(5 * x - k * math.log(math.exp(x) * s + 1 - s)) / math.exp(-k * math.log(s + 1 - s)) for x in above
    ]
    m = 0.0
    for scale in PRIOR_SCALES:  # an equal mixture of half-normal priors
        weights = [math.exp(-(x**2) / (2 * scale**2)) for x in above]
        m += sum(w * r for w, r in zip(weights, ratios, strict=True)) / sum(weights) / len(PRIOR_SCALES)
    assert verdict.p_value == pytest.approx(min(1.0, 1 / m), rel=1e-9)
    assert verdict.details["log_e_value"] == pytest.approx(math.log(m), abs=1e-6)
    assert verdict.decision == ("fail" if m >= 20 else "continue")
    assert (verdict.canary_samples, verdict.baseline_samples) == (100, 900)


def test_counts_that_shrink_or_are_negative_are_refused() -> None:
    test = RateRegressionTest(0.01)
    test.update(canary_requests=10, canary_events=1, baseline_requests=10, baseline_events=0)
    with pytest.raises(JudgeInputError, match="canary_requests went down from 10 to 5; counts are cumulative"):
        test.update(canary_requests=5, canary_events=1, baseline_requests=10, baseline_events=0)
    with pytest.raises(JudgeInputError, match="baseline_events must be a finite count of at least 0, got -1"):
        RateRegressionTest(0.01).update(canary_requests=1, canary_events=0, baseline_requests=1, baseline_events=-1)
    with pytest.raises(JudgeInputError, match=r"alpha must be more than 0 and at most 0\.5, got 0\.7"):
        RateRegressionTest(0.7)


def test_a_count_that_went_down_by_a_little_is_told_in_digits_that_differ() -> None:
    # Printed with :g, both counts read 1.23457e+06: "went down from 1.23457e+06 to 1.23457e+06".
    test = RateRegressionTest(0.01)
    test.update(canary_requests=1_234_567, canary_events=10.5, baseline_requests=9e6, baseline_events=90)
    with pytest.raises(JudgeInputError) as info:
        test.update(canary_requests=1_234_566, canary_events=10.5, baseline_requests=9e6, baseline_events=90)
    assert str(info.value) == (
        "canary_requests went down from 1234567 to 1234566; counts are cumulative (a counter reset needs a new test)"
    )
    with pytest.raises(JudgeInputError, match=r"canary_events went down from 10\.5 to 10\.499999;"):
        test.update(canary_requests=1_234_568, canary_events=10.499999, baseline_requests=9e6, baseline_events=90)


def test_no_events_or_a_version_without_requests_is_no_evidence() -> None:
    test = RateRegressionTest(0.01)
    v = test.update(canary_requests=100, canary_events=0, baseline_requests=100, baseline_events=0)
    assert (v.decision, v.p_value, v.interval, v.estimate) == ("continue", 1.0, None, None)
    v = test.update(canary_requests=100, canary_events=0, baseline_requests=200, baseline_events=50)
    assert (v.decision, v.p_value, v.interval) == ("continue", 1.0, None)


def test_each_update_is_discounted_by_the_dispersion_of_the_updates_before_it() -> None:
    test = RateRegressionTest(0.05)
    split = SplitDispersion()
    updates = [(1000, 30, 9000, 60), (1000, 2, 9000, 90), (1000, 25, 9000, 70), (1000, 12, 9000, 80)]
    nc = ec = nb = eb = 0.0
    for i, (c, e_c, b, e_b) in enumerate(updates):
        before = test.evidence.ell.copy()
        expected = split.discount(test.evidence.centre())
        nc, ec, nb, eb = nc + c, ec + e_c, nb + b, eb + e_b
        test.update(canary_requests=nc, canary_events=ec, baseline_requests=nb, baseline_events=eb)
        alone = RatioEvidence(1)
        alone.add(c, b, np.array([e_c]), np.array([e_b]))
        assert test.discount == expected
        assert test.evidence.ell == pytest.approx(before + alone.ell / expected, rel=1e-12, abs=1e-12)
        split.add(c / (c + b), e_c + e_b, e_c)
        assert (test.discount > 1) == (i == 3)  # measured from the 4th update on: these splits swing widely


def test_a_regression_beyond_the_grid_is_not_discounted_as_bursts() -> None:
    # A 1 % canary failing every request against a clean baseline: the likelihood keeps rising at
    # ×20, where the split's spread is the regression's, not bursts'. Measured at ×20 the dispersion
    # is ~48, and dividing the evidence by it made this test wait until update 10.
    test = RateRegressionTest(0.01, min_ratio=5, bursts="tolerate")
    split = SplitDispersion()
    decisions = []
    for n in range(1, 5):
        counts = {"canary_requests": 10 * n, "canary_events": 10 * n, "baseline_requests": 990 * n}
        decisions.append(test.update(**counts, baseline_events=0).decision)
        assert (test.evidence.centre(), test.discount) == (test.evidence.top, 1.0)
        split.add(0.01, 10, 10)
    assert decisions == ["continue", "continue", "continue", "fail"]
    assert split.discount(test.evidence.top) > 40  # what the evidence would have been divided by


def test_tolerating_bursts_caps_what_one_update_can_add() -> None:
    # Six times the baseline's error rate, update after update: one update is overwhelming evidence.
    counts = [(1000.0 * n, 60.0 * n, 9000.0 * n, 90.0 * n) for n in range(1, 5)]
    plain = RateRegressionTest(0.05)
    assert first_fail(plain, counts) == 0
    tolerant = RateRegressionTest(0.05, bursts="tolerate")
    verdicts = [
        tolerant.update(canary_requests=c, canary_events=e, baseline_requests=b, baseline_events=f)
        for c, e, b, f in counts
    ]
    log_e = [v.details["log_e_value"] for v in verdicts]
    assert [v.decision for v in verdicts] == ["continue", "continue", "fail", "fail"]
    assert all(0 < x <= BURST_CAP * n for n, x in enumerate(log_e, start=1))
    assert verdicts[0].details["bursts"] == "tolerate"
    # The interval (from the uncapped evidence) reaches down to min_ratio while the test continues.
    intervals = [v.interval for v in verdicts]
    assert all(i is not None for i in intervals)
    assert [i[0] <= 1.0 for i in intervals if i is not None] == [True, True, False, False]


def test_tolerating_bursts_keeps_a_healthy_canary_valid() -> None:
    fails = sum(
        first_fail(RateRegressionTest(ALPHA, bursts="tolerate"), error_stream(seed, looks=180, rps=100, base_rate=0.01))
        is not None
        for seed in range(RUNS)
    )
    assert fails / RUNS <= LIMIT


def test_an_unknown_bursts_setting_is_refused() -> None:
    with pytest.raises(JudgeInputError, match="bursts must be independent or tolerate, got 'sometimes'"):
        RateRegressionTest(0.05, bursts="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"canary_requests": 1e308}, r"canary_requests is more than 1e\+15 \(1e\+308\): a wrong column, not a count"),
        ({"canary_requests": 10**400}, r"canary_requests is more than 1e\+15 \(10000000000000000000…\)"),
        ({"baseline_events": math.nan}, "baseline_events must be a finite count of at least 0, got nan"),
        ({"canary_events": True}, "canary_events must be a finite count of at least 0, got True"),
    ],
)
def test_counts_beyond_any_traffic_are_refused_and_change_nothing(counts: dict[str, float], message: str) -> None:
    test = RateRegressionTest(0.05)
    good = {"canary_requests": 100.0, "canary_events": 3.0, "baseline_requests": 900.0, "baseline_events": 9.0}
    with pytest.raises(JudgeInputError, match=message):
        test.update(**(good | counts))
    after = test.update(**good)
    assert after == RateRegressionTest(0.05).update(**good)


def test_numpy_numbers_are_counts_and_alphas() -> None:
    numpy_counts = RateRegressionTest(np.float32(0.05)).update(
        canary_requests=np.int64(1000),
        canary_events=np.int64(30),
        baseline_requests=np.float32(9000),
        baseline_events=np.int64(90),
    )
    plain = RateRegressionTest(0.05).update(
        canary_requests=1000, canary_events=30, baseline_requests=9000, baseline_events=90
    )
    assert (numpy_counts.decision, numpy_counts.p_value) == (plain.decision, plain.p_value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_ratio": "abc"}, "min_ratio must be at least 1 and at most 10, got 'abc'"),
        ({"min_ratio": None}, "min_ratio must be at least 1 and at most 10, got None"),
        ({"min_ratio": 0.5}, "min_ratio must be at least 1 and at most 10, got 0.5"),
        ({"min_ratio": 10.5}, "min_ratio must be at least 1 and at most 10, got 10.5"),
        ({"min_ratio": 19.99}, "min_ratio must be at least 1 and at most 10, got 19.99"),
        ({"prior_scale": 0}, r"prior_scale must be between 0.1 and 10 \(a scale of log ratios\), got 0"),
        ({"prior_scale": "x"}, r"prior_scale must be between 0.1 and 10 \(a scale of log ratios\), got 'x'"),
        ({"prior_scale": 1e200}, r"prior_scale must be between 0.1 and 10 \(a scale of log ratios\), got 1e\+200"),
        ({"prior_scale": 1e-200}, r"prior_scale must be between 0.1 and 10 \(a scale of log ratios\), got 1e-200"),
    ],
)
def test_settings_that_are_not_numbers_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(JudgeInputError, match=message):
        RateRegressionTest(0.05, **settings)  # type: ignore[arg-type]


def test_an_alpha_below_float_reciprocals_still_has_a_threshold_it_can_reach() -> None:
    # 1/α overflows below α ≈ 5.6e-309; −log α does not.
    assert RateRegressionTest(1e-310).threshold == pytest.approx(713.8, abs=0.1)


def test_an_open_ended_interval_reads_as_infinity() -> None:
    verdict = RateRegressionTest(0.01).update(
        canary_requests=100, canary_events=3, baseline_requests=100, baseline_events=0
    )
    assert verdict.interval is not None and math.isinf(verdict.interval[1])
    assert "–∞)" in verdict.reason


def test_the_json_of_a_verdict_keeps_six_significant_digits_of_a_tiny_p_value() -> None:
    # At alpha 1e-7 a p-value of 2.7e-07 is "continue": written as 0.0 (six decimals) it read as a fail.
    verdict = Verdict("continue", 2.7123456e-7, 1e-7, 1.8, (1.2e-8, 3.0), 1000.0, 9000.0, "no regression shown")
    doc = verdict.to_json()
    assert (doc["p_value"], doc["estimate"], doc["interval"]) == (2.71235e-07, 1.8, [1.2e-08, 3.0])
    assert Verdict("fail", 2.3e-18, 0.01, None, (0.5, math.inf), 1.0, 1.0, "").to_json()["p_value"] == 2.3e-18
    assert Verdict("fail", 2.3e-18, 0.01, None, (0.5, math.inf), 1.0, 1.0, "").to_json()["interval"] == [0.5, None]


def test_overwhelming_evidence_reports_the_smallest_p_value_not_zero() -> None:
    # exp(-evidence) underflowed to 0.0 beyond a log-evidence of about 745: "p = 0 ≤ α", which no
    # test can show; the bands method already stopped at e^-690.
    verdict = RateRegressionTest(alpha=0.05).update(
        canary_requests=1e12, canary_events=5e11, baseline_requests=1e12, baseline_events=1e9
    )
    assert verdict.decision == "fail"
    assert verdict.p_value == math.exp(-690)
    assert "p = 2.2e-300 ≤ α 0.05" in verdict.reason
