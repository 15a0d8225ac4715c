"""A contract's regression trigger: increments from samples, verdicts from every increment so far."""

from __future__ import annotations

import math

import pytest

from shiprail.domain.contract import Sample
from shiprail.judges.base import JudgeInputError
from shiprail.judges.contract import Increment, Replay, increment_of, judge_regression, replayed
from shiprail.schema.plan import Regression, Trigger


def trigger(**kw: object) -> Trigger:
    fields: dict[str, object] = {"name": "errors", "metric": "error_rate", "regression": Regression(alpha=0.01)}
    return Trigger(**(fields | kw))  # type: ignore[arg-type]


def test_an_error_rate_sample_becomes_requests_and_errors() -> None:
    assert increment_of("error_rate", Sample(0.02, 500), Sample(0.001, 4500)) == Increment(500, 4500, 10, 4.5)
    assert increment_of("error_rate", Sample(None, 0), Sample(0.001, 1000)) == Increment(0, 1000, 0, 1)


def test_what_cannot_become_an_increment_says_why() -> None:
    assert increment_of("error_rate", Sample(0.02), Sample(0.01, 10)) == (
        "canary: the provider gives no request count (e.g. a prometheus `count_query`); "
        "the regression test needs counts"
    )
    assert increment_of("error_rate", Sample.failed("timeout"), Sample(0.01, 10)) == "canary: provider error: timeout"
    assert increment_of("latency", Sample(0.2, 10), Sample(0.1, 10)) == (
        "the provider gives no histogram buckets for this metric; the regression test compares buckets"
    )


def test_increments_survive_json_with_an_infinite_bound() -> None:
    inc = Increment(3, 7, canary_buckets=((0.1, 1.0), (math.inf, 3.0)), baseline_buckets=((0.1, 5.0), (math.inf, 7.0)))
    data = inc.to_json()
    assert data["canary_buckets"] == [[0.1, 1.0], [None, 3.0]]
    assert Increment.from_json(data) == inc
    rates = Increment(100, 900, 5, 10)
    assert Increment.from_json(rates.to_json()) == rates


def test_verdicts_pass_fail_and_inconclusive() -> None:
    healthy = [Increment(100, 900, 1, 9)] * 5
    result, verdict = judge_regression(trigger(), "error_rate", healthy[:-1], healthy[-1])
    assert result.verdict == "pass"
    assert verdict is not None and result.value == verdict.p_value and result.threshold == 0.01
    assert result.reason.startswith("no regression shown yet: canary 1.000% vs baseline 1.000%")

    bad = [Increment(100, 900, 20, 9)] * 5
    result, verdict = judge_regression(trigger(), "error_rate", bad[:-1], bad[-1])
    assert result.verdict == "fail"
    assert result.reason.startswith("canary worse than baseline: canary 20.000% vs baseline 1.000%")

    quiet, _ = judge_regression(trigger(), "error_rate", healthy, Increment(0, 900, 0, 9))
    assert (quiet.verdict, quiet.reason) == ("inconclusive", "canary: no requests since the last analysis")

    few, _ = judge_regression(trigger(min_samples=1000), "error_rate", [], Increment(100, 900, 1, 9))
    assert (few.verdict, few.reason) == (
        "inconclusive",
        "canary: 100 requests so far, fewer than the 1000 required",
    )

    wrong, _ = judge_regression(trigger(), "count", [], Increment(100, 900, 1, 9))
    assert wrong.reason == "a regression test judges error_rate, ratio and latency metrics, not count"


def test_a_trigger_that_tolerates_bursts_needs_more_than_one_analysis() -> None:
    bad = Increment(100, 900, 20, 9)
    plain, _ = judge_regression(trigger(), "error_rate", [], bad)
    assert plain.verdict == "fail"
    tolerant = trigger(regression=Regression(alpha=0.01, bursts="tolerate"))
    verdicts = [judge_regression(tolerant, "error_rate", [bad] * n, bad)[0].verdict for n in range(5)]
    assert verdicts == ["pass", "pass", "pass", "fail", "fail"]  # log(1/0.01) = 4.6 needs 4 capped updates


def test_latency_increments_are_summed_into_cumulative_buckets() -> None:
    slow = Increment(
        100, 900, canary_buckets=((0.1, 10.0), (math.inf, 100.0)), baseline_buckets=((0.1, 850.0), (math.inf, 900.0))
    )
    result, verdict = judge_regression(trigger(metric="latency_p99"), "latency", [slow] * 3, slow)
    assert result.verdict == "fail"
    assert verdict is not None and verdict.canary_samples == 400 and verdict.baseline_samples == 3600


def test_a_shrinking_count_is_inconclusive_not_a_crash() -> None:
    result, _ = judge_regression(trigger(), "error_rate", [Increment(-5, 900, 0, 9)], Increment(100, 900, 1, 9))
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("regression: canary_requests must be a finite count of at least 0")


@pytest.mark.parametrize("kind", ["error_rate", "ratio"])
def test_rate_kinds_are_judged(kind: str) -> None:
    result, _ = judge_regression(trigger(), kind, [], Increment(100, 900, 1, 9))
    assert result.verdict == "pass"


def _varied(n: int, latency: bool) -> list[Increment]:
    """``n`` increments that differ from one another (a canary that degrades as it goes)."""
    out = []
    for i in range(n):
        if latency:
            fast_c, fast_b = 90.0 - i, 900.0
            out.append(
                Increment(
                    100,
                    1000,
                    canary_buckets=((0.1, fast_c), (0.5, 99.0), (math.inf, 100.0)),
                    baseline_buckets=((0.1, fast_b), (0.5, 995.0), (math.inf, 1000.0)),
                )
            )
        else:
            out.append(Increment(100 + i, 900, 1 + i % 3, 9))
    return out


@pytest.mark.parametrize(("kind", "latency"), [("error_rate", False), ("latency", True)])
def test_a_replay_fed_across_analyses_judges_as_one_fed_at_once(kind: str, latency: bool) -> None:
    increments = _varied(12, latency)
    kept = Replay(kind, trigger(metric=kind))
    for i, now in enumerate(increments):
        # Each analysis judges a copy of the kept test, then the kept test takes the stored increment.
        result, verdict = judge_regression(trigger(metric=kind), kind, kept, now)
        fresh, fresh_verdict = judge_regression(trigger(metric=kind), kind, increments[:i], now)
        assert result == fresh
        assert (verdict and verdict.to_json()) == (fresh_verdict and fresh_verdict.to_json())
        assert kept.fed == i
        kept.feed(now)
    at_once = replayed(kind, trigger(metric=kind), increments).verdict
    assert kept.verdict is not None and at_once is not None
    assert kept.verdict.to_json() == at_once.to_json()


def test_an_increment_the_test_refuses_breaks_the_replay_for_good() -> None:
    kept = Replay("error_rate", trigger())
    kept.feed(Increment(100, 900, 1, 9))
    with pytest.raises(JudgeInputError, match="canary_requests") as first:
        kept.feed(Increment(-500, 900, 0, 9))
    with pytest.raises(JudgeInputError) as again:
        kept.feed(Increment(100, 900, 1, 9))
    assert str(again.value) == str(first.value)
    result, _ = judge_regression(trigger(), "error_rate", kept, Increment(100, 900, 1, 9))
    fresh, _ = judge_regression(
        trigger(), "error_rate", [Increment(100, 900, 1, 9), Increment(-500, 900, 0, 9)], Increment(100, 900, 1, 9)
    )
    assert result == fresh
    assert result.verdict == "inconclusive" and result.reason == f"regression: {first.value}"


def test_histograms_without_a_shared_bound_are_inconclusive_not_pass() -> None:
    # The canary changed its buckets: every request of the canary is slower than 0.2 s, but with no
    # finite bound in common nothing can be compared, and the verdict was "pass" at every analysis.
    trig = Trigger(metric="latency_p99", regression=Regression(alpha=0.05))
    canary = Sample(0.2, 1000, buckets=((0.2, 0.0), (math.inf, 1000.0)))
    baseline = Sample(0.1, 1000, buckets=((0.1, 990.0), (0.5, 1000.0), (math.inf, 1000.0)))
    history: list[Increment] = []
    for _ in range(5):
        now = increment_of("latency", canary, baseline)
        assert isinstance(now, Increment)
        result, _ = judge_regression(trig, "latency", history, now)
        assert result.verdict == "inconclusive"
        assert "share no finite bucket bound (canary le 0.2, baseline le 0.1, 0.5)" in result.reason
        history.append(now)


INF = math.inf


def _lat(canary: tuple[tuple[float, float], ...], n: float = 100) -> Increment:
    """An analysis where the canary reports ``canary`` and the baseline, alike, 9× the requests."""
    full = ((0.1, 0.5 * 9 * n), (0.5, 0.9 * 9 * n), (INF, 9 * n))
    return Increment(n, 9 * n, canary_buckets=canary, baseline_buckets=full)


def test_a_bucket_bound_that_stops_arriving_is_inconclusive_never_a_false_fail() -> None:
    # Identical versions; then the canary's le=0.1 series goes stale. Summed as before, its frozen
    # count read as "no request that fast any more" and failed a healthy canary (p = 6e-06).
    same = _lat(((0.1, 50.0), (0.5, 90.0), (INF, 100.0)))
    lost = _lat(((0.5, 90.0), (INF, 100.0)))
    history = [same] * 5
    for _ in range(3):
        result, verdict = judge_regression(trigger(metric="latency_p99"), "latency", history, lost)
        assert (result.verdict, verdict) == ("inconclusive", None)
        assert result.reason == (
            "regression: canary buckets changed (le 0.1 no longer comes); the test compares the same buckets "
            "throughout a release"
        )
        history.append(lost)
    # A bound that appears is refused alike, and so are a missing +Inf and a bound given twice.
    more = _lat(((0.1, 50.0), (0.25, 70.0), (0.5, 90.0), (INF, 100.0)))
    assert judge_regression(trigger(metric="latency_p99"), "latency", [same], more)[0].reason == (
        "regression: canary buckets changed (le 0.25 is new); the test compares the same buckets throughout a release"
    )
    no_inf = _lat(((0.1, 50.0), (0.5, 90.0)))
    assert judge_regression(trigger(metric="latency_p99"), "latency", [same], no_inf)[0].reason == (
        "regression: canary buckets: no +Inf bucket, so the requests they count are unknown"
    )
    twice = _lat(((0.1, 50.0), (0.1, 50.0), (0.5, 90.0), (INF, 100.0)))
    assert judge_regression(trigger(metric="latency_p99"), "latency", [], twice)[0].reason == (
        "regression: canary buckets: one bound (le) appears twice in one analysis"
    )


def test_a_refused_increment_breaks_the_replay_and_adds_nothing() -> None:
    same = _lat(((0.1, 50.0), (0.5, 90.0), (INF, 100.0)))
    replay = replayed("latency", trigger(metric="latency_p99"), [same, same])
    before = (dict(replay.sums.canary), dict(replay.sums.baseline), replay.sums.counts)
    with pytest.raises(JudgeInputError, match=r"le 0\.1 no longer comes"):
        replay.feed(_lat(((0.5, 90.0), (INF, 100.0))))
    assert (dict(replay.sums.canary), dict(replay.sums.baseline), replay.sums.counts) == before
    with pytest.raises(JudgeInputError, match=r"le 0\.1 no longer comes"):
        replay.feed(same)  # broken for good, as a fresh replay of the stored increments would be


def test_a_canary_restart_seen_by_some_bucket_series_only_leaves_one_window_out() -> None:
    from shiprail.clock import SimulatedClock
    from shiprail.providers.scrape import ScrapeProvider
    from tests.unit.providers.test_scrape import CONFIG, P99, Endpoints, exposition

    # The canary restarts between two reads and, still cold, answers 70 requests, 35 of them within
    # 0.1 s. Before it died it had answered 60, 54 within 0.1 s: the read sees le=0.1 go down (a
    # reset: +35) but +Inf go up (+10), so the window's buckets are not cumulative. Handed to the
    # test, they were refused and stored, leaving the trigger inconclusive at every later analysis
    # of the release (and on_no_data paused it for good). Now that one window is left out.
    clock, endpoints = SimulatedClock(), Endpoints()
    provider = ScrapeProvider(CONFIG, clock, stable="2.3.1", canary="2.4.0", fetch=endpoints)
    before = {"0.1": 54, "0.25": 59, "0.5": 60, "1": 60, "+Inf": 60}
    reads = [before, {"0.1": 35, "0.25": 69, "0.5": 70, "1": 70, "+Inf": 70}]
    reads += [{le: count + 60 * i for le, count in reads[1].items()} for i in range(1, 5)]
    history: list[Increment] = []
    seen = []
    for i, canary in enumerate(reads):
        n = 600.0 * (i + 1)
        baseline = {"0.1": 0.9 * n, "0.25": 0.99 * n, "0.5": n, "1": n, "+Inf": n}
        endpoints.next = {
            CONFIG.canary_url: exposition("2.4.0", canary["+Inf"], 0, canary),
            CONFIG.stable_url: exposition("2.3.1", n, 0, baseline),
        }
        now = increment_of("latency", provider.query("p99", P99, "2.4.0", 60), provider.query("p99", P99, "2.3.1", 60))
        clock.advance(60)
        result, _ = judge_regression(trigger(metric="latency_p99"), "latency", history, now)
        seen.append((result.verdict, result.reason if result.verdict == "inconclusive" else ""))
        if isinstance(now, Increment):
            history.append(now)
    assert (
        seen
        == [
            ("inconclusive", "canary: no data since the previous analysis"),  # the first read: rates need two
            (
                "inconclusive",
                "canary: its histogram buckets fall as the bound rises (le 0.25: 10 after le 0.1: 35), a restart "
                "seen by some bucket series only; this window is left out",
            ),
        ]
        + [("pass", "")] * 4
    )


@pytest.mark.parametrize("kind", ["error_rate", "latency"])
def test_a_window_without_data_is_reported_as_no_data_not_as_a_provider_that_cannot_count(kind: str) -> None:
    from shiprail.clock import SimulatedClock
    from shiprail.providers.scrape import ScrapeProvider
    from tests.unit.providers.test_scrape import BUCKETS0, CONFIG, ERROR_RATE, P99, Endpoints, exposition

    # The scrape provider's first read of a release (rates need two), or Prometheus' empty vector
    # for a version with no series yet: the provider counts, it just has nothing yet. The reason
    # said "the provider gives no request count (e.g. a prometheus `count_query`)", or "… no
    # histogram buckets for this metric", sending people to fix a service file that was right.
    endpoints = Endpoints()
    provider = ScrapeProvider(CONFIG, SimulatedClock(), stable="2.3.1", canary="2.4.0", fetch=endpoints)
    endpoints.next = {
        CONFIG.canary_url: exposition("2.4.0", 10, 0, BUCKETS0),
        CONFIG.stable_url: exposition("2.3.1", 90, 1, BUCKETS0),
    }
    metric = P99 if kind == "latency" else ERROR_RATE
    canary, baseline = (provider.query("m", metric, v, 60) for v in ("2.4.0", "2.3.1"))
    now = increment_of(kind, canary, baseline)
    assert now == "canary: no data since the previous analysis"
    result, _ = judge_regression(trigger(metric="m"), kind, [], now)
    assert (result.verdict, result.reason) == ("inconclusive", "canary: no data since the previous analysis")
    assert increment_of(kind, Sample(0.01, 100, buckets=((0.1, 5.0), (INF, 100.0))), Sample(None)) == (
        "baseline: no data since the previous analysis"
    )
