"""The lease heartbeat on a real store whose database goes away while a router call runs."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from shiprail.clock import SimulatedClock
from shiprail.controller import leases
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
