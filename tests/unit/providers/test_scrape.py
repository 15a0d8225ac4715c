"""The scrape provider's maths on hand-made exposition text, with a simulated clock."""

from __future__ import annotations

import math

import httpx
import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import ScrapeProviderConfig, build_provider, metric_problem
from shiprail.providers.scrape import ScrapeProvider, bucket_quantile, parse_text
from shiprail.schema.service import Metric

CONFIG = ScrapeProviderConfig(
    type="scrape", stable_url="http://stable.test/metrics", canary_url="http://canary.test/metrics", timeout=2
)

ERROR_RATE = Metric(
    kind="error_rate",
    counter="http_requests_total",
    error_labels={"code": "5.."},
    labels={"version": "{{version}}"},
)
RATE = Metric(kind="rate", counter="http_requests_total", labels={"version": "{{version}}"})
COUNT = Metric(kind="count", counter="http_requests_total", labels={"version": "{{version}}"})
P99 = Metric(kind="latency", histogram="http_request_duration_seconds", quantile=0.99)
P50 = Metric(kind="latency", histogram="http_request_duration_seconds", quantile=0.5)
INFLIGHT = Metric(kind="gauge", gauge="inflight")


def exposition(version: str, ok: float, bad: float, buckets: dict[str, float], inflight: float = 3) -> str:
    lines = [
        "# HELP http_requests_total Requests served.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{version="{version}",code="200"}} {ok}',
        f'http_requests_total{{version="{version}",code="503"}} {bad}',
        "# HELP http_request_duration_seconds Time to answer.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for le, count in buckets.items():
        lines.append(f'http_request_duration_seconds_bucket{{version="{version}",le="{le}"}} {count}')
    lines += [
        f'http_request_duration_seconds_count{{version="{version}"}} {buckets["+Inf"]}',
        f'http_request_duration_seconds_sum{{version="{version}"}} 1.0',
        "# TYPE inflight gauge",
        f"inflight {inflight}",
    ]
    return "\n".join(lines) + "\n"


class Endpoints:
    """What each URL answers next; a string is the body, an exception is raised."""

    def __init__(self) -> None:
        self.next: dict[str, str | Exception] = {}
        self.reads: list[str] = []

    def __call__(self, url: str) -> str:
        self.reads.append(url)
        answer = self.next[url]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def endpoints() -> Endpoints:
    return Endpoints()


@pytest.fixture
def provider(clock: SimulatedClock, endpoints: Endpoints) -> ScrapeProvider:
    return ScrapeProvider(CONFIG, clock, stable="2.3.1", canary="2.4.0", fetch=endpoints)


BUCKETS0 = {"0.1": 0, "0.25": 0, "0.5": 0, "1": 0, "+Inf": 0}


def test_first_scrape_is_no_data_and_the_second_gives_the_error_rate(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 1000, 10, BUCKETS0)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 300) == Sample(None)
    clock.advance(60)
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 1180, 30, BUCKETS0)
    # 20 failures out of 200 requests in the minute.
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 300) == Sample(0.1, 200.0)
    assert provider.query("rate", RATE, "2.4.0", 300) == Sample(200 / 60, 200.0)
    assert provider.query("count", COUNT, "2.4.0", 300) == Sample(200.0, 200.0)
    # Queries at the same instant reuse the scrape rather than reading the endpoint again.
    assert endpoints.reads == [CONFIG.canary_url, CONFIG.canary_url]


def test_read_now_reads_both_versions_and_a_window_begins_there(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    endpoints.next = {
        CONFIG.canary_url: exposition("2.4.0", 1000, 10, BUCKETS0),
        CONFIG.stable_url: exposition("2.3.1", 9000, 9, BUCKETS0),
    }
    provider.read_now()  # the router confirmed a new weight
    assert sorted(endpoints.reads) == sorted([CONFIG.canary_url, CONFIG.stable_url])
    clock.advance(60)
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 1090, 20, BUCKETS0)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(0.1, 100.0)


def test_the_window_only_counts_scrapes_inside_it(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    for ok, bad in [(0, 0), (100, 100), (200, 100), (300, 100)]:  # failures stop after the first minute
        endpoints.next[CONFIG.canary_url] = exposition("2.4.0", ok, bad, BUCKETS0)
        assert provider.scrape("2.4.0") is None
        clock.advance(60)
    clock.advance(-60)  # back to the time of the last scrape
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 120) == Sample(0.0, 200.0)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 180) == Sample(100 / 400, 400.0)
    # A window that holds only the latest scrape cannot give a rate.
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 30) == Sample(None)


def test_a_counter_reset_counts_the_new_value_as_the_increase(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    for ok, bad in [(900, 90), (1000, 100), (40, 10), (140, 10)]:  # the process restarted after the second
        endpoints.next[CONFIG.canary_url] = exposition("2.4.0", ok, bad, BUCKETS0)
        provider.scrape("2.4.0")
        clock.advance(10)
    clock.advance(-10)
    # increases: ok 100 + 40 + 100 = 240, bad 10 + 10 + 0 = 20; total 260 over 30 s.
    sample = provider.query("error_rate", ERROR_RATE, "2.4.0", 60)
    assert sample.count == 260.0
    assert sample.value == pytest.approx(20 / 260)
    rate = provider.query("rate", RATE, "2.4.0", 60)
    assert rate.value == pytest.approx(260 / 30)


def test_a_series_that_appears_between_scrapes_starts_from_zero(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    first = '# TYPE http_requests_total counter\nhttp_requests_total{version="2.4.0",code="200"} 50\n'
    endpoints.next[CONFIG.canary_url] = first
    provider.scrape("2.4.0")
    clock.advance(15)
    second = first.replace("50", "95") + 'http_requests_total{version="2.4.0",code="500"} 5\n'
    endpoints.next[CONFIG.canary_url] = second
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(0.1, 50.0)


def test_no_requests_in_the_window_is_no_data_with_count_zero(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 7, 1, BUCKETS0)
    provider.scrape("2.4.0")
    clock.advance(30)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(None, 0.0)


def test_no_matching_series_is_no_data_for_an_error_rate_or_gauge_and_zero_for_a_rate_or_count(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    # The endpoint labels its series 2.4.0-rc1, not 2.4.0: no series matches `version: "{{version}}"`.
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0-rc1", 0, 0, BUCKETS0)
    provider.scrape("2.4.0")
    clock.advance(10)
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0-rc1", 100, 5, BUCKETS0)
    gauge = Metric(kind="gauge", gauge="inflight", labels={"version": "{{version}}"})
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(None, 0.0)
    assert provider.query("inflight", gauge, "2.4.0", 60) == Sample(None)
    # Counted events: nothing matching is a count (and a rate) of 0, as for a declared counter
    # never used yet; a trigger that must not pass on it gives min_samples.
    assert provider.query("rate", RATE, "2.4.0", 60) == Sample(0.0, 0.0)
    assert provider.query("count", COUNT, "2.4.0", 60) == Sample(0.0, 0.0)


def test_labels_select_series_and_the_version_placeholder_is_literal(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    # The endpoint also exposes another version's series (a shared exporter); only 2.4.0's count.
    def both(ok: float, other: float) -> str:
        return exposition("2.4.0", ok, 0, BUCKETS0) + f'http_requests_total{{version="2x4x0",code="200"}} {other}\n'

    endpoints.next[CONFIG.canary_url] = both(0, 0)
    provider.scrape("2.4.0")
    clock.advance(10)
    endpoints.next[CONFIG.canary_url] = both(10, 1000)
    assert provider.query("count", COUNT, "2.4.0", 60) == Sample(10.0, 10.0)


def test_latency_quantile_interpolates_inside_the_bucket(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    before = {"0.1": 100, "0.25": 100, "0.5": 100, "1": 100, "+Inf": 100}
    # 100 new observations: 50 ≤ 0.1 s, 30 in (0.1, 0.25], 20 in (0.25, 0.5].
    after = {"0.1": 150, "0.25": 180, "0.5": 200, "1": 200, "+Inf": 200}
    endpoints.next[CONFIG.stable_url] = exposition("2.3.1", 0, 0, before)
    provider.scrape("2.3.1")
    clock.advance(60)
    endpoints.next[CONFIG.stable_url] = exposition("2.3.1", 0, 0, after)
    # p99: rank 99 lies in (0.25, 0.5], 19 of its 20 observations in: 0.25 + 0.25 × 19/20.
    assert provider.query("p99", P99, "2.3.1", 300) == Sample(pytest.approx(0.4875), 100.0)
    # p50: rank 50 is the top of the first bucket, interpolated from 0: 0.1 × 50/50.
    assert provider.query("p50", P50, "2.3.1", 300) == Sample(pytest.approx(0.1), 100.0)


def test_gauge_needs_one_scrape(provider: ScrapeProvider, endpoints: Endpoints) -> None:
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 0, 0, BUCKETS0, inflight=7)
    assert provider.query("inflight", INFLIGHT, "2.4.0", 60) == Sample(7.0)


@pytest.mark.parametrize(
    ("buckets", "q", "expected"),
    [
        ([(0.1, 10), (0.5, 10), (math.inf, 10)], 0.5, 0.05),  # all in the first bucket, from 0
        ([(0.1, 0), (0.5, 10), (math.inf, 10)], 0.5, 0.3),  # middle of (0.1, 0.5]
        ([(0.1, 0), (0.5, 0), (math.inf, 10)], 0.99, 0.5),  # in +Inf: the highest finite bound
        ([(-1.0, 5), (0.5, 10), (math.inf, 10)], 0.1, -1.0),  # lowest bucket with a bound ≤ 0
        ([(0.5, 10), (0.1, 10), (math.inf, 10)], 0.5, 0.05),  # unsorted input is sorted
        ([(0.1, 6), (0.5, 5), (math.inf, 10)], 0.5, 0.1 * 5 / 6),  # non-monotonic counts are evened out
        ([(0.1, 10), (0.5, 10)], 0.5, None),  # no +Inf bucket
        ([(math.inf, 10)], 0.5, None),  # a single bucket
        ([(0.1, 0), (math.inf, 0)], 0.5, None),  # no observations
    ],
)
def test_bucket_quantile_follows_histogram_quantile(
    buckets: list[tuple[float, float]], q: float, expected: float | None
) -> None:
    got = bucket_quantile(q, buckets)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_scrape_failures_are_failed_samples(provider: ScrapeProvider, endpoints: Endpoints) -> None:
    request = httpx.Request("GET", CONFIG.canary_url)
    endpoints.next[CONFIG.canary_url] = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60).error == (
        "cannot reach the canary metrics endpoint http://canary.test/metrics: connection refused"
    )
    endpoints.next[CONFIG.canary_url] = httpx.HTTPStatusError(
        "boom", request=request, response=httpx.Response(404, request=request)
    )
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60).error == (
        "the canary metrics endpoint http://canary.test/metrics answered HTTP 404"
    )
    endpoints.next[CONFIG.canary_url] = "this is { not prometheus\n"
    error = provider.query("error_rate", ERROR_RATE, "2.4.0", 60).error
    assert error is not None and error.startswith("the canary metrics endpoint http://canary.test/metrics is not")
    assert provider.history["2.4.0"] == []


def test_unknown_version_and_misconfigured_metrics_fail_clearly(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    assert provider.query("e", ERROR_RATE, "9.9.9", 60).error == (
        "version '9.9.9' is not one of this release's versions (stable '2.3.1' and canary '2.4.0')"
    )
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 0, 0, BUCKETS0)
    assert provider.query("e", Metric(kind="error_rate"), "2.4.0", 60).error == (
        "metric 'e': the scrape provider needs `counter` for a metric of kind error_rate"
    )
    misspelt = Metric(kind="error_rate", counter="http_requests_totl", error_labels={"code": "5.."})
    assert provider.query("e", misspelt, "2.4.0", 60).error == (
        "metric 'e': the endpoint exposes no http_requests_totl samples"
    )
    # Failures default to the counter itself: without `errors` or `error_labels` every request is one.
    for everything in (
        Metric(kind="error_rate", counter="http_requests_total"),
        Metric(kind="ratio", counter="http_requests_total", errors="http_requests_total"),
    ):
        assert provider.query("e", everything, "2.4.0", 60).error == (
            f"metric 'e': the scrape provider needs `errors` (a counter of failures) or `error_labels` (e.g. "
            f'{{code: "5.."}}) for a metric of kind {everything.kind}: as written, every request of '
            "`http_requests_total` counts as a failure"
        )
        assert metric_problem(CONFIG, "e", everything) is not None
    assert "needs `quantile`" in (
        provider.query("p", Metric(kind="latency", histogram="http_request_duration_seconds"), "2.4.0", 60).error or ""
    )
    bad_regex = Metric(kind="count", counter="http_requests_total", labels={"code": "(5"})
    assert "not a regular expression" in (provider.query("c", bad_regex, "2.4.0", 60).error or "")


def test_parse_text_keys_samples_by_name_and_labels() -> None:
    samples = parse_text(exposition("2.4.0", 3, 1, BUCKETS0))
    assert samples[("http_requests_total", frozenset({("version", "2.4.0"), ("code", "503")}))] == 1.0
    assert samples[("inflight", frozenset())] == 3.0


def test_build_provider_needs_the_release_versions_for_scrape() -> None:
    clock = SimulatedClock()
    with pytest.raises(ValueError, match="stable and canary versions"):
        build_provider(CONFIG, clock=clock)
    provider = build_provider(CONFIG, clock=clock, stable="2.3.1", canary="2.4.0")
    assert isinstance(provider, ScrapeProvider)
    assert provider.urls == {"2.3.1": CONFIG.stable_url, "2.4.0": CONFIG.canary_url}


def test_nan_and_inf_in_the_exposition_are_no_data(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    # A NaN gauge, or a NaN counter, summed into the value made a NaN sample, which judged as pass.
    endpoints.next[CONFIG.canary_url] = "# TYPE inflight gauge\ninflight NaN\n"
    assert provider.query("inflight", INFLIGHT, "2.4.0", 300) == Sample(None)
    clock.advance(10)
    endpoints.next[CONFIG.canary_url] = "# TYPE inflight gauge\ninflight +Inf\n"
    assert provider.query("inflight", INFLIGHT, "2.4.0", 300) == Sample(None)
    body = '# TYPE http_requests_total counter\nhttp_requests_total{version="2.4.0",code="200"} %s\n'
    body += 'http_requests_total{version="2.4.0",code="500"} NaN\n'
    for ok in (10, 20):
        clock.advance(10)
        endpoints.next[CONFIG.canary_url] = body % ok
        provider.scrape("2.4.0")
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 300) == Sample(None)
    assert provider.query("count", COUNT, "2.4.0", 300) == Sample(None)


def test_a_declared_counter_or_histogram_without_series_yet_is_zero_not_a_misspelt_name(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    # What prometheus_client exposes for a labelled counter and histogram never used yet: their
    # HELP and TYPE lines only. A healthy canary that has never failed a request was "failed"
    # (the endpoint exposes no http_errors_total samples) at every analysis, so the release paused.
    errors = Metric(kind="error_rate", counter="http_requests_total", errors="http_errors_total")
    latency = Metric(kind="latency", histogram="lat_seconds", quantile=0.99)
    body = (
        "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n"
        'http_requests_total{code="200"} %d\n'
        "# HELP http_errors_total Failures.\n# TYPE http_errors_total counter\n"
        "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
    )
    endpoints.next[CONFIG.canary_url] = body % 100
    provider.scrape("2.4.0")
    clock.advance(30)
    endpoints.next[CONFIG.canary_url] = body % 150
    assert provider.query("errors", errors, "2.4.0", 60) == Sample(0.0, 50.0)
    assert provider.query("latency", latency, "2.4.0", 60) == Sample(None, 0.0)
    # A name nothing declares is still a misspelling.
    typo = Metric(kind="error_rate", counter="http_requests_total", errors="http_error_total")
    assert provider.query("errors", typo, "2.4.0", 60).error == (
        "metric 'errors': the endpoint exposes no http_error_total samples"
    )


def test_reads_older_than_the_longest_window_are_not_kept(
    provider: ScrapeProvider, clock: SimulatedClock, endpoints: Endpoints
) -> None:
    # Every read holds every sample of the endpoint, and all were kept for 24 h: a 2,000-series
    # endpoint read once a minute grew the controller to 5.7 GB over a 24-hour verify window.
    for minute in range(24 * 60):
        endpoints.next[CONFIG.canary_url] = exposition("2.4.0", minute * 100, minute, BUCKETS0)
        provider.query("error_rate", ERROR_RATE, "2.4.0", 300)
        clock.advance(60)
    assert len(provider.history["2.4.0"]) <= 300 // 60 + 2
    clock.advance(-60)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 300) == Sample(pytest.approx(5 / 505), 505.0)
    # A query after a long gap (a paused release) still reaches back to the previous read.
    clock.advance(3600)
    endpoints.next[CONFIG.canary_url] = exposition("2.4.0", 24 * 60 * 100 + 1000, 24 * 60 + 10, BUCKETS0)
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 3601) == Sample(pytest.approx(11 / 1111), 1111.0)
