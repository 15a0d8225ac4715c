"""The flag hub forgets SDKs gone for a day: every process start is a new client id, and the
router reads every row of a service while it waits for acknowledgements."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from shiprail import defaults
from shiprail.clock import SimulatedClock
from shiprail.serve.hub import FlagHub
from shiprail.store import flags
from shiprail.store.db import Store
from shiprail.store.models import FlagClient
from tests.support.stores import pg_role

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def clients(store: Store) -> list[str]:
    with store.transaction() as s:
        return [c.client for c in flags.contacts(s, "shop", NOW - timedelta(days=30))]


def test_sdks_gone_for_a_day_are_forgotten_once_a_contact_window(store: Store) -> None:
    keep = timedelta(seconds=defaults.FLAG_CLIENT_KEEP_SECONDS)
    with store.transaction() as s:
        flags.record_contacts(
            s,
            [
                ("shop", "py-gone", 1, NOW - keep - timedelta(seconds=1)),
                ("shop", "py-quiet", 1, NOW - keep + timedelta(seconds=1)),
            ],
        )
    clock = SimulatedClock(NOW)
    hub = FlagHub(store, clock, ["shop"])
    try:
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        assert clients(store) == ["py-new", "py-quiet"]

        clock.advance(10)  # py-quiet is now past a day, but within the contact window there is no second prune
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        assert clients(store) == ["py-new", "py-quiet"]
        clock.advance(defaults.FLAG_CONTACT_SECONDS)  # a window later: pruned
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        assert clients(store) == ["py-new"]
    finally:
        hub.stop()


def _documented_grants() -> list[str]:
    """The GRANT statements operations.md gives the application role (``shiprail_app``)."""
    text = (Path(__file__).parents[3] / "docs" / "operations.md").read_text(encoding="utf-8")
    block = text.split("Then, as `shiprail_owner`, grant the application role", 1)[1].split("```sql", 1)[1]
    sql = re.sub(r"--[^\n]*", "", block.split("```", 1)[0])
    return [" ".join(s.split()) for s in sql.split(";") if s.strip()]


@contextlib.contextmanager
def app_role(pg_store: Store, grants: list[str]) -> Iterator[Store]:
    """A store on ``pg_store``'s schema as a new login role holding only ``grants`` (for ``shiprail_app``)."""
    as_written = [g.replace("shiprail_app", "{role}").replace("SCHEMA public", "SCHEMA {schema}") for g in grants]
    with pg_role(pg_store, as_written) as (role, schema):
        url = sa.make_url(pg_store.url).set(username=role)
        store = Store(
            url.render_as_string(hide_password=False),
            engine_options={"connect_args": {"options": f"-csearch_path={schema}"}},
        )
        try:
            yield store
        finally:
            store.close()


def _one_contact_window(store: Store, pg_store: Store) -> list[str]:
    """Flush a new SDK's contact with a day-old one stored; the clients stored after."""
    keep = timedelta(seconds=defaults.FLAG_CLIENT_KEEP_SECONDS)
    with pg_store.transaction() as s:
        flags.record_contacts(s, [("shop", "py-gone", 1, NOW - keep - timedelta(seconds=1))])
    hub = FlagHub(store, SimulatedClock(NOW), ["shop"])
    try:
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()
        hub.seen("shop", "py-new", 0)
        hub._flush_contacts()  # the same contact window: no second try at forgetting
    finally:
        hub.stop()
    return clients(pg_store)


def test_the_documented_application_role_records_sdk_contacts_and_forgets_old_ones(
    pg_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    grants = _documented_grants()
    assert any("flag_clients" in g and "DELETE" in g for g in grants), grants
    with app_role(pg_store, grants) as store:
        assert _one_contact_window(store, pg_store) == ["py-new"]
    assert [r.getMessage() for r in caplog.records if r.name == "shiprail.serve.hub"] == []


def test_a_role_that_may_not_delete_sdk_contacts_still_records_them(
    pg_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """operations.md's grants used to leave out DELETE on flag_clients: every flush failed, the SDKs'
    acknowledgements never reached the store, and each weight was 'no SDK in contact to acknowledge it'."""
    grants = [g for g in _documented_grants() if "flag_clients" not in g]
    grants.append("GRANT SELECT, INSERT, UPDATE ON flag_clients TO shiprail_app")
    with app_role(pg_store, grants) as store:
        assert _one_contact_window(store, pg_store) == ["py-gone", "py-new"]
    assert [r.getMessage() for r in caplog.records if r.name == "shiprail.serve.hub"] == [
        "flag hub cannot forget the SDKs gone for a day: permission denied for table flag_clients"
    ]


def test_two_serves_that_heard_the_same_sdks_in_another_order_both_record_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a load balancer each serve hears the same SDKs, each in its own order, and writes them
    every 0.05 s: they locked the rows in that order and PostgreSQL aborted one of two at once
    ("deadlock detected"), dropping its contacts and stalling both watchers for a second."""
    with store.transaction() as s:
        flags.record_contacts(s, [("shop", "py-a", 1, NOW), ("shop", "py-b", 1, NOW)])
    clock = SimulatedClock(NOW + timedelta(seconds=1))
    hubs = [FlagHub(store, clock, ["shop"]), FlagHub(store, clock, ["shop"])]
    for hub, order in zip(hubs, (["py-a", "py-b"], ["py-b", "py-a"]), strict=True):
        hub._pruned = clock.now()  # no pruning in this pass
        for client in order:
            hub.seen("shop", client, 2)
    barrier = threading.Barrier(2)
    waited: set[int] = set()
    real_get = Session.get

    def get_then_meet(self: Session, entity: Any, ident: Any, **kwargs: Any) -> Any:
        found = real_get(self, entity, ident, **kwargs)
        if entity is FlagClient and threading.get_ident() not in waited:
            waited.add(threading.get_ident())  # each has locked its first row: now both go on
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(2)
        return found

    monkeypatch.setattr(Session, "get", get_then_meet)
    failures: list[str] = []

    def flush(hub: FlagHub) -> None:
        try:
            hub._flush_contacts()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=flush, args=(hub,)) for hub in hubs]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        for hub in hubs:
            hub.stop()
    assert failures == []
    with store.transaction() as s:
        assert {(c.client, c.revision) for c in flags.contacts(s, "shop", NOW)} == {("py-a", 2), ("py-b", 2)}


def test_contacts_heard_while_the_store_is_away_are_stored_when_it_is_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # They were taken out of memory before the write: a write that failed (the database restarting)
    # lost them, and the router, reading the acknowledgements from the store, reported unconfirmed
    # a weight the SDKs had taken.
    clock = SimulatedClock(NOW)
    hub = FlagHub(store, clock, ["shop"])
    real = flags.record_contacts

    def away(session: Session, rows: Any) -> None:
        raise sa.exc.OperationalError("INSERT INTO flag_clients", {}, Exception("server closed the connection"))

    try:
        hub.seen("shop", "py-a", 2)
        hub.seen("shop", "py-c", 2)  # heard only before the outage
        monkeypatch.setattr(flags, "record_contacts", away)
        with pytest.raises(sa.exc.OperationalError):
            hub._flush_contacts()
        clock.advance(1)
        hub.seen("shop", "py-b", 2)
        hub.seen("shop", "py-a", 3)  # heard again since, newer: this one is stored
        monkeypatch.setattr(flags, "record_contacts", real)
        hub._flush_contacts()
        with store.transaction() as s:
            stored = {c.client: c.revision for c in flags.contacts(s, "shop", NOW - timedelta(days=1))}
        assert stored == {"py-a": 3, "py-b": 2, "py-c": 2}
    finally:
        hub.stop()


def test_an_unreachable_store_is_logged_once_when_it_goes_and_once_when_it_is_back(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Every pass logged the full error (four lines with SQLAlchemy's background link), 20 passes a
    # second: a ten-minute database restart put some 50,000 lines in serve's log.
    real = flags.revisions

    def away(session: Session) -> dict[str, int]:
        raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused\nIs the server running?"))

    hub = FlagHub(store, SimulatedClock(NOW), ["shop"], watch_s=0.01)
    loop = asyncio.new_event_loop()
    try:
        hub.start(loop)
        caplog.set_level(logging.INFO, logger="shiprail.serve.hub")
        monkeypatch.setattr(flags, "revisions", away)
        time.sleep(0.3)
        assert not hub.store_reached
        monkeypatch.setattr(flags, "revisions", real)
        time.sleep(0.3)
        assert hub.store_reached
    finally:
        hub.stop()
        loop.close()
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "shiprail.serve.hub"] == [
        (
            "WARNING",
            "flag hub cannot reach the store: connection refused; "
            "serving the configs it holds and looking again every 0.01s",
        ),
        ("WARNING", "flag hub reaches the store again"),
    ]
