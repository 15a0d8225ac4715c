"""A store on PostgreSQL in a schema of its own, for tests and benchmarks that must not share one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from shiprail.store.db import Store


@contextlib.contextmanager
def pg_schema_store(url: str, prefix: str) -> Iterator[Store]:
    """A store on the PostgreSQL database ``url``, in a fresh schema named ``prefix`` + 12 hex digits, dropped after."""
    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = Store(url, engine_options={"connect_args": {"options": f"-csearch_path={schema}"}})
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
