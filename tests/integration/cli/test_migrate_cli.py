"""``shiprail migrate`` creates and upgrades a store; the read-only commands never create one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail.store.db import SCHEMA_HEAD, Store, known_revisions
from tests.conftest import PG_URL, require_pg
from tests.support.processes import stop
from tests.support.stores import pg_schema


@pytest.fixture
def empty_db() -> Iterator[tuple[str, sa.Engine, str]]:
    """A PostgreSQL URL searching an empty schema of its own (dropped after); an engine to look; the schema."""
    require_pg()
    admin = sa.create_engine(PG_URL)
    try:
        with pg_schema(PG_URL, "m_") as schema:
            yield f"{PG_URL}?options=-csearch_path%3D{schema}", admin, schema
    finally:
        admin.dispose()


def tables(admin: sa.Engine, schema: str) -> list[str]:
    return sorted(sa.inspect(admin).get_table_names(schema=schema))


def test_read_commands_refuse_a_database_without_shiprail_tables_and_migrate_creates_them(
    shiprail: Any, empty_db: tuple[str, sa.Engine, str]
) -> None:
    url, admin, schema = empty_db
    where = sa.make_url(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)).render_as_string()
    # audit verify "verified" an empty chain and created 22 tables as it went: cli.md says the
    # audit commands never create a store.
    for args in (["audit", "verify"], ["audit", "export"], ["controllers"]):
        r = shiprail(*args, "--db", url)
        assert (r.code, r.out) == (2, ""), args
        assert r.err.startswith(f"error: no shiprail store in the database {where}"), r.err
        assert r.err.endswith(
            "(it has no shiprail tables); `shiprail migrate` creates them, run as the role that owns the schema\n"
        )
    assert tables(admin, schema) == []

    r = shiprail("migrate", "--db", url)
    assert (r.code, r.err) == (0, "")
    assert r.out.startswith("created shiprail's tables in the database ")
    assert r.out.endswith(f"(schema revision {SCHEMA_HEAD})\n")
    assert "alembic_version" in tables(admin, schema) and "audit_events" in tables(admin, schema)
    r = shiprail("migrate", "--db", url, "--json")
    assert (r.code, r.json()["from"], r.json()["revision"]) == (0, None, SCHEMA_HEAD)
    r = shiprail("audit", "verify", "--db", url)
    assert (r.code, r.out) == (0, "audit chain ok: 0 events, head 0000000000000000…\n")


def test_migrate_upgrades_an_older_schema_and_says_from_where(
    shiprail: Any, empty_db: tuple[str, sa.Engine, str]
) -> None:
    from alembic import command

    from shiprail.store.db import Store, alembic_config

    url, _, _ = empty_db
    store = Store(url)
    with store.engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    store.close()
    # The commands that only read leave it as it is: verifying a backup must not change it.
    for args in (["audit", "verify"], ["audit", "export"], ["controllers"]):
        r = shiprail(*args, "--db", url)
        assert (r.code, r.out) == (1, ""), args
        assert "is at schema revision 0005, older than" in r.err, r.err
        assert r.err.endswith("or read it with the shiprail that wrote it (nothing was changed)\n"), r.err
    r = shiprail("migrate", "--db", url)
    assert (r.code, r.err) == (0, "")
    assert r.out.startswith("migrated the database ") and r.out.endswith(
        f" from schema revision 0005 to {SCHEMA_HEAD}\n"
    )
    r = shiprail("migrate", "--db", url)
    assert r.out.endswith(f"is at schema revision {SCHEMA_HEAD}, this shiprail's newest\n")


def test_a_downgrade_is_refused_while_a_serve_without_a_controller_runs_on_the_store(
    shiprail: Any, project: Path, empty_db: tuple[str, sa.Engine, str]
) -> None:
    # `serve --no-controller` writes to the store (SDK outcomes, signals, contacts) but records no
    # presence: `migrate --to` took the schema from under it with nothing said.
    url, _, _ = empty_db
    assert shiprail("migrate", "--db", url).code == 0
    previous = known_revisions()[-2]
    env = {**os.environ, "SHIPRAIL_DATABASE_URL": url}
    argv = [sys.executable, "-m", "shiprail", "serve", "--port", "0", "--no-controller", "--quiet"]
    proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(b"shiprail serve: http://")
        r = shiprail("migrate", "--db", url, "--to", previous)
        where = sa.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1)).render_as_string()
        assert (r.code, r.out, r.err) == (
            1,
            "",
            f"error: 1 `shiprail serve`(s) still run on the database {where} (serve {socket.gethostname()}:"
            f"{proc.pid}): stop every `shiprail controller` and `shiprail serve` on it before taking it back to "
            f"schema revision {previous} (or pass --force) (nothing was changed)\n",
        )
    finally:
        stop(proc)
    r = shiprail("migrate", "--db", url, "--to", previous)
    assert r.code == 0, r.err


def test_serves_on_hosts_with_long_names_are_each_named_with_their_pid(
    shiprail: Any, empty_db: tuple[str, sa.Engine, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL keeps 63 bytes of an application_name: two pods of one deployment (long host names
    # sharing their first 39 characters) were one "serve shiprail-serve-production-eu-west-1-7d9", no PID.
    url, _, _ = empty_db
    assert shiprail("migrate", "--db", url).code == 0
    prefix = "shiprail-serve-production-eu-west-1-7d9f8b6c5d-"
    opened: list[Store] = []
    try:
        for pod in ("x2k4q", "z7m1p"):
            monkeypatch.setattr(socket, "gethostname", lambda pod=pod: prefix + pod)
            store = Store(url.replace("postgresql://", "postgresql+psycopg://", 1))
            store.name_sessions()
            opened.append(store)
            store.engine.connect()  # a session held open, as serve's pool does
        monkeypatch.undo()
        r = shiprail("migrate", "--db", url, "--to", known_revisions()[-2])
    finally:
        for store in opened:
            store.close()
    assert r.code == 1, r.err
    assert "2 `shiprail serve`(s) still run on the database" in r.err, r.err
    named = r.err[r.err.index("(serve ") + 1 : r.err.index("): stop")].split(", ")
    assert [n.endswith(f"{pod}:{os.getpid()}") for n, pod in zip(named, ("x2k4q", "z7m1p"), strict=True)] == [
        True,
        True,
    ]
    assert all(len(f"shiprail serve 01234567 {n.removeprefix('serve ')}") <= 63 for n in named), named


def test_a_controller_of_this_host_whose_process_is_gone_does_not_hold_back_a_downgrade(shiprail: Any) -> None:
    # Killed (kill -9, OOM): `shiprail controllers` no longer listed it, but `migrate --to` still
    # refused the downgrade for it until its row lapsed ("1 controller(s) still run …").
    from datetime import UTC, datetime, timedelta

    from shiprail.cli.context import open_store
    from shiprail.controller import leases
    from shiprail.store.models import ControllerPresence

    assert shiprail("migrate").code == 0
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    store = open_store(None)
    try:
        with store.transaction() as s:  # its row, as it left it when it last passed
            s.add(
                ControllerPresence(
                    holder=f"{leases._scope()}:{dead.pid}:deadbeef", expires_at=datetime.now(UTC) + timedelta(hours=1)
                )
            )
    finally:
        store.close()
    previous = known_revisions()[-2]
    r = shiprail("migrate", "--to", previous)
    assert (r.code, r.err.count("still run")) == (0, 0), r.err
