"""A store on PostgreSQL in a schema of its own, for tests and benchmarks that must not share one."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence

import psycopg
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


_PG_TEMPLATES: dict[str, str | None] = {}


def _libpq_url(url: str) -> str:
    """``url`` (an SQLAlchemy URL) as libpq and its tools read it."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_schema_dump(url: str, schema: str) -> str | None:
    """``pg_dump`` of ``schema`` (its rows as INSERTs), the schema named ``SCHEMA_PLACEHOLDER`` and psql's
    meta-commands (a random ``\\restrict`` key) left out; None without a ``pg_dump`` that can dump it (one
    older than the server refuses)."""
    binary = shutil.which("pg_dump")
    if binary is None:
        return None
    command = [binary, "--schema", schema, "--inserts", "--dbname", _libpq_url(url)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    dump = done.stdout
    return "\n".join(line for line in dump.splitlines() if not line.startswith("\\")).replace(
        schema, SCHEMA_PLACEHOLDER
    )


def _migrated_schema_sql(url: str, prefix: str) -> str | None:
    """SQL that fills the empty schema ``SCHEMA_PLACEHOLDER`` with what ``Store``'s migrations make (tables,
    sequences, functions, triggers, rows): the dump of a schema migrated once. None without ``pg_dump``."""
    with pg_schema_store(url, prefix) as store, store.engine.connect() as conn:
        dump = pg_schema_dump(url, conn.execute(sa.text("SELECT current_schema()")).scalar_one())
    # pg_schema makes the schema itself.
    return None if dump is None else dump.replace(f"CREATE SCHEMA {SCHEMA_PLACEHOLDER};", "")


SCHEMA_PLACEHOLDER = "shiprail_template_schema"


@contextlib.contextmanager
def pg_migrated_store(url: str, prefix: str) -> Iterator[Store]:
    """Like ``pg_schema_store``, faster: the schema is filled from a copy of one this process migrated once,
    not migrated again (Alembic's DDL, run under the database-wide migration lock, took seconds a store)."""
    if url not in _PG_TEMPLATES:
        _PG_TEMPLATES[url] = _migrated_schema_sql(url, prefix)
    template = _PG_TEMPLATES[url]
    if template is None:
        with pg_schema_store(url, prefix) as store:
            yield store
        return
    with pg_schema(url, prefix) as schema:
        # One round trip on a connection of its own (the dump sets its search_path to nothing).
        try:
            with psycopg.connect(_libpq_url(url)) as conn:
                conn.execute(template.replace(SCHEMA_PLACEHOLDER, schema).encode())
        except psycopg.errors.UndefinedObject:
            # A pg_dump newer than the server writes settings it does not know (pg_dump 17's
            # SET transaction_timeout on PostgreSQL 15): the dump, one transaction, was rolled back
            # whole, so Store migrates the empty schema below, and every later store at once.
            _PG_TEMPLATES[url] = None
        # A commit does not wait for the server's disk (1.3 ms on the test machine): what a
        # transaction sees and leaves is the same, only a crash of the server could lose it.
        options = f"-csearch_path={schema} -csynchronous_commit=off"
        store = Store(url, engine_options={"connect_args": {"options": options}})
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
