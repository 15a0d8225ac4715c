"""Fixtures for the store tests: a URL the CLI can open for the same database as ``store``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shiprail.store.db import Store


@pytest.fixture
def store_url(store: Store) -> str:
    """``--db`` for ``store``: the SQLite file, or PostgreSQL with the test's schema on the search path."""
    if store.dialect == "sqlite":
        return store.url
    with store.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    return f"{store.url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Run the CLI outside any project, with no database or audit key from the environment."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.delenv("SHIPRAIL_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHIPRAIL_AUDIT_KEY", raising=False)
