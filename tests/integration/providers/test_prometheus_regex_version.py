"""A real Prometheus, and a version with regular-expression syntax in it (``1.0.0+b``).

Inside ``version=~"{{version}}"`` the version was filled in as written: Prometheus read ``+`` as
"one or more" and matched nothing, so the canary had no data however it failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.schema.service import Metric
from tests.support.exposition import metrics_endpoint

from .conftest import start_prometheus, wait_for_series

EXPOSITION = (
    "# TYPE http_requests_total counter\n"
    'http_requests_total{version="1.0.0+b",code="500"} 7\n'
    'http_requests_total{version="1.0.00b",code="500"} 1000\n'  # what the unescaped pattern matches
)


def test_a_version_inside_a_regex_matcher_matches_itself_only(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with metrics_endpoint(lambda: EXPOSITION) as target:
        server = start_prometheus(tmp_path, [target], request)
        wait_for_series(server, "http_requests_total", count=2)
        provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=server.url, timeout=5))
        for query in (
            'sum(http_requests_total{version=~"{{version}}"})',
            "sum(http_requests_total{version=~`{{version}}`})",
        ):
            assert provider.query("errors", Metric(kind="count", query=query), "1.0.0+b", 60) == Sample(7.0), query
