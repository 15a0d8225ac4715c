"""``shiprail migrate --to REVISION``: a store taken back to an older schema revision and up again
keeps what the older schema can hold, on both backends; never under a live controller unless forced."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from shiprail import __version__
from shiprail.cli.main import main
from shiprail.clock import SimulatedClock
from shiprail.controller import Controller
from shiprail.errors import SchemaChanged
from shiprail.project import check_plan_file, open_project
from shiprail.providers.push import record_signal
from shiprail.releases import Releases
from shiprail.store.db import SCHEMA_HEAD, Store, alembic_config, known_revisions, resolve_url
from shiprail.store.models import Base
from tests.integration.controller.test_controller import FakeRouter, controller
from tests.support.overrides import override
from tests.support.stores import pg_role

from .chain import check
from .test_migrations import TABLES, current_revision, differences, triggers

PREVIOUS = known_revisions()[-2]
REASON = "Carol is out sick; Bob reviewed the whole diff twice"
# The tables migrations after the first one add: going back to it drops them, with their rows.
CONTROLLER_STATE = {"signals", "analyses", "leases", "rollback_logs", "rollouts", "router_intents", "controllers"}
LATER = CONTROLLER_STATE | {"flag_configs", "flag_clients", "deliveries", "cursors", "retrospectives"}
FIRST = TABLES - LATER


def rows(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of ``store`` (at the newest revision), in a stable order."""
    with store.engine.connect() as conn:
        return {
            table.name: sorted((dict(r._mapping) for r in conn.execute(sa.select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def shown(store_url: str) -> str:
    return sa.make_url(resolve_url(store_url)).render_as_string(hide_password=True)


def migrate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["migrate", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def rolling_out(store: Store, project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Releases, str, Controller]:
    """The example release at its first step, driven by a controller that has made one pass (on a
    clock that starts now, so its presence is live for ``shiprail migrate``), approved by bob, with a
    complaint signalled."""
    monkeypatch.chdir(project)
    svc = Releases(store, SimulatedClock(datetime.now(UTC)), open_project(project).policy)
    rid = svc.create(check_plan_file(Path("releases/checkout-2.4.0.yaml")), "alice").id
    svc.approve(rid, "bob")
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Load tests now run in the pipeline.")
    record_signal(store, svc.clock, service="checkout", name="customer_complaint", actor="support", key="t-1")
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    assert svc.get(rid).status == "rolling_out"
    return svc, rid, ctl


@pytest.mark.usefixtures("cli_env")
def test_a_store_goes_back_a_revision_and_to_the_first_and_up_again_keeping_its_data(
    store: Store, store_url: str, rolling_out: tuple[Releases, str, Controller], capsys: pytest.CaptureFixture[str]
) -> None:
    svc, rid, ctl = rolling_out
    where = shown(store_url)
    holder = ctl.holder
    # A controller alive on the store: it would go on writing to a schema taken from under it.
    assert migrate(capsys, "--db", store_url, "--to", PREVIOUS) == (
        1,
        "",
        f"error: 1 controller(s) still run on the database {where} ({holder}): stop every `shiprail controller` "
        f"and `shiprail serve` on it before taking it back to schema revision {PREVIOUS} (or pass --force) "
        "(nothing was changed)\n",
    )
    assert current_revision(store) == SCHEMA_HEAD
    ctl.close()
    before = rows(store)
    assert before["overrides"][0]["refused_by"] is not None  # added by 0011: lost below it
    assert {t: len(before[t]) for t in ("rollouts", "router_intents", "signals", "approvals")} == dict.fromkeys(
        ("rollouts", "router_intents", "signals", "approvals"), 1
    )

    warnings = (
        f"warning: start only a shiprail whose newest schema revision is {{to}} on it: most commands of this one "
        f"({__version__}, newest {SCHEMA_HEAD}) migrate it up again as they open it\n"
        f"warning: releases in flight, which the older shiprail's controller takes on where they are: {rid} "
        "(rolling_out)\n"
    )
    assert migrate(capsys, "--db", store_url, "--to", PREVIOUS) == (
        0,
        f"migrated the database {where} back from schema revision {SCHEMA_HEAD} to {PREVIOUS}\n",
        warnings.format(to=PREVIOUS),
    )
    assert current_revision(store) == PREVIOUS
    assert "ix_analyses_release_id_id" not in {i["name"] for i in sa.inspect(store.engine).get_indexes("analyses")}
    assert migrate(capsys, "--db", store_url, "--to", "head") == (
        0,
        f"migrated the database {where} from schema revision {PREVIOUS} to {SCHEMA_HEAD}\n",
        "",
    )
    assert differences(store) == []
    assert rows(store) == before

    first = known_revisions()[0]
    # The first revision holds no controller state: no older controller takes the release on there.
    lost = (
        f"warning: releases in flight lose where their rollout was (schema revision {first} holds no controller "
        f"state; their status and audit trail stay): {rid} (rolling_out)\n"
    )
    assert migrate(capsys, "--db", store_url, "--to", first) == (
        0,
        f"migrated the database {where} back from schema revision {SCHEMA_HEAD} to {first}\n",
        warnings.format(to=first).splitlines(keepends=True)[0] + lost,
    )
    assert set(sa.inspect(store.engine).get_table_names()) == FIRST | {"alembic_version"}
    assert migrate(capsys, "--db", store_url) == (
        0,
        f"migrated the database {where} from schema revision {first} to {SCHEMA_HEAD}\n",
        "",
    )
    assert differences(store) == []
    assert set(sa.inspect(store.engine).get_table_names()) == TABLES | {"alembic_version"}
    again = rows(store)
    # The tables of the first revision keep their rows (an approval's resolved hash, added by 0010,
    # is filled in again from the audit trail); the later tables start empty.
    assert {t: again[t] for t in FIRST - {"overrides"}} == {t: before[t] for t in FIRST - {"overrides"}}
    assert again["overrides"] == [{**o, "refused_by": None} for o in before["overrides"]]
    assert {t for t in LATER if again[t]} == set()
    assert check(store).ok
    assert svc.get(rid).status == "rolling_out"


@pytest.mark.usefixtures("cli_env")
def test_force_takes_a_store_back_beside_a_live_controller_which_then_stops(
    store: Store, store_url: str, rolling_out: tuple[Releases, str, Controller], capsys: pytest.CaptureFixture[str]
) -> None:
    _, rid, ctl = rolling_out
    code, out, _ = migrate(capsys, "--db", store_url, "--to", PREVIOUS, "--force", "--json")
    assert (code, json.loads(out)) == (
        0,
        {
            "ok": True,
            "url": shown(store_url),
            "from": [SCHEMA_HEAD],
            "revision": PREVIOUS,
            "in_flight": [{"id": rid, "status": "rolling_out"}],
        },
    )
    assert current_revision(store) == PREVIOUS
    with pytest.raises(SchemaChanged) as stopped:
        ctl.tick()
    assert stopped.value.message == (
        f"the database {store.display_url} is now at schema revision {PREVIOUS}, older than {SCHEMA_HEAD}, which "
        f"this shiprail ({__version__}) needs: it was taken back (`shiprail migrate --to`) or restored from an older "
        "backup while this one ran; stopped (run the shiprail of that revision on every machine that shares the "
        "database, or `shiprail migrate` to bring it forward again)"
    )
    ctl.close()


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--to", "0099"],
            f"--to 0099: this shiprail ({__version__}) has no schema revision '0099'; give one of "
            f"{', '.join(known_revisions())} (the newest, {SCHEMA_HEAD}, is also `head`)",
        ),
        (
            ["--to", "base"],
            f"--to base: this shiprail ({__version__}) has no schema revision 'base'; give one of "
            f"{', '.join(known_revisions())} (the newest, {SCHEMA_HEAD}, is also `head`)",
        ),
        (["--force"], "--force goes with --to REVISION only (it lets a downgrade run beside live controllers)"),
    ],
)
def test_migrate_to_refuses_a_revision_it_does_not_know_naming_those_it_does(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "shiprail.db"
    assert migrate(capsys, "--db", f"sqlite:///{db}", *args) == (2, "", f"error: {message}\n")
    assert not db.exists()  # refused before the store was opened: nothing was created


@pytest.mark.usefixtures("cli_env")
def test_going_back_as_a_role_that_may_not_alter_the_schema_says_what_to_run(
    pg_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg_role(pg_store, ["GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"]) as (
        role,
        schema,
    ):
        url = f"{sa.make_url(pg_store.url).set(username=role).render_as_string()}?options=-csearch_path%3D{schema}"
        code, out, err = migrate(capsys, "--db", url, "--to", PREVIOUS)
        assert (code, out) == (1, "")
        assert err == (
            f"error: the database {shown(url)} is at schema revision {SCHEMA_HEAD}, and taking it to {PREVIOUS} "
            f"failed: must be owner of table analyses; run `shiprail migrate --to {PREVIOUS}` as the role that owns "
            "the schema (nothing was changed)\n"
        )
    assert current_revision(pg_store) == SCHEMA_HEAD
    assert differences(pg_store) == []


def schema(store: Store) -> dict[str, Any]:
    """What the store's tables are: columns, indexes, unique constraints, foreign keys, primary keys;
    and its triggers. (One query for each kind, for all the tables: the test takes 23 of these.)"""
    inspector = sa.inspect(store.engine)
    kinds = {
        "columns": {
            k: [(c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in v]
            for k, v in inspector.get_multi_columns().items()
        },
        "indexes": {
            k: sorted((i["name"], i["column_names"], i["unique"]) for i in v)
            for k, v in inspector.get_multi_indexes().items()
        },
        "unique": {
            k: sorted((u["name"], u["column_names"]) for u in v)
            for k, v in inspector.get_multi_unique_constraints().items()
        },
        "foreign": {
            k: sorted((f["name"], f["constrained_columns"], f["referred_table"]) for f in v)
            for k, v in inspector.get_multi_foreign_keys().items()
        },
        "primary": dict(inspector.get_multi_pk_constraint()),
    }
    return {**kinds, "triggers": triggers(store)}


def test_each_migration_taken_back_leaves_the_schema_its_upgrade_found(store: Store) -> None:
    """Going back to a revision gives the very schema that coming up to it gave: every downgrade()
    undoes its upgrade(), so `migrate --to` leaves what the older shiprail created itself."""
    cfg = alembic_config()

    def move(to: str, how: Any) -> dict[str, Any]:
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            how(cfg, to)
        return schema(store)

    revisions = known_revisions()
    down = {to: move(to, command.downgrade) for to in reversed(revisions[:-1])}
    move("base", command.downgrade)
    up = {to: move(to, command.upgrade) for to in revisions[:-1]}
    assert [to for to in down if down[to] != up[to]] == []
    assert len({repr(s) for s in up.values()}) == len(revisions) - 1  # each revision changed something


def test_opening_a_sqlite_store_at_the_newest_revision_reads_only_its_revision(sqlite_store: Store) -> None:
    """The foreign key check after a migration scans every table: not at every opening, where nothing migrated."""
    again = Store(sqlite_store.url, migrate=False)
    ran: list[str] = []
    sa.event.listen(again.engine, "before_cursor_execute", lambda _c, _cur, statement, *_: ran.append(statement))
    try:
        again.migrate()
    finally:
        again.close()
    assert [s for s in ran if "alembic_version" not in s and not s.startswith("PRAGMA main.table_")] == []


def test_a_command_that_migrates_the_store_as_it_opens_it_says_so_once(
    store: Store, store_url: str, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An upgraded shiprail's first command migrates the store: on stderr, not silently (the older
    shiprail's controllers stop on it); the next command, on a current store, says nothing."""
    monkeypatch.chdir(project)
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    assert migrate(capsys, "--db", store_url, "--to", PREVIOUS)[0] == 0
    assert main(["release", "list", "--json", "--db", store_url]) == 0
    assert capsys.readouterr() == (
        "[]\n",
        f"note: migrated the database {shown(store_url)} from schema revision {PREVIOUS} to {SCHEMA_HEAD}, this "
        f"shiprail's newest, as it opened it (shiprail {__version__})\n",
    )
    assert main(["release", "list", "--json", "--db", store_url]) == 0
    assert capsys.readouterr() == ("[]\n", "")
