"""The prometheus provider against a real Prometheus scraping two real sample service versions.

Traffic: 200 requests to each version; the canary (2.4.0) answers 20% of them with a 500
(deterministically) and adds 0.3 s to every answer.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from shiprail.clock import WallClock
from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig, build_provider
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.schema.service import Metric

from .conftest import PrometheusServer, Version, start_prometheus, wait_for_series

REQUESTS = 200
ERROR_RATE = 0.2
LATENCY_S = 0.3
WINDOW_S = 120  # longer than the whole test: every request is inside it

METRICS = {
    "error_rate": Metric(
        kind="error_rate",
        query=(
            'sum(rate(http_requests_total{app="checkout",version="{{version}}",code=~"5.."}[{{window}}]))'
            ' / sum(rate(http_requests_total{app="checkout",version="{{version}}"}[{{window}}]))'
        ),
        count_query='sum(increase(http_requests_total{app="checkout",version="{{version}}"}[{{window}}]))',
    ),
    "latency_p99": Metric(
        kind="latency",
        unit="s",
        query=(
            "histogram_quantile(0.99, sum by (le) (rate("
            'http_request_duration_seconds_bucket{app="checkout",version="{{version}}"}[{{window}}])))'
        ),
    ),
}


def drive(version: Version, n: int) -> list[int]:
    """Send ``n`` requests (16 at a time); the status codes seen."""
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: client.get(f"{version.url}/checkout/{i}").status_code, range(n)))


@pytest.fixture(scope="module")
def prometheus(versions: dict[str, Version], module_tmp: Path, request: pytest.FixtureRequest) -> PrometheusServer:
    server = start_prometheus(module_tmp, [v.target for v in versions.values()], request)
    # The series exist at 0 before any traffic; wait until both versions' are scraped.
    wait_for_series(server, 'http_requests_total{code="200"}', count=2)
    versions["2.4.0"].inject(error_rate=ERROR_RATE, latency_s=LATENCY_S)
    with ThreadPoolExecutor(2) as pool:
        codes = dict(zip(versions, pool.map(lambda v: drive(v, REQUESTS), versions.values()), strict=True))
    assert codes["2.4.0"].count(500) == REQUESTS * ERROR_RATE
    assert codes["2.3.1"].count(500) == 0
    # Wait until Prometheus has scraped the final counts of both versions.
    wait_for_series(server, f'http_requests_total{{code="200"}} >= {REQUESTS * (1 - ERROR_RATE)}', count=2)
    time.sleep(1.5)  # one more scrape, so the last samples are not the only ones with the final values
    return server


@pytest.fixture(scope="module")
def provider(prometheus: PrometheusServer) -> PrometheusProvider:
    config = PrometheusProviderConfig(type="prometheus", url=prometheus.url, timeout=5)
    built = build_provider(config, clock=WallClock())
    assert isinstance(built, PrometheusProvider)
    return built


def test_canary_error_rate_is_the_injected_rate(provider: PrometheusProvider) -> None:
    sample = provider.query("error_rate", METRICS["error_rate"], "2.4.0", WINDOW_S)
    print(f"canary error_rate={sample.value} count={sample.count}")
    assert sample.error is None
    assert sample.value == pytest.approx(ERROR_RATE, abs=0.02)
    # increase() extrapolates a little past the last scrape; never below what was sent.
    assert sample.count is not None and REQUESTS * 0.95 <= sample.count <= REQUESTS * 1.3


def test_stable_error_rate_is_zero(provider: PrometheusProvider) -> None:
    sample = provider.query("error_rate", METRICS["error_rate"], "2.3.1", WINDOW_S)
    print(f"stable error_rate={sample.value} count={sample.count}")
    assert sample.value == 0.0
    assert sample.count is not None and sample.count >= REQUESTS * 0.95


def test_canary_p99_is_above_the_injected_latency_and_stable_is_fast(provider: PrometheusProvider) -> None:
    canary = provider.query("latency_p99", METRICS["latency_p99"], "2.4.0", WINDOW_S)
    stable = provider.query("latency_p99", METRICS["latency_p99"], "2.3.1", WINDOW_S)
    print(f"p99 canary={canary.value} stable={stable.value}")
    # 0.3 s answers land in the (0.25, 0.5] bucket: p99 = 0.25 + 0.25 × 0.99 = 0.4975 when all do.
    # Read against the buckets Prometheus holds (a loaded machine may push a few past 0.5 s), by
    # histogram_quantile's own rule: the p50 (0.375) or p90 (0.475) would not pass.
    buckets = provider.query("latency_p99", BUCKETS, "2.4.0", WINDOW_S).buckets
    assert buckets is not None
    assert canary.value == pytest.approx(quantile_of(0.99, buckets), abs=1e-9)
    assert canary.value is not None and 0.25 < canary.value <= 1.0
    assert stable.value is not None and stable.value < 0.1


def quantile_of(q: float, buckets: tuple[tuple[float, float], ...]) -> float:
    """PromQL's ``histogram_quantile`` of cumulative ``(le, count)`` buckets, +Inf last."""
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            # In the +Inf bucket PromQL answers the highest finite bound.
            return lower if le == float("inf") else lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    raise AssertionError("no bucket holds the rank")


def test_a_version_without_traffic_is_no_data(provider: PrometheusProvider) -> None:
    assert provider.query("error_rate", METRICS["error_rate"], "9.9.9", WINDOW_S) == Sample(None, None)


def test_a_bad_query_fails_with_prometheus_message(provider: PrometheusProvider) -> None:
    bad = Metric(kind="error_rate", query='sum(rate(http_requests_total{version="{{version}}"}[{{window}}])')
    sample = provider.query("error_rate", bad, "2.4.0", WINDOW_S)
    print(sample.error)
    assert sample.value is None
    assert sample.error is not None
    assert sample.error.startswith("metric 'error_rate': bad_data: invalid parameter \"query\": ")
    assert "parse error" in sample.error


def test_many_series_ask_to_aggregate(provider: PrometheusProvider) -> None:
    metric = Metric(kind="count", query='http_requests_total{version="{{version}}"}')
    assert provider.query("c", metric, "2.4.0", WINDOW_S).error == (
        "metric 'c': query returned 2 series; aggregate it to one (e.g. with sum)"
    )


def test_a_stopped_prometheus_is_a_connection_failure(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_prometheus(tmp_path, [], request)
    config = PrometheusProviderConfig(type="prometheus", url=server.url, timeout=2)
    provider = PrometheusProvider(config)
    up = Metric(kind="gauge", query="vector(1)")
    assert provider.query("one", up, "1", 60) == Sample(1.0)
    server.proc.terminate()
    server.proc.wait(timeout=10)
    sample = provider.query("one", up, "1", 60)
    print(sample.error)
    assert sample.error == f"metric 'one': cannot reach Prometheus at {server.url}: connection refused"


BUCKETS = Metric(
    kind="latency",
    query=METRICS["latency_p99"].query,
    buckets_query=(
        'sum by (le) (increase(http_request_duration_seconds_bucket{app="checkout",version="{{version}}"}[{{window}}]))'
    ),
)


def test_buckets_query_gives_each_versions_histogram_and_the_judge_finds_the_canary_slower(
    provider: PrometheusProvider,
) -> None:
    import math

    from shiprail.judges import LatencyRegressionTest

    canary = provider.query("latency_p99", BUCKETS, "2.4.0", WINDOW_S)
    stable = provider.query("latency_p99", BUCKETS, "2.3.1", WINDOW_S)
    assert canary.buckets is not None and stable.buckets is not None
    c, s = dict(canary.buckets), dict(stable.buckets)
    # Every canary answer took ≥ 0.3 s: none within 0.25 s; every stable one within 0.1 s.
    assert c[0.25] == 0 and REQUESTS * 0.95 <= c[math.inf] <= REQUESTS * 1.3
    assert s[0.1] == pytest.approx(s[math.inf]) and s[math.inf] >= REQUESTS * 0.95
    verdict = LatencyRegressionTest(0.01).update(canary_buckets=c, baseline_buckets=s)
    assert verdict.decision == "fail"
    assert verdict.reason.startswith("canary slower than baseline: slower than ")


def test_a_buckets_query_without_le_asks_to_aggregate_by_le(provider: PrometheusProvider) -> None:
    bad = Metric(
        kind="latency",
        query=METRICS["latency_p99"].query,
        buckets_query='sum(increase(http_request_duration_seconds_bucket{version="{{version}}"}[{{window}}]))',
    )
    sample = provider.query("latency_p99", bad, "2.4.0", WINDOW_S)
    assert sample.error == (
        "metric 'latency_p99' buckets_query: a buckets_query series has no le label; aggregate with sum by (le) (...)"
    )


def test_a_timeout_of_a_million_seconds_is_sent_as_a_duration_prometheus_reads(prometheus: PrometheusServer) -> None:
    # It was sent as "1e+06s": bad_data: invalid parameter "timeout": cannot parse "1e+06s" to a valid duration.
    provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=prometheus.url, timeout=1_000_000))
    assert provider.query("one", Metric(kind="gauge", query="vector(1)"), "2.4.0", 60) == Sample(1.0)
