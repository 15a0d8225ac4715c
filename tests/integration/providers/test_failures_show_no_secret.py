"""What a failed query says goes into the analysis evidence, the audit trail, notifications and
``plan validate --live``: it names the endpoint without the credentials its url may hold (a
``user:password@`` of a release stored before they were refused, a token in the query string).
Against a real local server on 127.0.0.1 that fails every request, and a port nothing listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import ScrapeProviderConfig, WebProviderConfig
from shiprail.providers.scrape import ScrapeProvider
from shiprail.providers.web import WebProvider
from shiprail.schema.service import Metric
from tests.support.exposition import local_server
from tests.support.processes import free_port


class Failing(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"boom")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with local_server(Failing) as url:
        yield int(url.rsplit(":", 1)[1])


def web(url: str) -> Sample:
    return WebProvider(WebProviderConfig(type="web", url=url, timeout=2)).query(
        "errors", Metric(kind="gauge", path="rate"), "2.4.0", 60
    )


def scrape(url: str) -> Sample:
    config = ScrapeProviderConfig(type="scrape", stable_url=url, canary_url=url.replace("/m", "/c"), timeout=2)
    provider = ScrapeProvider(config, SimulatedClock(), stable="2.3.1", canary="2.4.0")
    return provider.query("errors", Metric(kind="gauge", gauge="inflight"), "2.3.1", 60)


def test_a_failing_web_endpoint_is_named_without_its_credentials(port: int) -> None:
    url = f"http://admin:s3cret@127.0.0.1:{port}/v/{{{{version}}}}?token=tok-4f1e"
    assert web(url) == Sample.failed(f"the JSON endpoint http://127.0.0.1:{port}/v/2.4.0 answered HTTP 500: boom")
    closed = free_port()
    assert web(f"http://admin:s3cret@127.0.0.1:{closed}/v?token=tok-4f1e") == Sample.failed(
        f"cannot reach the JSON endpoint http://127.0.0.1:{closed}/v: connection refused"
    )


def test_a_failing_scrape_endpoint_is_named_without_its_credentials(port: int) -> None:
    assert scrape(f"http://admin:s3cret@127.0.0.1:{port}/m?token=tok-4f1e") == Sample.failed(
        f"the stable metrics endpoint http://127.0.0.1:{port}/m answered HTTP 500"
    )
    closed = free_port()
    assert scrape(f"http://admin:s3cret@127.0.0.1:{closed}/m?token=tok-4f1e") == Sample.failed(
        f"cannot reach the stable metrics endpoint http://127.0.0.1:{closed}/m: connection refused"
    )
