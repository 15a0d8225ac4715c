"""A store on PostgreSQL in a schema of its own, for tests and benchmarks that must not share one."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence

import sqlalchemy as sa

from shiprail.store.db import Store


@contextlib.contextmanager
def pg_schema(url: str, prefix: str) -> Iterator[str]:
    """A fresh, empty schema on the PostgreSQL database ``url``, named ``prefix`` + 12 hex digits, dropped after."""
    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def pg_schema_store(url: str, prefix: str) -> Iterator[Store]:
    """A store on the PostgreSQL database ``url``, in a fresh schema named ``prefix`` + 12 hex digits, dropped after."""
    with pg_schema(url, prefix) as schema:
        store = Store(url, engine_options={"connect_args": {"options": f"-csearch_path={schema}"}})
        try:
            yield store
        finally:
            store.close()


@contextlib.contextmanager
def pg_role(store: Store, grants: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """A new login role on ``store``'s schema, with USAGE on it and ``grants`` (SQL run as is): (role, schema).

    The role is dropped after, with what it owns.
    """
    with store.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    role = f"r_{uuid.uuid4().hex[:12]}"
    with store.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        for grant in grants:
            conn.execute(sa.text(grant.format(role=f'"{role}"', schema=f'"{schema}"')))
    try:
        yield role, schema
    finally:
        with store.engine.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))


def connection_cutter(store: Store) -> Callable[[], int]:
    """A function that ends every connection ``store`` opened since, from the server's side
    (``pg_terminate_backend``), as a PostgreSQL restart or failover does, and says how many it
    ended; PostgreSQL only."""
    pids: list[int] = []
    sa.event.listen(store.engine, "connect", lambda conn, record: pids.append(conn.info.backend_pid))
    store.engine.dispose()  # every connection from here on is seen, so all can be cut

    def cut() -> int:
        admin = sa.create_engine(store.engine.url)
        with admin.begin() as conn:
            query = "SELECT count(*) FROM unnest(CAST(:pids AS int[])) AS p WHERE pg_terminate_backend(p)"
            ended = int(conn.execute(sa.text(query), {"pids": pids}).scalar_one())
        admin.dispose()
        return ended

    return cut
