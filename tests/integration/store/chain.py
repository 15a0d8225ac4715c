"""Helpers for the audit-chain tests: fill a chain, verify it, and tamper with it like a DBA would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shiprail.schema.resolved import canonical_json
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import AuditEvent, AuditHead

# The message the append-only triggers raise (migration 0001).
APPEND_ONLY = "audit_events is append-only: rows can be added, never changed or removed"

EVENTS: sa.Table = cast(sa.Table, AuditEvent.__table__)
HEAD: sa.Table = cast(sa.Table, AuditHead.__table__)
COLUMNS = ("at", "actor", "kind", "release_id", "payload", "prev_hash", "hash")

START = datetime(2026, 3, 1, 9, 15, 30, 123456, tzinfo=UTC)


def event_time(n: int) -> datetime:
    """Distinct, timezone-aware UTC times with non-zero microseconds."""
    return START + timedelta(minutes=7 * n, microseconds=1 + 104_729 * n)


def event_payload(n: int) -> dict[str, Any]:
    """Payloads with unicode (incl. non-BMP and a decomposed accent) and awkward floats."""
    return {
        "step": n,
        "weight": [1, 10, 50, 100][n % 4],
        "ratio": 0.1 + n / 3,
        "tiny": 1e-7 * (n + 1),
        "big": 1.5e300,
        "negative_zero": -0.0,
        "note": f"café ☕ 日本語 — e\u0301 🚀 #{n}",
        "nested": {"ü": [n, 2.5, None, True], "z": 'tab\tnew\nline "quoted" back\\slash'},
    }


def fill(store: Store, n: int) -> list[audit.EventRow]:
    """Append ``n`` events (one transaction each, like real state changes) and return the chain."""
    for i in range(1, n + 1):
        with store.transaction() as s:
            audit.append(
                s,
                at=event_time(i),
                actor=f"ana-{i % 3}",
                kind="release.promoted" if i % 2 else "gate.evaluated",
                release_id=None if i % 5 == 0 else f"checkout-2.4.{i % 2}",
                payload=event_payload(i),
            )
    return chain(store)


def chain(store: Store) -> list[audit.EventRow]:
    with store.transaction() as s:
        return list(audit.rows(s))


def head(store: Store) -> tuple[int, str]:
    with store.transaction() as s:
        return audit.head(s)


def check(store: Store, checkpoint: audit.Checkpoint | None = None) -> audit.Report:
    """What ``audit verify`` sees on the database: the rows, the recorded head, an outside checkpoint."""
    with store.transaction() as s:
        head_seq, head_hash = audit.head(s)
        return audit.verify(audit.rows(s), head_seq=head_seq, head_hash=head_hash, checkpoint=checkpoint)


def checkpoint_of(store: Store) -> audit.Checkpoint:
    seq, digest = head(store)
    return audit.Checkpoint(seq, digest, datetime.now(UTC).isoformat())


# ------------------------------------------------------------------------------------ tampering


@contextmanager
def tampering(store: Store, pg_method: str = "disable") -> Iterator[Session]:
    """A transaction with the append-only triggers out of the way, as someone with DBA rights would do it.

    SQLite: save the triggers' SQL, drop them, tamper, put them back. PostgreSQL: ``ALTER TABLE ...
    DISABLE TRIGGER USER`` (and enable again), or ``SET LOCAL session_replication_role = replica``.
    """
    with store.transaction() as s:
        if store.dialect == "sqlite":
            saved = s.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'")
            ).all()
            assert {name for name, _ in saved} == {"audit_events_no_update", "audit_events_no_delete"}
            for name, _ in saved:
                s.execute(sa.text(f"DROP TRIGGER {name}"))
            yield s
            for _, sql in saved:
                s.execute(sa.text(sql))
        elif pg_method == "disable":
            s.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            yield s
            s.execute(sa.text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        else:
            assert pg_method == "replica"
            s.execute(sa.text("SET LOCAL session_replication_role = replica"))
            yield s


def get_row(s: Session, seq: int) -> dict[str, Any]:
    return dict(s.execute(sa.select(EVENTS).where(EVENTS.c.seq == seq)).mappings().one())


def set_row(s: Session, seq: int, values: dict[str, Any]) -> None:
    s.execute(sa.update(EVENTS).where(EVENTS.c.seq == seq).values({k: values[k] for k in values if k != "seq"}))


def delete_rows(s: Session, where: sa.ColumnElement[bool]) -> None:
    s.execute(sa.delete(EVENTS).where(where))


def renumber(s: Session, from_seq: int, by: int) -> None:
    """Shift ``seq`` of every row at or after ``from_seq`` by ``by``, one row at a time (the PK is unique)."""
    seqs = s.execute(sa.select(EVENTS.c.seq).where(EVENTS.c.seq >= from_seq).order_by(EVENTS.c.seq)).scalars().all()
    for seq in reversed(seqs) if by > 0 else seqs:
        s.execute(sa.update(EVENTS).where(EVENTS.c.seq == seq).values(seq=seq + by))


def set_head(s: Session, seq: int, digest: str) -> None:
    s.execute(sa.update(HEAD).where(HEAD.c.id == audit.HEAD_ID).values(seq=seq, hash=digest))


def forged(seq: int, prev_hash: str, *, actor: str = "mallory", note: str = "nothing to see") -> dict[str, Any]:
    """A row an attacker made up, with a correctly computed hash linking to ``prev_hash``."""
    at = event_time(seq) + timedelta(seconds=1)
    payload = canonical_json({"note": note, "amount": 3.14})
    digest = audit.compute_hash(prev_hash, seq, at, actor, "release.override", "checkout-2.4.1", payload)
    return {
        "seq": seq,
        "at": at,
        "actor": actor,
        "kind": "release.override",
        "release_id": "checkout-2.4.1",
        "payload": payload,
        "prev_hash": prev_hash,
        "hash": digest,
    }


def insert_row(s: Session, values: dict[str, Any]) -> None:
    s.execute(sa.insert(EVENTS).values(values))


def rehash(row: audit.EventRow, **changes: Any) -> audit.EventRow:
    """``row`` with ``changes`` and a hash recomputed to match them."""
    new = replace(row, **changes)
    digest = audit.compute_hash(new.prev_hash, new.seq, new.at, new.actor, new.kind, new.release_id, new.payload)
    return replace(new, hash=digest)


def replace_chain(s: Session, rows: list[audit.EventRow]) -> None:
    """Put ``rows`` in place of the whole table, numbered 1, 2, ... in the order given."""
    delete_rows(s, sa.true())
    for seq, row in enumerate(rows, 1):
        insert_row(s, {"seq": seq, **{c: getattr(row, c) for c in COLUMNS}})
