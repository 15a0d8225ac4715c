"""The controller against a PostgreSQL that stops answering mid-operation and comes back, through a
real TCP proxy (tests/support/tcp_proxy.py): operations.md says the loop rides it out and carries
on by itself, each weight applied once, the audit chain whole."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from shiprail import defaults
from shiprail.clock import SimulatedClock
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.store import audit
from shiprail.store.db import Store
from tests.conftest import PG_URL, require_pg
from tests.integration.controller.test_controller import (
    INTERVAL,
    PLAN,
    FakeRouter,
    chain_ok,
    controller,
    start_example,
)
from tests.support.stores import pg_schema
from tests.support.tcp_proxy import Proxy


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    require_pg()
    url = sa.make_url(PG_URL)
    running = Proxy((url.host or "127.0.0.1", url.port or 5432))
    yield running
    running.close()


@pytest.fixture
def proxied(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    # A connection that stalls is found out within a second here, not a minute.
    monkeypatch.setitem(defaults.PG_CONNECT_ARGS, "tcp_user_timeout", 1000)
    url = sa.make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with pg_schema(PG_URL, "t_") as schema:  # made and dropped directly, not through the proxy
        store = Store(url, engine_options={"connect_args": {"options": f"-csearch_path={schema}"}})
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def svc(project: Path, proxied: Store, monkeypatch: pytest.MonkeyPatch) -> Releases:
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    text = text[: text.index("  probes:")].replace("rollout:\n", f"rollout:\n  analysis_interval: {INTERVAL}m\n")
    PLAN.write_text(text)
    return Releases(proxied, SimulatedClock(), open_project(project).policy)


@pytest.fixture
def started(svc: Releases) -> str:
    return start_example(svc)


class Outages(FakeRouter):
    """A router during whose calls the database goes: stalls at 10 %, is cut and down at 50 %.

    The stall is one the kernel cannot see (the proxy's socket takes the bytes, nothing answers):
    the write after the call waits it out and goes on. The cut fails the pass under way."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy

    def set_weight(self, weight: float) -> None:
        super().set_weight(weight)
        if weight == 10:
            # Stops answering (a stalled server or network) for 2 s: the write after this call waits.
            self.proxy.blackhole.set()
            threading.Timer(2.0, self.proxy.blackhole.clear).start()
        elif weight == 50:
            # Restarts: every connection cut, new ones refused for 1 s.
            self.proxy.refusing.set()
            self.proxy.cut()
            threading.Timer(1.0, self.proxy.refusing.clear).start()


def test_the_loop_rides_out_a_stalled_and_a_restarting_database(
    svc: Releases, started: str, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    router = Outages(proxy)
    caplog.set_level(logging.WARNING, logger="shiprail.controller.reconciler")
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            controller(svc, router).run(until_done=True)
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(120), "the controller did not finish the release"
    assert failure == []
    assert router.calls == [1, 10, 50, 100]
    assert svc.get(started).status == "complete"
    assert chain_ok(svc)
    warned = [r.getMessage() for r in caplog.records if r.name == "shiprail.controller.reconciler"]
    # The pass the cut interrupted says so for its release; each poll while the database is down
    # says it cannot reach the store. Nothing else: no traceback, no stop.
    cut = (
        'connection failed: connection to server at "127.0.0.1", port P failed: '
        "server closed the connection unexpectedly"
    )
    shapes = {re.sub(r"port \d+", "port P", re.sub(r"\d+ pass\(es\) over \w+", "N pass(es) over T", w)) for w in warned}
    polled = f"cannot reach the store: {cut}; looking again in 1s"
    assert polled in shapes
    # And once the store has answered for a minute, that it does again.
    back = "the store answers again: it failed N pass(es) over T"
    assert shapes <= {polled, f"{started}: reconcile failed: the store failed: {cut}", back}


class GoesAway(FakeRouter):
    """A router under whose 10 % call the database goes for a second: every connection cut, new ones refused."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.over = threading.Event()

    def set_weight(self, weight: float) -> None:
        super().set_weight(weight)
        if weight == 10 and not self.over.is_set():
            self.proxy.refusing.set()
            self.proxy.cut()
            threading.Thread(target=self._back, daemon=True).start()

    def _back(self) -> None:
        time.sleep(1.0)
        self.proxy.refusing.clear()
        self.over.set()


def status(svc: Releases, rid: str) -> str | None:
    """The release's status; None while this test's own connection is cut too."""
    try:
        return svc.get(rid).status
    except sa.exc.OperationalError:
        return None


def test_an_outage_is_recorded_once_as_it_begins_and_once_as_it_ends_with_its_duration(
    svc: Releases, started: str, proxy: Proxy
) -> None:
    router = GoesAway(proxy)
    stop = threading.Event()
    ctl = controller(svc, router)
    thread = threading.Thread(target=ctl.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert router.over.wait(60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status(svc, started) != "complete":
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
    assert svc.get(started).status == "complete"
    with svc.store.transaction() as s:
        events = [r for r in audit.rows(s) if r.kind.startswith("controller.") and r.kind != "controller.attached"]
    # Not one controller.error per pass the outage failed that could write one, nor nothing at all.
    seen = [(e.kind, e.release_id) for e in events]
    assert seen == [("controller.store_unreachable", None), ("controller.store_reachable", None)], seen
    began, ended = (json.loads(e.payload) for e in events)
    assert began["since"] == ended["since"]
    since, until = datetime.fromisoformat(ended["since"]), datetime.fromisoformat(ended["until"])
    assert ended["outage_s"] == (until - since).total_seconds() > 0
    assert ended["failed_passes"] >= 2
    assert ended["error"].startswith("connection failed: ") or "closed the connection" in ended["error"]
    assert chain_ok(svc)


class CutsOff(FakeRouter):
    """A router under whose first call the database goes until the test lets it back."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy

    def set_weight(self, weight: float) -> None:
        super().set_weight(weight)
        if len(self.calls) == 1:
            self.proxy.refusing.set()
            self.proxy.cut()


def test_an_outage_a_controller_is_stopped_in_is_recorded_as_soon_as_the_store_takes_it_and_ended(
    svc: Releases, started: str, proxy: Proxy
) -> None:
    # The store took no write while it was away: the outage's beginning waited for the store to
    # have answered for a minute, and a controller stopped (a deploy, a restart) before then left
    # nothing of it in the trail.
    ctl = controller(svc, CutsOff(proxy))
    try:
        ctl.tick()  # the write after the router's call fails: the store is away
        assert proxy.refusing.is_set()
        proxy.refusing.clear()
        svc.clock.advance(5)  # type: ignore[attr-defined]
        ctl.tick()  # the store answers again
        with svc.store.transaction() as s:
            seen = [(r.kind, r.release_id) for r in audit.rows(s) if r.kind.startswith("controller.store")]
        assert seen == [("controller.store_unreachable", None)]
        svc.clock.advance(5)  # type: ignore[attr-defined]
    finally:
        ctl.close()  # stopped before the outage settled
    with svc.store.transaction() as s:
        events = [r for r in audit.rows(s) if r.kind.startswith("controller.store")]
    assert [(e.kind, e.release_id) for e in events] == [
        ("controller.store_unreachable", None),
        ("controller.store_reachable", None),
    ]
    ended = json.loads(events[1].payload)
    assert (ended["failed_passes"], ended["outage_s"]) == (1, 5.0)
    assert chain_ok(svc)
