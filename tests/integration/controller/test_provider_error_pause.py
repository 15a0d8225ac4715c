"""A provider that fails (an HTTP error) pauses the release as one that answers with no data does,
but says so: ``release show``, ``watch``, the audit trail and the notifications called both "missing
data", and an operator paged for a Prometheus that was down looked for a canary without traffic.

The controller runs the real prometheus provider against a real HTTP server on 127.0.0.1 that
answers either HTTP 500 or an empty vector (no data); the store is real, the clock simulated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from shiprail import describe
from shiprail.cli.watch import _summary
from shiprail.controller import Controller
from shiprail.providers import PrometheusProviderConfig
from shiprail.providers.prometheus import PrometheusProvider
from shiprail.releases import Releases
from shiprail.schema.resolved import ResolvedRelease
from shiprail.store import audit
from tests.integration.controller.test_controller import INTERVAL, FakeRouter, started, svc
from tests.support.exposition import local_server

__all__ = ["started", "svc"]  # the fixtures


class Prometheus(BaseHTTPRequestHandler):
    """``/api/v1/query`` answering HTTP 500 (``failing``) or an empty vector (no data)."""

    failing = True

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        if Prometheus.failing:
            status, body = 500, b"upstream unavailable"
        else:
            status, body = 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def prometheus() -> Iterator[str]:
    with local_server(Prometheus) as url:
        yield url


def paused(svc: Releases, rid: str, url: str) -> str:
    """Run the controller until the release pauses; the reason the audit trail records."""
    provider = PrometheusProvider(PrometheusProviderConfig(type="prometheus", url=url, timeout=2))
    router = FakeRouter()

    def routers(r: ResolvedRelease) -> FakeRouter:
        return router

    def providers(r: ResolvedRelease) -> PrometheusProvider:
        return provider

    ctl = Controller(svc, routers=routers, providers=providers)  # type: ignore[arg-type]
    while svc.get(rid).status != "paused":
        svc.clock.advance(INTERVAL * 60)  # type: ignore[attr-defined]
        ctl.tick()
    with svc.store.transaction() as s:
        [pause] = [
            json.loads(r.payload)
            for r in audit.rows(s)
            if r.release_id == rid and r.kind == "release.transitioned" and json.loads(r.payload)["action"] == "pause"
        ]
    return str(pause["reason"])


RESUMES = (
    "; it resumes by itself at the first analysis in which every trigger passes (while a controller runs), or by "
    "`shiprail release resume checkout-2.4.0`"
)


def test_a_failing_provider_pauses_saying_the_provider_failed(svc: Releases, started: str, prometheus: str) -> None:
    Prometheus.failing = True
    # The audit event's reason, which the notifications of the pause quote.
    reason = paused(svc, started, prometheus)
    assert reason == (
        "3 analyses in a row without a verdict, the metrics provider failing (errors: canary: provider error: "
        "prometheus: metric 'error_rate': HTTP 500: upstream unavailable)"
    )
    view = svc.get(started)
    assert describe.paused(view) == f"paused for a provider error at 2026-01-01 00:40:00Z: {reason}{RESUMES}"
    assert _summary(view).startswith(
        "paused (from rolling_out) for a provider error, router at 1%: errors inconclusive (canary: provider error: "
        "prometheus: metric 'error_rate': HTTP 500: upstream unavailable), slow inconclusive"
    )


def test_a_provider_answering_no_data_still_pauses_for_missing_data(
    svc: Releases, started: str, prometheus: str
) -> None:
    Prometheus.failing = False
    reason = paused(svc, started, prometheus)
    assert reason == "3 analyses in a row without a verdict (errors: canary: no data)"
    view = svc.get(started)
    assert describe.paused(view) == f"paused for missing data at 2026-01-01 00:40:00Z: {reason}{RESUMES}"
    assert _summary(view).startswith(
        "paused (from rolling_out) for missing data, router at 1%: errors inconclusive (canary: no data), "
    )
