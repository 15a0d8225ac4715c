"""What one reconcile pass costs the store: the statements of an analysis that leaves a release waiting.

A release is analysed every interval for its whole rollout and its 24-hour Verify (8,640 passes at
a 10 s interval): each statement there is paid thousands of times per release, and on PostgreSQL
each is a round trip. The count must not grow with the release's history either.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from shiprail.controller.reconciler import Controller
from shiprail.releases import Releases
from shiprail.store.models import Analysis
from tests.integration.controller.test_controller import INTERVAL, FakeRouter, controller, started, svc

__all__ = ["started", "svc"]

# Per pass: is the schema still this shiprail's (1), the active releases (1), this controller's
# presence (4), the lease (2), the release, its progress and router intents and any stale one (5),
# the rollout's pushed signals (1), the regression triggers' increments stored since the judge's
# last read (1: the example plan judges errors and latency against the baseline), then one
# transaction storing the analysis: the release and lease locked, the analysis, the progress and its
# audit event (8). SQLite's BEGIN IMMEDIATE of each of the 7 transactions goes to the driver
# directly (it waits for the lock in slices, shiprail.store.db), so it is not counted here.
STATEMENTS = {"postgresql": 23, "sqlite": 23}


@contextmanager
def counted(svc: Releases) -> Iterator[list[str]]:
    said: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        said.append(statement)

    event.listen(svc.store.engine, "before_cursor_execute", count)
    try:
        yield said
    finally:
        event.remove(svc.store.engine, "before_cursor_execute", count)


def analysis_pass(svc: Releases, ctl: Controller, rid: str) -> list[str]:
    """The statements of the next pass, once an analysis is due: it analyses and leaves the release waiting."""
    svc.clock.advance(INTERVAL * 60)
    with svc.store.transaction() as s:
        before = s.query(Analysis).filter(Analysis.release_id == rid).count()
    with counted(svc) as said:
        wake = ctl.tick()
    with svc.store.transaction() as s:
        assert s.query(Analysis).filter(Analysis.release_id == rid).count() == before + 1
    assert wake == svc.clock.now() + timedelta(minutes=INTERVAL)
    return said


def test_an_analysis_pass_costs_the_same_few_statements_however_long_the_history(svc: Releases, started: str) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()  # sets 1 %
    while router.calls != [1, 10]:  # baked 30 minutes at 1 %: at 10 %, for 2 hours
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    analysis_pass(svc, ctl, started)
    first = analysis_pass(svc, ctl, started)
    # 500 analyses of history (the first 3 hours of a 24-hour Verify at a 10 s interval): stored
    # as the controller stores them.
    with svc.store.transaction() as s:
        row = s.query(Analysis).filter(Analysis.release_id == started).first()
        assert row is not None
        for i in range(500):
            s.add(
                Analysis(
                    release_id=started,
                    at=row.at - timedelta(seconds=i + 1),
                    status=row.status,
                    step=row.step,
                    weight=row.weight,
                    verdict=row.verdict,
                    results=row.results,
                )
            )
    later = analysis_pass(svc, ctl, started)
    assert len(first) == len(later) == STATEMENTS[svc.store.dialect]
    assert svc.get(started).status == "rolling_out"
