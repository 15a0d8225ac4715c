"""``Store.cancel_statements`` and ``Store.stop_lock_waits``: what serve does, once it has cut a request
off at shutdown, so that the request's thread, waiting on PostgreSQL or SQLite for a lock held
elsewhere, ends (rolled back) and the process can exit."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from shiprail import defaults
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


def _transaction_outcome(store: Store) -> tuple[str, float]:
    """A write transaction on ``store``: its outcome (the error's first line, or "committed") and seconds taken."""
    started = time.monotonic()
    try:
        with store.transaction() as s:
            s.execute(sa.text("SELECT count(*) FROM leases"))
    except OperationalError as exc:
        return str(exc.orig), time.monotonic() - started
    return "committed", time.monotonic() - started


def test_stop_lock_waits_ends_a_sqlite_transaction_waiting_for_another_process_lock(
    sqlite_store: Store, tmp_path: Path
) -> None:
    # SQLite's wait for a lock cannot be interrupted (neither interrupt() nor a progress handler reaches
    # its busy handler): a serve cut off at shutdown waited up to the 30 s busy timeout for a write lock
    # held elsewhere. It now stops waiting, within a slice, once told; a transaction not waiting is untouched.
    holder = sqlite3.connect(tmp_path / "shiprail.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write
    outcome: list[tuple[str, float]] = []
    thread = threading.Thread(target=lambda: outcome.append(_transaction_outcome(sqlite_store)), daemon=True)
    thread.start()
    time.sleep(0.5)  # waiting for the lock
    assert outcome == []
    stopped = time.monotonic()
    sqlite_store.stop_lock_waits()
    thread.join(10)
    ended = time.monotonic() - stopped
    holder.execute("ROLLBACK")
    holder.close()
    [(what, _took)] = outcome
    assert what == "database is locked"
    assert ended < 0.2 + 1.0, f"it waited {ended:.2f}s after stop_lock_waits"  # a 200 ms slice, a busy machine
    # The lock gone, writes run as before; the busy timeout of the connection is the usual one again.
    assert _transaction_outcome(sqlite_store)[0] == "committed"
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000


def test_a_sqlite_transaction_still_waits_out_the_busy_timeout_for_a_lock(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiting in slices keeps the busy timeout whole: a lock that goes within it is taken, one held past it fails.
    monkeypatch.setattr(defaults, "SQLITE_BUSY_TIMEOUT_MS", 1_500)
    holder = sqlite3.connect(tmp_path / "shiprail.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    let_go: list[float] = []

    def rollback() -> None:
        let_go.append(time.monotonic())  # before the lock goes: nothing can commit earlier
        holder.execute("ROLLBACK")

    # The lock goes 0.8 s on: the transaction waits for it and commits after. (Its own duration, from
    # a start a little after the timer's, could come out a hair under 0.8 s on a loaded machine.)
    release = threading.Timer(0.8, rollback)
    release.start()
    what, _ = _transaction_outcome(sqlite_store)
    ended = time.monotonic()
    release.join()
    assert (what, ended >= let_go[0]) == ("committed", True)
    holder.execute("BEGIN IMMEDIATE")
    what, took = _transaction_outcome(sqlite_store)
    holder.execute("ROLLBACK")
    holder.close()
    assert (what, 1.5 <= took < 1.5 + 1.0) == ("database is locked", True), took
