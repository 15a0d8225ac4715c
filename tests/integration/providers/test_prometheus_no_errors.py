"""A healthy canary that has never failed a request, behind a real Prometheus.

Apps create a labelled counter's series on first use, so a version without a single 5xx exposes
no ``code="500"`` series at all (the sample service creates both codes up front and hides this).
The error-rate query ``shiprail init`` writes must then read 0, not no data: no data leaves the
trigger inconclusive and pauses every healthy release.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import yaml

from shiprail.providers import PrometheusProviderConfig
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.schema.service import Metric
from tests.support.exposition import metrics_endpoint

from .conftest import start_prometheus, wait_for_series

STARTED = time.monotonic()


def only_successes() -> str:
    """``/metrics``: 10 more 200s every second since the module loaded, and no other code."""
    served = 100 + int((time.monotonic() - STARTED) * 10)
    return (
        "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n"
        f'http_requests_total{{app="checkout",version="2.4.0",code="200"}} {served}\n'
    )


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    with metrics_endpoint(only_successes) as address:
        yield address


def init_metric(name: str) -> Metric:
    text = resources.files("shiprail").joinpath("templates/project/services/checkout.yaml").read_text("utf-8")
    return Metric.model_validate(yaml.safe_load(text)["metrics"][name])


def test_the_init_error_rate_of_a_canary_without_errors_is_zero(
    target: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_prometheus(tmp_path, [target], request)
    wait_for_series(server, "http_requests_total", count=1)
    time.sleep(3)  # a few scrapes, so rate() has samples to work on
    provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=server.url, timeout=5))
    try:
        sample = provider.query("error_rate", init_metric("error_rate"), "2.4.0", 60)
        assert sample.error is None
        assert sample.count is not None and sample.count > 0
        assert sample.value == 0.0
        # A version with no traffic at all is still no data, not 0.
        assert provider.query("error_rate", init_metric("error_rate"), "9.9.9", 60).value is None
    finally:
        provider.close()
