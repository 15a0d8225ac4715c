"""The test stores are what migrating makes: the fixtures copy one store migrated once instead of
migrating each (``tests/conftest.py``), so a copy must hold the very schema and rows a migration does."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from shiprail.store.db import Store
from tests.conftest import PG_URL
from tests.support.stores import pg_schema_dump, pg_schema_store


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
