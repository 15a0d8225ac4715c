"""The lease heartbeat on a real store whose database goes away while a router call runs."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from shiprail.clock import SimulatedClock
from shiprail.controller import Controller, leases
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.store.db import Store


def test_a_heartbeat_whose_store_fails_logs_one_line_per_failure_not_a_traceback(
    project: Path, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(project)
    clock = SimulatedClock()
    svc = Releases(sqlite_store, clock, open_project(project).policy)
    rid = svc.create(check_plan_file(Path("releases/checkout-2.4.0.yaml")), "alice").id
    assert leases.acquire(sqlite_store, rid, "ctl-1", clock.now(), 15)
    beat = leases.Heartbeat(
        sqlite_store,
        rid,
        "ctl-1",
        clock,
        ttl_s=15,
        every_s=0.05,
        deadline=clock.now() + timedelta(minutes=1),
        fenced=True,
    )
    caplog.set_level(logging.WARNING, logger="shiprail.controller.leases")
    with beat:
        with sqlite_store.transaction() as s:  # the store loses the table under the call
            s.execute(text("ALTER TABLE leases RENAME TO leases_away"))
        time.sleep(0.3)
    logged = {(r.getMessage(), r.exc_info) for r in caplog.records}
    assert logged == {
        (f"{rid}: cannot renew the lease: no such table: leases", None),
        (f"{rid}: cannot clear the lease's call mark: no such table: leases", None),
    }


def test_a_lease_the_store_cannot_let_go_as_serve_stops_is_logged_and_left_to_expire(
    project: Path,
    sqlite_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # serve ends the store's lock waits at the end of its grace: the controller's close, letting its
    # leases go while another process held SQLite's write lock, raised "database is locked" out of the
    # controller thread (a traceback in serve's log), and the leases after it were not let go either.
    monkeypatch.chdir(project)
    clock = SimulatedClock()
    svc = Releases(sqlite_store, clock, open_project(project).policy)
    rid = svc.create(check_plan_file(Path("releases/checkout-2.4.0.yaml")), "alice").id
    ctl = Controller(svc)
    assert leases.acquire(sqlite_store, rid, ctl.holder, clock.now(), 15)
    ctl._held.add(rid)  # as a pass that drives the release holds it
    holder = sqlite3.connect(tmp_path / "shiprail.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write
    sqlite_store.stop_lock_waits()
    caplog.set_level(logging.WARNING, logger="shiprail.controller.reconciler")
    try:
        ctl.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"could not let the lease of {rid} go (database is locked); it expires within 15s"
    ]
