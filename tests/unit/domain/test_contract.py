"""Boundary semantics of trigger evaluation (documented in shiprail.domain.contract)."""

from __future__ import annotations

import math

import pytest

from shiprail.domain.contract import Sample, Streaks, judge
from shiprail.schema.plan import Regression, Trigger


def t(**kw: object) -> Trigger:
    return Trigger(name="x", metric="m", window=300, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "verdict"), [(0.0099, "pass"), (0.01, "pass"), (0.0101, "fail")])
def test_above_is_strict(value: float, verdict: str) -> None:
    assert judge(t(above=0.01), Sample(value, 1000)).verdict == verdict


@pytest.mark.parametrize(("value", "verdict"), [(99.0, "fail"), (100.0, "pass"), (101.0, "pass")])
def test_below_is_strict(value: float, verdict: str) -> None:
    assert judge(t(below=100), Sample(value, 1000)).verdict == verdict


def test_above_baseline_boundary_and_message() -> None:
    trig = t(above_baseline=2)
    at = judge(trig, Sample(0.4, 100), Sample(0.2, 100))
    assert (at.verdict, at.threshold) == ("pass", 0.4)
    over = judge(trig, Sample(0.41, 100), Sample(0.2, 100))
    assert over.verdict == "fail"
    assert over.reason == "0.41 above 2 × baseline 0.2 = 0.4"


def test_zero_baseline_fails_any_positive_canary() -> None:
    trig = t(above_baseline=2)
    assert judge(trig, Sample(0.001, 10), Sample(0.0, 10)).verdict == "fail"
    assert judge(trig, Sample(0.0, 10), Sample(0.0, 10)).verdict == "pass"


@pytest.mark.parametrize(
    ("canary", "baseline", "reason"),
    [
        (Sample(None), Sample(1.0, 10), "canary: no data"),
        (Sample.failed("connection refused"), Sample(1.0, 10), "canary: provider error: connection refused"),
        (Sample(0.5, 10), None, "baseline: not measured"),
        (Sample(0.5, 10), Sample(None), "baseline: no data"),
        (Sample(0.5, 10), Sample.failed("timeout"), "baseline: provider error: timeout"),
    ],
)
def test_missing_data_is_inconclusive_never_pass(canary: Sample, baseline: Sample | None, reason: str) -> None:
    result = judge(t(above_baseline=2), canary, baseline)
    assert (result.verdict, result.reason) == ("inconclusive", reason)


@pytest.mark.parametrize(("count", "verdict"), [(None, "inconclusive"), (199, "inconclusive"), (200, "fail")])
def test_min_samples_boundary(count: float | None, verdict: str) -> None:
    assert judge(t(above=0.01, min_samples=200), Sample(0.5, count)).verdict == verdict


def test_min_samples_message() -> None:
    r = judge(t(above=0.01, min_samples=200), Sample(0.5, 199))
    assert r.reason == "canary: 199 samples, fewer than the 200 required"
    one = judge(t(above=0.01, min_samples=3), Sample(0.5, 1))
    assert one.reason == "canary: 1 sample, fewer than the 3 required"


def test_regression_without_a_judge_is_inconclusive() -> None:
    r = judge(t(regression=Regression(alpha=0.01)), Sample(0.5, 1000), Sample(0.1, 1000))
    assert r.verdict == "inconclusive"


def test_one_failure_fails_without_consecutive() -> None:
    trig, streaks = t(above=1), Streaks()
    assert streaks.apply(trig, judge(trig, Sample(2, 1))).verdict == "fail"


def test_consecutive_needs_n_failures_in_a_row_and_a_pass_resets() -> None:
    trig, streaks = t(above=1, consecutive=3), Streaks()
    verdicts = []
    for value in (2, 2, 0.5, 2, 2, 2):
        verdicts.append(streaks.apply(trig, judge(trig, Sample(value, 1))).verdict)
    assert verdicts == ["inconclusive", "inconclusive", "pass", "inconclusive", "inconclusive", "fail"]
    assert streaks.counts == {"x": 3}


def test_held_failure_says_how_far_along_it_is() -> None:
    trig, streaks = t(above=1, consecutive=2), Streaks()
    r = streaks.apply(trig, judge(trig, Sample(2, 1)))
    assert r.reason == "2 above the limit 1 (failure 1 of 2 in a row)"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_that_is_not_finite_is_no_data_never_pass(value: float) -> None:
    # NaN compares false with every limit: judged as a number it passed `above` and `below` alike.
    for trig in (t(above=0.01), t(below=0.5), t(above_baseline=2)):
        result = judge(trig, Sample(value, 1000), Sample(0.1, 1000))
        assert (result.verdict, result.reason) == ("inconclusive", "canary: no data")
    assert judge(t(above_baseline=2), Sample(0.1, 1000), Sample(value, 1000)).verdict == "inconclusive"


def test_a_nan_count_does_not_meet_min_samples() -> None:
    result = judge(t(above=0.01, min_samples=200), Sample(0.0, math.nan))
    assert (result.verdict, result.reason) == ("inconclusive", "canary: nan samples, fewer than the 200 required")
