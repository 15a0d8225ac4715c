"""Shared fixtures: a project on disk, and stores on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shiprail.cli.init import write_project
from shiprail.store.db import Store
from tests.support.stores import pg_migrated_store, pg_schema_store

PG_URL = os.environ.get("SHIPRAIL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means "not available"
        return f"PostgreSQL at {PG_URL} does not answer ({type(exc).__name__})"


_PG_PROBLEM: str | bool | None = False


def pg_problem() -> str | None:
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _pg_available()
    return _PG_PROBLEM  # type: ignore[return-value]


def require_pg() -> None:
    """Skip (with the reason) when PostgreSQL is missing, except on CI where it must be there."""
    problem = pg_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI must run the PostgreSQL tests")
        pytest.skip(problem)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project from `shiprail init` (policy, checkout service, example plan)."""
    write_project(tmp_path)
    return tmp_path


FROM_ZERO = "store_migrated_from_zero"
"""The marker of tests whose ``store`` must be migrated from an empty database, not copied from one
migrated once (the copies are what the migrations made; a test of the migrations themselves runs them)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{FROM_ZERO}: the store fixtures run the migrations instead of copying")


@pytest.fixture
def pg_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store on PostgreSQL, in a schema of its own that is dropped afterwards."""
    require_pg()
    fresh = pg_schema_store if request.node.get_closest_marker(FROM_ZERO) else pg_migrated_store
    with fresh(PG_URL, "t_") as store:
        yield store


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store migrated once (per test process) and closed, for ``sqlite_store`` to copy."""
    path = tmp_path_factory.mktemp("template") / "shiprail.db"
    Store(f"sqlite:///{path}").close()
    assert not path.with_name(f"{path.name}-wal").exists(), "the template's write-ahead log was not checkpointed"
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store on a SQLite file."""
    path = tmp_path / "shiprail.db"
    if not request.node.get_closest_marker(FROM_ZERO):
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    store = Store(f"sqlite:///{path}")
    # As on PostgreSQL (tests/support/stores.py): a commit does not wait for the disk, what it
    # leaves is the same; WAL's synchronous=NORMAL loses nothing short of a crash of the machine.
    sa.event.listen(
        store.engine, "connect", lambda dbapi_conn, _record: dbapi_conn.execute("PRAGMA synchronous=NORMAL")
    )
    store.engine.dispose()
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test on both backends."""
    fixture = "sqlite_store" if request.param == "sqlite" else "pg_store"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]
