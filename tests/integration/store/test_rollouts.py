"""The controller's records in the store: reading a release's latest analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text

from shiprail.clock import SimulatedClock
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.store.db import Store
from shiprail.store.models import Analysis
from shiprail.store.rollouts import latest_analysis


def test_the_latest_analysis_is_read_alone_however_many_the_release_stored(
    project: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read at every promotion gate, release view and status page, and by the controller's /metrics
    # at every pass: it read all of a release's analyses (8,640 in a 24-hour Verify analysed every
    # 10 s, 0.14 s) to keep one.
    monkeypatch.chdir(project)
    svc = Releases(store, SimulatedClock(), open_project(project).policy)
    rid = svc.create(check_plan_file(Path("releases/checkout-2.4.0.yaml")), "alice").id
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with store.transaction() as s:
        for i in range(500):
            s.add(
                Analysis(
                    release_id=rid,
                    at=start + timedelta(seconds=10 * i),
                    status="rolling_out",
                    step=i // 100,
                    weight=1.0,
                    verdict="pass",
                    results="[]",
                )
            )
    asked: list[str] = []

    def ask(conn: object, cursor: object, statement: str, *args: object) -> None:
        asked.append(" ".join(statement.split()))

    event.listen(store.engine, "before_cursor_execute", ask)
    try:
        with store.transaction() as s:
            last = latest_analysis(s, rid)
            assert last is not None and (last.at, last.step) == (start + timedelta(seconds=4990), 4)
            assert latest_analysis(s, "r-none") is None
    finally:
        event.remove(store.engine, "before_cursor_execute", ask)
    # One row asked of the database each time, not every analysis of the release sent back and dropped.
    reads = [q for q in asked if q.startswith("SELECT analyses.")]
    assert len(reads) == 2 and all(" ORDER BY analyses.id DESC LIMIT " in q for q in reads), reads


def test_an_older_releases_latest_analysis_is_found_by_its_index_not_by_walking_the_newer_ones(
    project: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With an index on release_id alone, PostgreSQL found an older release's newest analysis by
    # walking the primary key backwards through every later release's analyses (140-160 ms under
    # 432,000 newer rows): `release show` of last week's release, the status page listing it.
    monkeypatch.chdir(project)
    svc = Releases(store, SimulatedClock(), open_project(project).policy)
    plan = check_plan_file(Path("releases/checkout-2.4.0.yaml"))
    old, new = svc.create(plan, "alice").id, svc.create(plan, "alice").id
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(old, i) for i in range(200)] + [(new, i) for i in range(200, 4200)]
    with store.transaction() as s:
        s.add_all(
            Analysis(
                release_id=rid,
                at=start + timedelta(seconds=10 * i),
                status="rolling_out",
                step=0,
                weight=1.0,
                verdict="pass",
                results="[]",
            )
            for rid, i in rows
        )
    with store.engine.connect() as conn:
        conn.execute(text("ANALYZE analyses" if store.dialect == "postgresql" else "ANALYZE"))
        explain = "EXPLAIN" if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN"
        query = f"{explain} SELECT * FROM analyses WHERE release_id = :r ORDER BY id DESC LIMIT 1"
        plan_text = " ".join(str(row[-1]) for row in conn.execute(text(query), {"r": old}))
    assert "ix_analyses_release_id_id" in plan_text and "TEMP B-TREE" not in plan_text, plan_text
