"""The scrape provider reading two real sample service versions directly, on the wall clock."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from shiprail.clock import WallClock
from shiprail.domain.contract import Sample
from shiprail.providers import ScrapeProviderConfig, build_provider
from shiprail.providers.scrape import ScrapeProvider
from shiprail.schema.service import Metric

from .conftest import Version, free_port

ERROR_RATE = Metric(
    kind="error_rate",
    counter="http_requests_total",
    error_labels={"code": "5.."},
    labels={"version": "{{version}}", "app": "checkout"},
)
RATE = Metric(kind="rate", counter="http_requests_total", labels={"version": "{{version}}"})
P99 = Metric(kind="latency", histogram="http_request_duration_seconds", quantile=0.99)


def drive(version: Version, n: int) -> None:
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.get(f"{version.url}/x/{i}"), range(n)))


def test_scrape_measures_error_rate_rate_and_latency(versions: dict[str, Version]) -> None:
    stable, canary = versions["2.3.1"], versions["2.4.0"]
    canary.inject(error_rate=0.25, latency_s=0.2)
    stable.inject(error_rate=0.0, latency_s=0.0)
    config = ScrapeProviderConfig(
        type="scrape", stable_url=stable.metrics_url, canary_url=canary.metrics_url, timeout=5
    )
    provider = build_provider(config, clock=WallClock(), stable="2.3.1", canary="2.4.0")
    assert isinstance(provider, ScrapeProvider)

    # First scrape: nothing to take a rate over yet.
    assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(None)
    assert provider.query("error_rate", ERROR_RATE, "2.3.1", 60) == Sample(None)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda v_n: drive(*v_n), [(canary, 80), (stable, 120)]))
    time.sleep(max(0.0, 1.1 - (time.monotonic() - started)))  # the two scrapes at least a second apart

    canary_rate = provider.query("error_rate", ERROR_RATE, "2.4.0", 60)
    stable_rate = provider.query("error_rate", ERROR_RATE, "2.3.1", 60)
    canary_p99 = provider.query("p99", P99, "2.4.0", 60)
    stable_p99 = provider.query("p99", P99, "2.3.1", 60)
    throughput = provider.query("rate", RATE, "2.3.1", 60)
    print(f"canary {canary_rate} p99 {canary_p99}; stable {stable_rate} p99 {stable_p99}; rate {throughput}")
    assert canary_rate == Sample(0.25, 80.0)  # exactly: the sample service fails every 4th request
    assert stable_rate == Sample(0.0, 120.0)
    # All canary answers take 0.2 s and a little more: p99 interpolates in the (0.1, 0.25] bucket
    # (0.2485), or above it if a loaded machine pushed a few answers past 0.25 s.
    assert canary_p99.value is not None and 0.2 < canary_p99.value <= 1.0 and canary_p99.count == 80.0
    assert stable_p99.value is not None and stable_p99.value < 0.1 and stable_p99.count == 120.0
    # 120 requests over the time between the two scrapes (at least 1.1 s, well under 60 s).
    assert throughput.count == 120.0
    assert throughput.value is not None and 2 < throughput.value <= 120 / 1.1


def test_a_dead_endpoint_is_a_failed_sample(versions: dict[str, Version]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens there
    config = ScrapeProviderConfig(type="scrape", stable_url=versions["2.3.1"].metrics_url, canary_url=dead, timeout=2)
    provider = ScrapeProvider(config, WallClock(), stable="2.3.1", canary="2.4.0")
    sample = provider.query("error_rate", ERROR_RATE, "2.4.0", 60)
    assert sample.error == f"cannot reach the canary metrics endpoint {dead}: connection refused"


def test_a_window_as_long_as_the_analysis_interval_reaches_the_previous_analysis_read() -> None:
    # An analysis due every 60 s with a 60 s window: the controller starts it a little late, so
    # the previous analysis's read is 60.05 s old. It bounds the window; the canary failing half
    # its requests read no data at every analysis (a strict 60 s edge left one read in the window).
    from datetime import timedelta

    from shiprail.clock import SimulatedClock
    from tests.support.sample_service import SampleService

    with SampleService("2.3.1") as stable, SampleService("2.4.0") as canary:
        canary.inject(error_rate=0.5)
        clock = SimulatedClock()
        config = ScrapeProviderConfig(
            type="scrape", stable_url=stable.metrics_url, canary_url=canary.metrics_url, timeout=5
        )
        provider = ScrapeProvider(config, clock, stable="2.3.1", canary="2.4.0")
        assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(None)
        with httpx.Client(timeout=10) as client:
            for i in range(10):
                client.get(f"{canary.url}/x/{i}")
        clock.advance(timedelta(seconds=60.05))
        assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(0.5, 10.0)
        # A read a whole second and more past the window's start is outside it.
        clock.advance(timedelta(seconds=61.5))
        assert provider.query("error_rate", ERROR_RATE, "2.4.0", 60) == Sample(None)


def test_an_openmetrics_endpoint_whose_error_counter_has_no_series_yet_reads_zero_errors() -> None:
    # OpenMetrics names a counter's family in its TYPE line (`# TYPE http_errors counter`) and its
    # sample `http_errors_total`; a labelled counter never used yet has only those lines.
    from datetime import timedelta

    from prometheus_client import CollectorRegistry, Counter
    from prometheus_client.openmetrics.exposition import generate_latest

    from shiprail.clock import SimulatedClock
    from tests.support.exposition import metrics_endpoint

    registry = CollectorRegistry()
    requests = Counter("http_requests", "Requests served.", ["code"], registry=registry)
    Counter("http_errors", "Requests failed.", ["code"], registry=registry)
    errors = Metric(kind="error_rate", counter="http_requests_total", errors="http_errors_total")
    with metrics_endpoint(lambda: generate_latest(registry).decode()) as address:
        clock = SimulatedClock()
        url = f"http://{address}/metrics"
        config = ScrapeProviderConfig(type="scrape", stable_url=url, canary_url=url, timeout=5)
        provider = ScrapeProvider(config, clock, stable="2.3.1", canary="2.4.0")
        assert provider.query("error_rate", errors, "2.4.0", 60) == Sample(None)
        requests.labels("200").inc(10)
        clock.advance(timedelta(seconds=30))
        assert provider.query("error_rate", errors, "2.4.0", 60) == Sample(0.0, 10.0)
