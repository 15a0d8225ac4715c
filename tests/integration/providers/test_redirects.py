"""A provider's endpoint answering a redirect, against real servers on 127.0.0.1.

The providers do not follow redirects: one to another host would take the provider's credentials
there. But a redirect was read as an answer: its empty body was "not JSON" for the web provider,
"not Prometheus API JSON" for the prometheus one, and, parsed as an empty exposition, "the endpoint
exposes no inflight samples" (a misspelt name) for the scrape provider. Each now says it was
redirected, and where to, without the credentials the target's url may hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig, ScrapeProviderConfig, WebProviderConfig
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.providers.scrape import ScrapeProvider
from shiprail.providers.web import WebProvider
from shiprail.schema.service import Metric
from tests.support.exposition import local_server


class Elsewhere(BaseHTTPRequestHandler):
    """The host redirected to: counts the requests that reach it."""

    reached = 0

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        Elsewhere.reached += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[str]:
    with local_server(Elsewhere) as url:
        yield url.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def base(elsewhere: str) -> Iterator[str]:
    class Moved(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", elsewhere.replace("://", "://admin:s3cret@") + "/login?token=tok-4f1e")
            self.send_header("Content-Length", "0")
            self.end_headers()

    with local_server(Moved) as url:
        yield url


def test_no_provider_follows_a_redirect_and_each_says_where_it_points(base: str, elsewhere: str) -> None:
    env = {"TOKEN": "tok-4f1e"}
    moved = (
        f"answered HTTP 302, a redirect to {elsewhere}/login, which shiprail does not follow: give the URL it "
        "redirects to"
    )
    web = WebProvider(WebProviderConfig(type="web", url=f"{base}/v", bearer_token_env="TOKEN", timeout=2), env=env)
    assert web.query("inflight", Metric(kind="gauge", path="inflight"), "2.4.0", 60) == Sample.failed(
        f"the JSON endpoint {base}/v {moved}"
    )
    config = ScrapeProviderConfig(
        type="scrape", stable_url=f"{base}/a", canary_url=f"{base}/b", bearer_token_env="TOKEN", timeout=2
    )
    scrape = ScrapeProvider(config, SimulatedClock(), stable="2.3.1", canary="2.4.0", env=env)
    assert scrape.query("inflight", Metric(kind="gauge", gauge="inflight"), "2.4.0", 60) == Sample.failed(
        f"the canary metrics endpoint {base}/b {moved}"
    )
    prometheus = PrometheusProvider(
        PrometheusProviderConfig(type="prometheus", url=base, bearer_token_env="TOKEN", timeout=2), env=env
    )
    assert prometheus.query("inflight", Metric(kind="gauge", query="vector(1)"), "2.4.0", 60) == Sample.failed(
        f"metric 'inflight': Prometheus at {base} {moved}"
    )
    assert Elsewhere.reached == 0  # the token never went there


def test_a_redirect_to_a_port_no_url_can_hold_is_a_failed_sample_without_credentials() -> None:
    # It raised ValueError ("Port out of range 0-65535") out of every provider's query, whose
    # queries never raise: shown_url read the Location's port to show it.
    class Moved(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://admin:s3cret@localhost:99999/login?token=tok-4f1e")
            self.send_header("Content-Length", "0")
            self.end_headers()

    moved = (
        "answered HTTP 302, a redirect to http://localhost:99999/login, which shiprail does not follow: give the "
        "URL it redirects to"
    )
    with local_server(Moved) as base:
        web = WebProvider(WebProviderConfig(type="web", url=f"{base}/v", timeout=2), env={})
        assert web.query("inflight", Metric(kind="gauge", path="inflight"), "2.4.0", 60) == Sample.failed(
            f"the JSON endpoint {base}/v {moved}"
        )
        config = ScrapeProviderConfig(type="scrape", stable_url=f"{base}/a", canary_url=f"{base}/b", timeout=2)
        scrape = ScrapeProvider(config, SimulatedClock(), stable="2.3.1", canary="2.4.0", env={})
        assert scrape.query("inflight", Metric(kind="gauge", gauge="inflight"), "2.4.0", 60) == Sample.failed(
            f"the canary metrics endpoint {base}/b {moved}"
        )
        prometheus = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=base, timeout=2), env={})
        assert prometheus.query("inflight", Metric(kind="gauge", query="vector(1)"), "2.4.0", 60) == Sample.failed(
            f"metric 'inflight': Prometheus at {base} {moved}"
        )
