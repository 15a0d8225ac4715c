"""The test stores are what migrating makes: the fixtures copy one store migrated once instead of
migrating each (``tests/conftest.py``), so a copy must hold the very schema and rows a migration does."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from shiprail.store.db import Store
from tests.conftest import PG_URL
from tests.support import stores
from tests.support.stores import pg_migrated_store, pg_schema_dump, pg_schema_store


def pg_dump(store: Store) -> str:
    with store.engine.connect() as conn:
        dump = pg_schema_dump(store.url, conn.execute(sa.text("SELECT current_schema()")).scalar_one())
    if dump is None:
        pytest.skip("no pg_dump that can dump this server (then the PostgreSQL store fixture migrates every store)")
    return dump


def test_a_postgresql_test_store_holds_exactly_what_migrating_an_empty_schema_makes(pg_store: Store) -> None:
    with pg_schema_store(PG_URL, "t_") as migrated:
        expected = pg_dump(migrated)
    assert "CREATE TRIGGER audit_events_append_only" in expected
    assert pg_dump(pg_store) == expected


def test_a_sqlite_test_store_holds_what_migrating_an_empty_file_makes(sqlite_store: Store, tmp_path: Path) -> None:
    migrated = Store(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        with migrated.engine.connect() as conn, sqlite_store.engine.connect() as copy:
            assert copy.execute(sa.text(schema)).all() == conn.execute(sa.text(schema)).all()
            for table in ("alembic_version", "audit_head"):
                rows = f"SELECT * FROM {table}"
                assert copy.execute(sa.text(rows)).all() == conn.execute(sa.text(rows)).all()
    finally:
        migrated.close()


def test_a_dump_the_server_refuses_is_migrated_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pg_dump newer than the server writes settings it does not know (pg_dump 17's
    # `SET transaction_timeout = 0;`, refused by PostgreSQL 15 and older): every PostgreSQL test
    # failed at its fixture, "unrecognized configuration parameter", instead of migrating its store.
    with pg_schema_store(PG_URL, "t_") as migrated:
        expected = pg_dump(migrated)
    with pg_migrated_store(PG_URL, "t_"):  # the template of this process, made if not yet
        pass
    template = stores._PG_TEMPLATES[PG_URL]
    assert template is not None
    monkeypatch.setitem(stores._PG_TEMPLATES, PG_URL, "SET shiprail_newer_setting = 0;\n" + template)
    with pg_migrated_store(PG_URL, "t_") as store:
        assert pg_dump(store) == expected
    assert stores._PG_TEMPLATES[PG_URL] is None  # later stores migrate at once
