"""The audit chain on a real database: appends verify, the database refuses changes, times round-trip."""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from shiprail.schema.resolved import canonical_json
from shiprail.store import audit
from shiprail.store.db import Store

from .chain import APPEND_ONLY, START, chain, check, event_payload, event_time, fill, head

N = 12


def test_appended_events_form_a_chain_that_verifies(store: Store) -> None:
    rows = fill(store, N)

    assert [r.seq for r in rows] == list(range(1, N + 1))
    assert rows[0].prev_hash == audit.GENESIS
    for before, row in itertools.pairwise(rows):
        assert row.prev_hash == before.hash
    assert head(store) == (N, rows[-1].hash)
    report = check(store)
    assert report.ok, report.finding
    assert (report.count, report.last_seq, report.last_hash) == (N, N, rows[-1].hash)


def test_an_empty_chain_verifies(store: Store) -> None:
    report = check(store)
    assert report.ok
    assert (report.count, report.last_seq, report.last_hash) == (0, 0, audit.GENESIS)


def test_payload_unicode_and_floats_read_back_exactly(store: Store) -> None:
    rows = fill(store, 4)

    for row in rows:
        assert json.loads(row.payload) == event_payload(row.seq)
        assert row.payload == canonical_json(event_payload(row.seq))
        assert "café ☕ 日本語 — e\u0301 🚀" in row.payload  # stored as UTF-8, not escaped, not normalised


def test_line_and_paragraph_separators_in_a_payload_read_back_exactly(store: Store) -> None:
    payload = {"reason": "one\u2028two\u2029three\x85four\x1cfive\r\nsix"}
    with store.transaction() as s:
        written = audit.append(s, at=event_time(1), actor="ana", kind="override", release_id=None, payload=payload)
        written_hash = written.hash

    [row] = chain(store)
    assert json.loads(row.payload) == payload
    assert row.hash == written_hash
    assert check(store).ok


def test_append_happens_in_the_callers_transaction(store: Store) -> None:
    fill(store, 2)
    with pytest.raises(RuntimeError), store.transaction() as s:
        audit.append(s, at=event_time(3), actor="ana", kind="release.created", release_id="r", payload={"a": 1})
        raise RuntimeError("the state change failed")

    assert head(store)[0] == 2
    assert [r.seq for r in chain(store)] == [1, 2]
    assert check(store).ok


# ------------------------------------------------------------------------------- append-only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET payload = '{}', actor = 'mallory' WHERE seq = 2",
        "UPDATE audit_events SET seq = seq + 100",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_events",
    ],
)
def test_the_database_refuses_update_and_delete(store: Store, statement: str) -> None:
    rows = fill(store, 4)

    with pytest.raises(DBAPIError, match=APPEND_ONLY), store.transaction() as s:
        s.execute(sa.text(statement))

    assert chain(store) == rows
    assert check(store).ok


def test_the_database_refuses_orm_updates_and_deletes(store: Store) -> None:
    from shiprail.store.models import AuditEvent

    fill(store, 3)
    with pytest.raises(DBAPIError, match=APPEND_ONLY), store.transaction() as s:
        s.get_one(AuditEvent, 2).actor = "mallory"
    with pytest.raises(DBAPIError, match=APPEND_ONLY), store.transaction() as s:
        s.delete(s.get_one(AuditEvent, 3))

    assert check(store).ok


def test_postgresql_refuses_truncate(pg_store: Store) -> None:
    rows = fill(pg_store, 3)

    with pytest.raises(DBAPIError, match=APPEND_ONLY), pg_store.transaction() as s:
        s.execute(sa.text("TRUNCATE audit_events"))

    assert chain(pg_store) == rows


def test_appending_is_still_allowed(store: Store) -> None:
    fill(store, 2)
    with store.transaction() as s:
        audit.append(s, at=event_time(3), actor="ana", kind="release.created", release_id=None, payload={})
    assert check(store).ok
    assert head(store)[0] == 3


# ------------------------------------------------------------------------------------ time


@pytest.mark.parametrize(
    "at",
    [
        START,
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 6, 1, 0, 0, 0, 0, tzinfo=UTC),
        # Aware but not UTC: stored and read back as the same instant in UTC.
        datetime(2026, 6, 1, 5, 30, 0, 500001, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7))),
    ],
    ids=["start", "end-of-year", "one-microsecond", "zero-microseconds", "plus-0530", "minus-07"],
)
def test_a_timestamp_round_trips_exactly(store: Store, at: datetime) -> None:
    with store.transaction() as s:
        written = audit.append(s, at=at, actor="ana", kind="release.created", release_id="r-1", payload={"x": 0.5})
        written_hash = written.hash

    # A new session and connection: the value comes from the database, not the identity map.
    store.engine.dispose()
    [row] = chain(store)
    assert row.at == at
    assert row.at.tzinfo is not None and row.at.utcoffset() == timedelta(0)
    assert row.at.microsecond == at.astimezone(UTC).microsecond
    assert audit.compute_hash(row.prev_hash, row.seq, row.at, row.actor, row.kind, row.release_id, row.payload) == (
        written_hash
    )
    assert row.hash == written_hash
    assert check(store).ok


def test_the_store_refuses_naive_datetimes(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"), store.transaction() as s:
        audit.append(s, at=datetime(2026, 1, 1, 12, 0), actor="ana", kind="k", release_id=None, payload={})
    assert head(store) == (0, audit.GENESIS)


def test_verify_holds_only_the_links_of_the_events_it_has_checked(store: Store) -> None:
    """``audit verify`` of a long chain kept every event whole (payload and all) until it ended: about
    1 kB an event, 1 GB for a million. It keeps their seqs and hashes, and drops each event once checked."""
    fill(store, N)
    alive: list[int] = []

    def watched(rows: Iterable[audit.EventRow]) -> Iterator[audit.EventRow]:
        refs: list[weakref.ref[audit.EventRow]] = []
        for row in rows:
            refs.append(weakref.ref(row))
            yield row
        alive.append(sum(ref() is not None for ref in refs))

    with store.snapshot() as s:
        seq, digest = audit.head(s)
        report = audit.verify(watched(audit.rows(s)), head_seq=seq, head_hash=digest)
    assert (report.ok, report.count, report.last_seq) == (True, N, N)
    assert alive == [1]  # the last one, still in hand here (old: all N)
