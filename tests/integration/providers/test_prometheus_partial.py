"""A real Prometheus that can read only part of its data answers ``success`` with ``warnings``.

Prometheus computes a query from the stores it could read and says what it could not in
``warnings``: a ``remote_read`` store that is down (as a Thanos store out of reach does for Thanos
Query's partial responses). The canary's failures may be in the part it could not read, so such an
answer is a failed sample carrying the warnings, never a value that passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.schema.service import Metric
from tests.support.exposition import metrics_endpoint
from tests.support.processes import free_port

from .conftest import start_prometheus, wait_for_series

EXPOSITION = (
    "# TYPE http_requests_total counter\n"
    'http_requests_total{app="checkout",version="2.4.0",code="200"} 93\n'
    'http_requests_total{app="checkout",version="2.4.0",code="500"} 7\n'
    "# TYPE http_request_duration_seconds histogram\n"
    'http_request_duration_seconds_bucket{version="2.4.0",le="0.1"} 90\n'
    'http_request_duration_seconds_bucket{version="2.4.0",le="+Inf"} 100\n'
    'http_request_duration_seconds_count{version="2.4.0"} 100\n'
    'http_request_duration_seconds_sum{version="2.4.0"} 9\n'
)
ERRORS = Metric(kind="count", query='sum(http_requests_total{app="checkout",version="{{version}}",code="500"})')
LATENCY = Metric(
    kind="latency",
    query="vector(0.1)",
    buckets_query='sum by (le) (http_request_duration_seconds_bucket{version="{{version}}"})',
)


def test_an_answer_with_warnings_is_a_failed_sample(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    dead = f"http://127.0.0.1:{free_port()}/api/v1/read"  # a remote store nothing answers for
    with metrics_endpoint(lambda: EXPOSITION) as target:
        server = start_prometheus(tmp_path, [target], request, extra_config=f"remote_read:\n  - url: {dead}\n")
        wait_for_series(server, 'http_requests_total{code="500"}', count=1)
        provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=server.url, timeout=5))
        # Not from storage: no warnings, a value.
        assert provider.query("one", Metric(kind="gauge", query="vector(1)"), "2.4.0", 60) == Sample(1.0)
        sample = provider.query("errors", ERRORS, "2.4.0", 60)
        print(sample)
        assert sample.value is None
        assert sample.error == (
            "metric 'errors': Prometheus answered in part (warnings: remote_read: error sending request: "
            f'Post "{dead}": dial tcp {dead.split("/")[2]}: connect: connection refused)'
        )
        buckets = provider.query("latency", LATENCY, "2.4.0", 60)
        assert buckets.error is not None
        assert buckets.error.startswith("metric 'latency' buckets_query: Prometheus answered in part (warnings: ")
