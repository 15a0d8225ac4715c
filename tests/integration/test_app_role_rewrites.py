"""What the application role of operations.md may rewrite, and what catches it (real PostgreSQL).

The role setup of docs/operations.md gives ``shiprail_app`` UPDATE on ``releases``, ``postmortems``
and ``rollback_logs``: shiprail changes those rows as releases move. The audit chain is append-only
for that role, so ``audit verify`` still passes after such a row is rewritten; what must catch it is
``release verify-package``, on the package exported from the rewritten row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail.clock import SimulatedClock
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.store import audit
from shiprail.store.db import Store
from tests.integration.serve.test_hub_contacts import _documented_grants, app_role
from tests.integration.test_retro_export import _export, aim_plan, rolled_back
from tests.integration.test_retro_export import cli as cli  # a fixture, on this file's svc
from tests.support.sample_service import SampleService


@pytest.fixture
def svc(project: Path, pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Releases]:
    """The example project on PostgreSQL, as test_retro_export drives it (analyses every 10 minutes)."""
    monkeypatch.chdir(project)
    with SampleService("2.4.0") as probe:
        aim_plan(probe.url)
        yield Releases(pg_store, SimulatedClock(), open_project(project).policy)


def as_app_role(pg_store: Store, sql: str, **params: Any) -> int:
    """Run ``sql`` as a role holding exactly the grants operations.md gives ``shiprail_app``; rows changed."""
    with app_role(pg_store, _documented_grants()) as app, app.engine.begin() as conn:
        return conn.execute(sa.text(sql), params).rowcount


def chain_holds(store: Store) -> bool:
    with store.transaction() as s:
        seq, digest = audit.head(s)
        return audit.verify(audit.rows(s), head_seq=seq, head_hash=digest).ok


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("owner", "erin", "release.json's owner is erin, but the resolved release (plan.resolved.json)"),
        ("risk", "low", "release.json's risk is low, but the resolved release (plan.resolved.json)"),
        ("version", "2.4.1", "release.json's version is 2.4.1, but the resolved release (plan.resolved.json)"),
        ("baseline", "2.3.0", "release.json's baseline is 2.3.0, but the resolved release (plan.resolved.json)"),
    ],
)
def test_the_app_role_rewriting_who_owned_a_release_or_its_risk_exports_a_package_that_does_not_verify(
    svc: Releases, cli: Any, tmp_path: Path, pg_store: Store, column: str, value: str, expected: str
) -> None:
    """The release row keeps its owner, risk, version and baseline beside the resolved release that
    the audit events fingerprint. The app role rewrote one of them alone (the owner of a release that
    its owner's friend approved, a high-risk release shown as low-risk) and the package held."""
    rid = rolled_back(svc)
    was = {"owner": "alice", "risk": "high", "version": "2.4.0", "baseline": "2.3.1"}[column]
    assert as_app_role(pg_store, f"UPDATE releases SET {column} = :value WHERE id = :rid", value=value, rid=rid) == 1
    assert chain_holds(pg_store)  # the chain cannot see it: only the package can
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    code, text, err = cli("release", "verify-package", str(out), "--against-store")
    assert code == 1, text + err
    assert (
        f"error: the package {out} does not hold: {expected} that the audit events fingerprint says {was}: "
        "the release's record was changed outside the chain" in " ".join((text + err).split())
    )


def test_the_app_role_rewriting_how_long_a_revert_took_exports_a_package_that_does_not_verify(
    svc: Releases, cli: Any, tmp_path: Path, pg_store: Store
) -> None:
    """A rollback log's revert_confirmed_at is how long the revert took in release show, rollback.md
    and the retrospective ("The revert took …"). The app role moved it to five seconds after detection,
    and the package held: only its cause, reason, people and the contract's verdict were compared."""
    rid = rolled_back(svc)
    with pg_store.transaction() as s:
        took = next(audit.payload_of(e) for e in audit.rows(s, rid) if e.kind == "rollback.confirmed")
    assert took["detected_to_confirmed_s"] != 5.0
    changed = as_app_role(
        pg_store,
        "UPDATE rollback_logs SET revert_confirmed_at = detected_at + interval '5 seconds' WHERE release_id = :rid",
        rid=rid,
    )
    assert changed == 1 and chain_holds(pg_store)
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    assert json.loads((out / "rollback.json").read_text())["rollbacks"][0]["detected_to_confirmed_s"] == 5.0
    code, text, err = cli("release", "verify-package", str(out), "--against-store")
    assert code == 1, text + err
    assert (
        f"error: the package {out} does not hold: rollback.json: the confirmed rollback with id "
        f"{took['rollback_id']} has detected_to_confirmed_s 5.0, but the audit events record "
        f"detected_to_confirmed_s {took['detected_to_confirmed_s']}: the release's record was changed outside "
        "the chain" in " ".join((text + err).split())
    )


def _transcripts() -> list[list[tuple[str, str]]]:
    """operations.md's two psql transcripts (the app role's, then the owner's): (statement, what psql printed)."""
    text = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    after = text.split("What `shiprail_app` then gets when it tries:", 1)[1]
    blocks = [b.split("```", 1)[0] for b in after.split("```\n", 4)[1:4:2]]
    out = []
    for block in blocks:
        pairs: list[tuple[str, str]] = []
        for line in block.strip().splitlines():
            if line.startswith("shiprail=> "):
                pairs.append((line.removeprefix("shiprail=> "), ""))
            else:
                sql, printed = pairs[-1]
                pairs[-1] = (sql, f"{printed}\n{line}".lstrip("\n"))
        out.append(pairs)
    return out


def _psql_error(store: Store, sql: str) -> str:
    """What psql prints when ``sql`` fails on ``store``: its ERROR line and, when there is one, its CONTEXT."""
    with store.engine.connect() as conn:
        try:
            conn.exec_driver_sql(sql)
        except sa.exc.DBAPIError as exc:
            diag = exc.orig.diag  # type: ignore[union-attr]
            context = f"\nCONTEXT:  {diag.context.strip()}" if diag.context else ""
            return f"ERROR:  {diag.message_primary}{context}"
    return "(no error)"


def test_the_app_role_and_the_owner_meet_the_refusals_operations_md_shows(pg_store: Store) -> None:
    """The page's psql transcripts, run as a role with exactly the documented grants and as the
    table's owner: the owner's showed the ERROR line alone, where psql also prints the trigger's
    CONTEXT line."""
    with pg_store.transaction() as s:
        for n in range(3):
            audit.append(
                s, at=datetime(2026, 3, 1, 12, n, tzinfo=UTC), actor="alice", kind="x", release_id=None, payload={}
            )
    app_said, owner_said = _transcripts()
    assert len(app_said) == 4 and len(owner_said) == 1
    with app_role(pg_store, _documented_grants()) as app:
        assert [(sql, _psql_error(app, sql)) for sql, _ in app_said] == app_said
    assert [(sql, _psql_error(pg_store, sql)) for sql, _ in owner_said] == owner_said
    assert chain_holds(pg_store)


def test_the_app_role_adding_an_analysis_no_controller_made_exports_a_package_that_does_not_verify(
    svc: Releases, cli: Any, tmp_path: Path, pg_store: Store
) -> None:
    """The app role may INSERT into analyses (the controller records each one). A passing analysis
    added at 50 %, where the contract rolled the release back, showed in rollout.json's analyses
    and its metrics per step, and the package held: analyses were not compared with their events."""
    rid = rolled_back(svc)
    fake = '[{"trigger":"errors","value":0.001,"verdict":"pass"}]'
    added = as_app_role(
        pg_store,
        "INSERT INTO analyses (release_id, at, status, step, weight, verdict, results) "
        "SELECT id, state_since, 'rolling_out', 2, 50.0, 'pass', :fake FROM releases WHERE id = :rid",
        rid=rid,
        fake=fake,
    )
    assert added == 1 and chain_holds(pg_store)
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    code, text, err = cli("release", "verify-package", str(out), "--against-store")
    assert code == 1, text + err
    assert (
        f"error: the package {out} does not hold: rollout.json: analysis step 2, weight 50.0, verdict pass, "
        f"results {fake} is not in the "
        "audit events: the release's record was changed outside the chain" in " ".join((text + err).split())
    )


@pytest.mark.parametrize(
    ("table", "column", "expected"),
    [
        ("releases", "created_at", "release.json's created_at is {moved}, but the audit events record {was}"),
        (
            "postmortems",
            "opened_at",
            "gates.json: the post-mortem with id 1 has opened_at {moved}, but the audit events record opened_at {was}",
        ),
        (
            "rollback_logs",
            "decided_at",
            "rollback.json: the rollback with id 1 has decided_at {moved}, but the audit "
            "events record decided_at {was}",
        ),
    ],
    ids=["created_at", "opened_at", "decided_at"],
)
def test_the_app_role_moving_a_row_time_exports_a_package_that_does_not_verify(
    svc: Releases, cli: Any, tmp_path: Path, pg_store: Store, table: str, column: str, expected: str
) -> None:
    """When the release was created, its post-mortem opened, its rollback decided: the app role moved
    one five seconds and the package held, those times not being compared with their events."""
    rid = rolled_back(svc)
    where = "id" if table == "releases" else "release_id"
    with pg_store.engine.connect() as conn:
        was = conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE {where} = :rid"), {"rid": rid}).scalar_one()
    moved = as_app_role(
        pg_store, f"UPDATE {table} SET {column} = {column} + interval '5 seconds' WHERE {where} = :rid", rid=rid
    )
    assert moved == 1 and chain_holds(pg_store)
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    code, text, err = cli("release", "verify-package", str(out), "--against-store")
    assert code == 1, text + err
    message = expected.format(
        moved=(was + timedelta(seconds=5)).astimezone(UTC).isoformat(), was=was.astimezone(UTC).isoformat()
    )
    assert (
        f"error: the package {out} does not hold: {message}" in " ".join((text + err).split())
        and "the release's record was changed outside the chain" in text + err
    )
