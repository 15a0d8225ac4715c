"""Controllers on hosts whose clocks disagree, on one PostgreSQL: the database's clock is the one
authority on leases, so a host minutes ahead can neither take a live controller's release nor keep
its own past its lease, and one minutes behind cannot be robbed of its releases.

Each controller's host clock is injected (``SkewedClock``: the wall clock, minutes off); what the
leases say is read from the store."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shiprail.cli.release import _print_view
from shiprail.clock import WallClock
from shiprail.controller import Controller, leases
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.schema.resolved import ResolvedRelease
from shiprail.store.db import Store
from shiprail.store.models import Lease
from tests.integration.controller.test_controller import FakeProvider, FakeRouter, healthy, start_example
from tests.support.clocks import SkewedClock

SKEW = timedelta(minutes=10)


@pytest.fixture
def svc(project: Path, pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> Releases:
    monkeypatch.chdir(project)
    return Releases(pg_store, WallClock(), open_project(project).policy)


@pytest.fixture
def started(svc: Releases) -> str:
    return start_example(svc)


def on_host(svc: Releases, clock: WallClock, **kw: float) -> Controller:
    """A controller whose host's clock is ``clock``, with a fake router and provider."""
    host = Releases(svc.store, clock, svc.policy)
    router, provider = FakeRouter(), FakeProvider(clock, healthy)  # type: ignore[arg-type]

    def routers(r: ResolvedRelease) -> FakeRouter:
        return router

    def providers(r: ResolvedRelease) -> FakeProvider:
        return provider

    return Controller(host, routers=routers, providers=providers, **kw)  # type: ignore[arg-type]


def holder(svc: Releases, rid: str) -> tuple[str, datetime] | None:
    with svc.store.transaction() as s:
        lease = s.get(Lease, rid)
        return None if lease is None else (lease.holder, lease.expires_at)


@pytest.mark.parametrize("skew", [SKEW, -SKEW], ids=["ahead", "behind"])
def test_a_host_whose_clock_is_off_takes_no_live_controllers_release(
    svc: Releases, started: str, skew: timedelta
) -> None:
    # "behind": the live holder's host lags, so the other's correct clock saw its leases as long over.
    first, second = (on_host(svc, WallClock()), on_host(svc, SkewedClock(skew)))
    if skew < timedelta(0):
        first, second = second, first
    try:
        first.tick()
        assert holder(svc, started) is not None and holder(svc, started)[0] == first.holder  # type: ignore[index]
        second.tick()
        second.tick()
        held = holder(svc, started)
        assert held is not None and held[0] == first.holder
        # The lease's expiry is the database's now + 15 s, whichever host wrote it.
        assert abs((held[1] - WallClock().now()).total_seconds() - 15) < 5
    finally:
        first.close()
        second.close()


def test_a_host_whose_clock_is_ahead_keeps_no_lease_past_its_end(svc: Releases, started: str) -> None:
    ahead = on_host(svc, SkewedClock(SKEW), poll_s=0.5, lease_s=1.0)
    ahead.tick()
    assert holder(svc, started) is not None and holder(svc, started)[0] == ahead.holder  # type: ignore[index]
    # It stops renewing (a hung host: its process lives, so no PID check frees its releases): its
    # lease is over a second later, not ten minutes later.
    time.sleep(1.5)
    other = on_host(svc, WallClock())
    try:
        other.tick()
        held = holder(svc, started)
        assert held is not None and held[0] == other.holder
    finally:
        other.close()
        ahead._held.clear()  # it never comes back: nothing of its to let go
        ahead.close()


def test_the_database_clock_is_read_once_and_carried_on_the_monotonic_clock(pg_store: Store) -> None:
    clock = leases.DatabaseClock(pg_store)
    first = clock.now()
    statements: list[str] = []
    from sqlalchemy import event

    event.listen(pg_store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    second = clock.now()
    assert statements == []
    assert timedelta(0) <= second - first < timedelta(seconds=1)
    assert abs((first - WallClock().now()).total_seconds()) < 5  # this host's clock and the database's agree


@pytest.mark.parametrize(("skew", "lapsed"), [(SKEW, False), (-SKEW, True)], ids=["ahead", "behind"])
def test_release_show_judges_the_lease_by_the_database_clock(
    svc: Releases, started: str, skew: timedelta, lapsed: bool, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # "ahead": a live controller's lease (the database's now + 15 s) was shown "lapsed: another
    # controller takes it over" on a host 10 minutes ahead; "behind": one over by 10 s was not.
    now = leases.DatabaseClock(svc.store).now()
    until = now + timedelta(seconds=-10 if lapsed else 15)
    assert leases.acquire(svc.store, started, "elsewhere/1/2:7:ab", until - timedelta(seconds=15), 15)
    real = WallClock.now
    monkeypatch.setattr(WallClock, "now", lambda self: real(self) + skew)  # the whole host's clock is off
    capsys.readouterr()
    _print_view(svc.get(started))
    shown = [line for line in capsys.readouterr().out.splitlines() if "controller:" in line]
    after = ", lapsed: another controller takes it over" if lapsed else ""
    assert shown == [f"  controller: elsewhere/1/2:7:ab (lease until {until.astimezone(UTC):%H:%M:%S}Z{after})"]
