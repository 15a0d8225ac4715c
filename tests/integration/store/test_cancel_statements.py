"""``Store.cancel_statements``: what serve does, once it has cut a request off at shutdown, so that
the request's thread, waiting on PostgreSQL for a lock held elsewhere, ends (rolled back) and the
process can exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from shiprail.store.db import Store


@pytest.fixture
def held(pg_store: Store) -> Iterator[sa.Connection]:
    """The table ``leases`` locked by another process's connection (its own engine) until the test ends."""
    with pg_store.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    other = sa.create_engine(pg_store.engine.url)
    try:
        with other.connect() as conn:
            conn.execute(sa.text(f'LOCK TABLE "{schema}".leases IN ACCESS EXCLUSIVE MODE'))
            yield conn
            conn.rollback()
    finally:
        other.dispose()


@pytest.mark.parametrize("cancel_safe", [True, False], ids=["psycopg 3.2", "no cancel_safe (psycopg 3.1, psycopg2)"])
def test_cancel_statements_ends_a_transaction_waiting_for_a_lock_held_elsewhere(
    pg_store: Store, held: sa.Connection, monkeypatch: pytest.MonkeyPatch, cancel_safe: bool
) -> None:
    if not cancel_safe:
        # psycopg 3.1 (pyproject takes >=3.1) and psycopg2 (any SQLAlchemy URL is taken) have cancel() only.
        monkeypatch.delattr(psycopg.Connection, "cancel_safe")
    outcome: list[BaseException | int] = []

    def waiting() -> None:
        try:
            with pg_store.transaction() as s:
                outcome.append(s.execute(sa.text("SELECT count(*) FROM leases")).scalar_one())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiting, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not pg_store._lent and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # its SELECT sent, waiting for the lock
    assert pg_store.cancel_statements() == 1
    thread.join(3)
    alive = thread.is_alive()
    held.rollback()  # the lock goes (an old shiprail's thread ends here, after its wait)
    thread.join(10)
    assert alive is False
    [exc] = outcome
    assert isinstance(exc, OperationalError) and "canceling statement due to user request" in str(exc)
    assert pg_store._lent == set()


def test_a_connection_invalidated_while_lent_is_not_kept_once_returned(pg_store: Store) -> None:
    # A connection lost mid-transaction (the database restarted, a failover) is invalidated and comes
    # back to the pool without its driver connection: keyed by that, it was kept for ever, one per
    # outage over a long-running serve, and told to cancel at every shutdown.
    with pg_store.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        assert pg_store.cancel_statements() == 1  # this one, lent out
        conn.invalidate()
    assert pg_store.cancel_statements() == 0
    with pg_store.transaction() as s:
        s.execute(sa.text("SELECT 1"))
    assert pg_store.cancel_statements() == 0
