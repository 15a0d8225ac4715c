"""Smoke tests of the e2e stack: real sample services, Prometheus and nginx or HAProxy.

One stack per router is shared by this module's tests; each test sets the weight it needs, and
leaves the router at 0 and the canary without faults. The router and the provider are built by
shiprail from the service file ``write_project`` wrote, so the project is what is tested too.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiprail.cli.main import main
from shiprail.clock import WallClock
from shiprail.project import open_project
from shiprail.providers import build_provider
from shiprail.routers import Router, build_router
from shiprail.schema.service import Service
from tests.e2e.conftest import LoadFactory, StackFactory
from tests.e2e.stack import CANARY, SERVICE, STABLE, Stack, write_project

ROUTERS = ("nginx", "haproxy")
WINDOW_S = 5  # the default triggers' window
SETTLE_S = 0.3  # nginx: the old worker still takes new connections for ~0.1 s after set_weight returns


@pytest.fixture(scope="module", params=ROUTERS)
def stack(request: pytest.FixtureRequest, module_stack_factory: StackFactory) -> Iterator[Stack]:
    started = module_stack_factory(request.param)
    yield started
    started.stop()  # before the next router's stack starts; the factory would stop it at the end anyway


@pytest.fixture
def plan_path(tmp_path: Path, stack: Stack) -> Path:
    return write_project(tmp_path / "project", stack)


@pytest.fixture
def service(plan_path: Path) -> Service:
    """The service as shiprail loads it from the written project."""
    loaded, _, problems = open_project(plan_path.parent).load_service(SERVICE)
    assert loaded is not None, problems
    return loaded


@pytest.fixture
def router(service: Service) -> Iterator[Router]:
    """shiprail's router from the written service file; back at weight 0 after the test."""
    built = build_router(service.router, service=SERVICE, version=CANARY, baseline=STABLE)
    yield built
    built.set_weight(0)


def test_all_traffic_reaches_stable_at_weight_0(stack: Stack, router: Router, load_factory: LoadFactory) -> None:
    router.set_weight(0)  # the stack starts there: a no-op
    assert router.current_weight() == 0
    since = time.monotonic()
    load = load_factory(stack.url)
    load.wait_for(60, since=since)
    share = load.share_since(since)
    assert set(share) == {STABLE}, share
    assert load.statuses_since(since).keys() == {200}
    assert load.last_canary_at() is None
    assert load.errors() == []


def test_weight_50_splits_traffic_in_half(stack: Stack, router: Router, load_factory: LoadFactory) -> None:
    load = load_factory(stack.url)
    load.wait_for(20, since=0)
    router.set_weight(50)
    assert router.current_weight() == 50
    since = time.monotonic() + SETTLE_S
    load.wait_for(100, since=since)
    share = load.share_since(since)
    total = sum(share.values())
    assert set(share) == {STABLE, CANARY}, share
    # Both routers alternate 1:1 (nginx's smooth weighted round-robin, HAProxy's roundrobin), one
    # worker, one fresh connection per request: the split is near exact; the tolerance is for
    # requests in flight at the edges of the window.
    assert 0.4 <= share[CANARY] / total <= 0.6, share
    # The change (an nginx reload, or HAProxy's runtime API) dropped no request.
    assert load.errors() == []
    assert load.statuses_since(0).keys() == {200}


def test_prometheus_measures_the_injected_canary_error_rate(
    stack: Stack, service: Service, router: Router, load_factory: LoadFactory
) -> None:
    provider = build_provider(service.provider, clock=WallClock(), stable=STABLE, canary=CANARY)
    metric = service.metrics["error_rate"]
    router.set_weight(50)
    assert stack.canary is not None
    stack.canary.inject(error_rate=0.5)
    try:
        load = load_factory(stack.url)
        deadline = time.monotonic() + 15
        sample = provider.query("error_rate", metric, CANARY, WINDOW_S)
        # The first scrapes after the injection still cover error-free requests in the window.
        while not (sample.value is not None and abs(sample.value - 0.5) < 0.1) and time.monotonic() < deadline:
            time.sleep(0.25)
            sample = provider.query("error_rate", metric, CANARY, WINDOW_S)
        assert sample.error is None, sample
        assert sample.value is not None and abs(sample.value - 0.5) < 0.1, sample
        assert sample.count is not None and sample.count > 0, sample
        stable = provider.query("error_rate", metric, STABLE, WINDOW_S)
        assert stable.value == 0, stable
        latency = provider.query("latency_p99", service.metrics["latency_p99"], CANARY, WINDOW_S)
        assert latency.value is not None and latency.count, latency
        canary_statuses = {h.status for h in load.hits() if h.version == CANARY}
        assert canary_statuses == {200, 500}
    finally:
        stack.canary.inject(error_rate=0)
        if hasattr(provider, "close"):
            provider.close()


def test_written_project_validates(plan_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(plan_path.parents[1])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["plan", "validate", str(plan_path.relative_to(plan_path.parents[1]))])
    assert code == 0, out.getvalue()
    assert "ok" in out.getvalue()
