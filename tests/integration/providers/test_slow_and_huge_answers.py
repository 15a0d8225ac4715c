"""Every HTTP provider against a real local server that drips its answer, sends it late, or too much of it.

httpx's timeout bounds each step, not the answer: a server sending a line every half second
answered after 10 s whatever the provider's timeout (and held the controller that long), one
sending its headers and then its body each just inside the timeout took twice the timeout, and a
huge answer was read into memory whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shiprail.clock import SimulatedClock
from shiprail.domain.contract import Sample
from shiprail.providers import PrometheusProviderConfig, ScrapeProviderConfig, WebProviderConfig
from shiprail.providers.http import MAX_BODY_BYTES
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.providers.scrape import ScrapeProvider
from shiprail.providers.web import WebProvider
from shiprail.schema.service import Metric
from tests.support.exposition import local_server

DRIP_S = 10
LATE_S = 0.9  # each just inside the providers' 1 s timeout
DEEP = 100_000


class Misbehaving(BaseHTTPRequestHandler):
    """``/drip...``: a line every half second for 10 s; ``/late...``: the headers after 0.9 s, the
    body 0.9 s later; ``/huge...``: more than the providers read; ``/deep...``: JSON 100,000 arrays deep."""

    def do_GET(self) -> None:
        if self.path.startswith("/headers"):  # the status line and headers a byte every 0.2 s, for 10 s
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Padding: " + b"x" * 40:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # the provider hung up, as it should
            return
        if self.path.startswith("/late"):
            time.sleep(LATE_S)
        if self.path.startswith("/deep"):  # JSON nested deeper than Python's reader goes
            body = b"[" * DEEP + b"]" * DEEP
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            if self.path.startswith("/late"):
                self.wfile.flush()
                time.sleep(LATE_S)
                self.wfile.write(b"# late\n")
            elif self.path.startswith("/drip"):
                for _ in range(DRIP_S * 2):
                    self.wfile.write(b"# still here\n")
                    self.wfile.flush()
                    time.sleep(0.5)
            else:
                line = b"# " + b"x" * 1021 + b"\n"
                for _ in range(MAX_BODY_BYTES // len(line) + 1024):
                    self.wfile.write(line)
        except OSError:
            pass  # the provider hung up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def prometheus(url: str) -> Sample:
    provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=url, timeout=1))
    return provider.query("m", Metric(kind="gauge", query="up"), "2.4.0", 60)


def scrape(url: str) -> Sample:
    config = ScrapeProviderConfig(type="scrape", stable_url=url, canary_url=url, timeout=1)
    provider = ScrapeProvider(config, SimulatedClock(), stable="2.3.1", canary="2.4.0")
    return provider.query("m", Metric(kind="gauge", gauge="up"), "2.4.0", 60)


def web(url: str) -> Sample:
    provider = WebProvider(WebProviderConfig(type="web", url=url + "/{{version}}", timeout=1))
    return provider.query("m", Metric(kind="gauge", path="value"), "2.4.0", 60)


PROVIDERS: dict[str, Callable[[str], Sample]] = {"prometheus": prometheus, "scrape": scrape, "web": web}


@pytest.mark.parametrize("kind", PROVIDERS)
def test_a_dripping_answer_times_out_at_the_providers_timeout(base: str, kind: str) -> None:
    started = time.monotonic()
    sample = PROVIDERS[kind](base + "/drip")
    took = time.monotonic() - started
    assert sample.error is not None and "did not answer within 1s" in sample.error
    assert took < 3, f"took {took:.1f}s with a 1 s timeout"


@pytest.mark.parametrize("kind", PROVIDERS)
def test_headers_and_body_each_just_inside_the_timeout_still_time_out_at_the_timeout(base: str, kind: str) -> None:
    started = time.monotonic()
    sample = PROVIDERS[kind](base + "/late")
    took = time.monotonic() - started
    assert sample.error is not None and "did not answer within 1s" in sample.error
    assert took < 1.5, f"took {took:.2f}s with a 1 s timeout"


def fetch_threads() -> set[threading.Thread]:
    """The request threads alive now (one of an earlier test may still be ending: compare sets)."""
    return {t for t in threading.enumerate() if t.name == "shiprail-fetch"}


@pytest.mark.parametrize("kind", PROVIDERS)
def test_headers_sent_a_byte_at_a_time_time_out_and_leave_no_thread_behind(base: str, kind: str) -> None:
    before = fetch_threads()
    started = time.monotonic()
    sample = PROVIDERS[kind](base + "/headers")
    assert sample.error is not None and "did not answer within 1s" in sample.error
    assert time.monotonic() - started < 1.5
    # The connection was cut when the provider gave up: the request's thread ends at once, not
    # when the server stops (10 s), and holds no pooled connection meanwhile.
    deadline = time.monotonic() + 2
    while fetch_threads() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fetch_threads() - before == set()


@pytest.mark.parametrize("kind", PROVIDERS)
def test_an_answer_longer_than_the_limit_fails(base: str, kind: str) -> None:
    sample = PROVIDERS[kind](base + "/huge")
    assert sample.error is not None and "the answer is longer than 32 MiB" in sample.error


def test_json_nested_too_deeply_is_a_failed_sample_not_a_recursion_error() -> None:
    """Python's JSON reader raised RecursionError out of the web and prometheus providers (whose
    queries never raise): the controller caught it into 'RecursionError: maximum recursion depth
    exceeded …', plan validate --live likewise. It is an answer that is not JSON, as any other."""
    with local_server(Misbehaving) as base:
        assert web(base + "/deep") == Sample.failed(
            f"the JSON endpoint {base}/deep/2.4.0 did not answer JSON: {'[' * 119}…"
        )
        assert prometheus(base + "/deep") == Sample.failed(
            f"metric 'm': the answer is not Prometheus API JSON: {'[' * 119}…"
        )
