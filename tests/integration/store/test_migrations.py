"""Migrations from zero produce exactly the schema the models describe, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from shiprail import __version__
from shiprail.cli.main import main
from shiprail.clock import SimulatedClock
from shiprail.domain.states import Action
from shiprail.errors import GateFailed, StoreError
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.store import audit
from shiprail.store.db import SCHEMA_HEAD, Store, alembic_config, resolve_url
from shiprail.store.models import Base

from .chain import APPEND_ONLY, check, fill

pytestmark = pytest.mark.store_migrated_from_zero

TABLES = {
    "releases",
    "approvals",
    "signoffs",
    "check_runs",
    "gate_evaluations",
    "overrides",
    "postmortems",
    "audit_events",
    "audit_head",
    "rollouts",
    "router_intents",
    "analyses",
    "rollback_logs",
    "signals",
    "leases",
    "controllers",
    "flag_configs",
    "flag_clients",
    "deliveries",
    "cursors",
    "retrospectives",
}


def differences(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def triggers(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'"
        else:
            query = (
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid = to_regclass(current_schema() || '.audit_events')"
            )
        return set(conn.execute(sa.text(query)).scalars())


def expected_triggers(store: Store) -> set[str]:
    if store.dialect == "sqlite":
        return {"audit_events_no_update", "audit_events_no_delete"}
    return {"audit_events_append_only", "audit_events_no_truncate"}


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_a_fresh_database_matches_the_models(store: Store) -> None:
    assert differences(store) == []
    assert set(sa.inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
    assert current_revision(store) == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert triggers(store) == expected_triggers(store)
    with store.transaction() as s:
        assert audit.head(s) == (0, audit.GENESIS)


def test_the_head_a_store_opens_at_without_alembic_is_the_newest_script() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def one_migration_behind(store: Store) -> str | None:
    """Take ``store`` (filled with 2 events) one migration back; the revision it is at then."""
    fill(store, 2)
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    return current_revision(store)


def test_a_store_one_migration_behind_is_brought_to_the_head_when_opened(store: Store) -> None:
    assert one_migration_behind(store) != SCHEMA_HEAD
    again = Store(store.url, engine_options={"connect_args": _connect_args(store)})
    try:
        assert current_revision(again) == SCHEMA_HEAD
        assert differences(again) == []
        assert check(again).last_seq == 2
    finally:
        again.close()


def test_a_store_one_migration_behind_is_left_as_it_is_by_a_command_that_only_reads(store: Store) -> None:
    behind = one_migration_behind(store)
    with pytest.raises(StoreError) as refused:
        Store(store.url, create=False, engine_options={"connect_args": _connect_args(store)})
    assert str(refused.value) == (
        f"the database {store.display_url} is at schema revision {behind}, older than {SCHEMA_HEAD}, which this "
        f"shiprail ({__version__}) reads; a command that only reads does not migrate it: run `shiprail migrate` on "
        "it first (on a backup, on a copy of it), or read it with the shiprail that wrote it (nothing was changed)"
    )
    assert current_revision(store) == behind


def test_opening_a_migrated_database_again_changes_nothing(store: Store) -> None:
    fill(store, 3)
    store.migrate()
    again = Store(store.url, engine_options={"connect_args": _connect_args(store)})
    try:
        assert differences(again) == []
        assert check(again).ok
        assert check(again).last_seq == 3
    finally:
        again.close()


def _connect_args(store: Store) -> dict[str, Any]:
    if store.dialect == "sqlite":
        return {}
    with store.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    return {"options": f"-csearch_path={schema}"}


def test_downgrade_to_base_and_upgrade_again(store: Store) -> None:
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")

    assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(store) is None
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            assert conn.execute(sa.text("SELECT to_regprocedure('shiprail_audit_append_only()')")).scalar() is None
        else:
            assert conn.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")).scalar() == 0

    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    assert differences(store) == []
    assert set(sa.inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
    assert triggers(store) == expected_triggers(store)
    fill(store, 3)
    assert check(store).ok
    with pytest.raises(DBAPIError, match=APPEND_ONLY), store.transaction() as s:
        s.execute(sa.text("DELETE FROM audit_events"))


def test_the_comparison_sees_a_schema_that_drifted(store: Store) -> None:
    """Guards the test above against comparing nothing: dropped indexes show up."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_audit_events_release_id"))
        conn.execute(sa.text("DROP INDEX ix_releases_status"))

    found = {(diff[0], diff[1].name) for diff in differences(store)}
    assert found == {("add_index", "ix_audit_events_release_id"), ("add_index", "ix_releases_status")}


# Every kind of command: one that only reads, one that writes, the controller, the migration.
NEWER_STORE_COMMANDS = [
    ["audit", "verify"],
    ["audit", "export"],
    ["controllers"],
    ["release", "list"],
    ["release", "create", "releases/checkout-2.4.0.yaml", "--as", "alice"],
    ["controller", "--once"],
    ["migrate"],
    ["migrate", "--to", "0011"],
]


def test_a_store_at_a_revision_this_shiprail_does_not_know_is_refused_in_one_sentence_and_left_alone(
    store: Store, store_url: str, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newer shiprail migrated the store: an older one says so (exit 1), no Alembic traceback, nothing changed,
    and says how to run it all the same: take the store back with the newer one."""
    monkeypatch.chdir(project)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHIPRAIL_AUDIT_KEY", raising=False)
    fill(store, 2)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    shown = sa.make_url(resolve_url(store_url)).render_as_string(hide_password=True)
    message = (
        f"the database {shown} is at schema revision 0099, which this shiprail ({__version__}, newest revision "
        f"{SCHEMA_HEAD}) does not know: a newer shiprail migrated it; run that version or newer, or take the store "
        f"back with it first (`shiprail migrate --to {SCHEMA_HEAD}`, as in docs/operations.md) (nothing was changed)"
    )
    for args in NEWER_STORE_COMMANDS:
        assert (main([*args, "--db", store_url]), capsys.readouterr()) == (1, ("", f"error: {message}\n")), args
    with pytest.raises(StoreError) as refused:
        Store(store.url, engine_options={"connect_args": _connect_args(store)})
    assert refused.value.message == message.replace(shown, store.display_url)
    assert current_revision(store) == "0099"
    assert differences(store) == []
    assert check(store).last_seq == 2


def test_approvals_stored_before_0010_count_while_the_release_has_not_changed_since(
    store: Store, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    svc = Releases(store, SimulatedClock(), open_project(project).policy)
    plan = Path("releases/checkout-2.4.0.yaml")

    def release(*steps: tuple[str, str]) -> str:
        rid = svc.create(check_plan_file(plan), "alice").id
        for what, who in steps:
            if what == "approve":
                svc.approve(rid, who)
            elif what == "update":
                svc.update_plan(rid, check_plan_file(plan), who)
            else:
                svc.act(rid, Action.STAGE, who)
        return rid

    kept = release(("approve", "bob"), ("approve", "carol"))
    replaced = release(("approve", "bob"), ("update", "alice"), ("approve", "carol"))
    staged = release(("approve", "bob"), ("approve", "carol"), ("update", "alice"), ("stage", "alice"))
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    assert "resolved_hash" not in {c["name"] for c in sa.inspect(store.engine).get_columns("approvals")}
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert differences(store) == []

    def counted(rid: str) -> list[tuple[str, bool]]:
        return [(a["by"], a["current"]) for a in svc.get(rid).approvals]

    # Nothing replaced since they approved: they count. Replaced after bob approved: the audit
    # trail cannot tell whether the service file or policy changed then, so he approves again.
    # Staged: its plan cannot change any more, and its Stage gate counted both.
    assert counted(kept) == [("bob", True), ("carol", True)]
    assert counted(replaced) == [("bob", False), ("carol", True)]
    assert counted(staged) == [("bob", True), ("carol", True)]
    assert all(a["resolved_hash"] == svc.get(kept).resolved_hash for a in svc.get(kept).approvals)
    svc.act(kept, Action.STAGE, "alice")
    with pytest.raises(GateFailed, match=r"gate approvals failed \(1 of 2 required approvals given\)"):
        svc.act(replaced, Action.STAGE, "alice")
    svc.approve(replaced, "bob")
    assert counted(replaced) == [("bob", False), ("carol", True), ("bob", True)]
    svc.act(replaced, Action.STAGE, "alice")
    assert check(store).ok


def test_check_schema_names_a_database_whose_tables_are_gone(store: Store) -> None:
    """A controller's database dropped and recreated empty: its passes say so, not 'relation … does not exist'."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE alembic_version"))
    with pytest.raises(StoreError) as caught:
        store.check_schema()
    assert str(caught.value) == (
        f"the database {store.display_url} has no shiprail tables any more (dropped, or an empty database in its "
        "place): restore it from a backup; `shiprail migrate` would start an empty store"
    )
