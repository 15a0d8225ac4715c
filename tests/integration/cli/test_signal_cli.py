"""``shiprail signal`` run in-process in a project from ``shiprail init``: exit codes, output, the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail import defaults
from shiprail.store import audit
from shiprail.store.db import Store, default_url
from shiprail.store.models import Release, SignalEvent


@pytest.fixture
def db(project: Path) -> Iterator[Store]:
    """The project's own store (the SQLite file the CLI uses)."""
    opened = Store(default_url(project))
    yield opened
    opened.close()


def signals(db: Store) -> list[tuple[str, str | None, str, float, str, str]]:
    with db.transaction() as s:
        rows = s.execute(sa.select(SignalEvent).order_by(SignalEvent.id)).scalars().all()
        return [(r.service, r.version, r.name, r.value, r.actor, r.note) for r in rows]


def events(db: Store) -> list[tuple[str, str | None, dict[str, Any]]]:
    with db.transaction() as s:
        return [(r.kind, r.release_id, json.loads(r.payload)) for r in audit.rows(s)]


def rolling_out(db: Store, release_id: str) -> None:
    """A checkout release with traffic on its canary (only what attributing a signal reads matters)."""
    now = datetime.now(UTC)
    with db.transaction() as s:
        s.add(
            Release(
                id=release_id,
                service="checkout",
                version="2.4.0",
                baseline="2.3.1",
                owner="alice",
                risk="high",
                status="rolling_out",
                step=0,
                plan_file="releases/checkout-2.4.0.yaml",
                plan_text="",
                resolved="{}",
                plan_hash="0" * 64,
                contract_hash="0" * 64,
                state_since=now,
                created_at=now,
                revision=0,
            )
        )


def test_a_complaint_is_recorded(shiprail: Any, db: Store) -> None:
    r = shiprail("signal", "checkout", "customer_complaint", "--as", "support", "--note", "ticket 4411")
    assert (r.code, r.out, r.err) == (0, "recorded customer_complaint ×1 for checkout (no release in progress)\n", "")
    assert signals(db) == [("checkout", None, "customer_complaint", 1.0, "support", "ticket 4411")]
    assert events(db) == [
        (
            "signal.received",
            None,
            {
                "signal_id": 1,
                "service": "checkout",
                "version": None,
                "name": "customer_complaint",
                "value": 1.0,
                "note": "ticket 4411",
            },
        )
    ]


def test_a_signal_names_the_release_in_progress(shiprail: Any, db: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rolling_out(db, "checkout-2.4.0")
    monkeypatch.setenv("SHIPRAIL_USER", "ci")
    r = shiprail("signal", "checkout", "http_errors_total", "--version", "2.4.0", "--count", "12")
    assert (r.code, r.out, r.err) == (
        0,
        "recorded http_errors_total ×12 for checkout 2.4.0 (release checkout-2.4.0)\n",
        "",
    )
    assert signals(db) == [("checkout", "2.4.0", "http_errors_total", 12.0, "ci", "")]
    assert [(kind, release) for kind, release, _ in events(db)] == [("signal.received", "checkout-2.4.0")]


def test_a_store_locked_past_the_busy_timeout_is_one_sentence_not_a_traceback(
    shiprail: Any, db: Store, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shiprail("signal", "checkout", "customer_complaint", "--as", "support").code == 0
    monkeypatch.setattr(defaults, "SQLITE_BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(project / ".shiprail" / "shiprail.db", isolation_level=None)
    opened = Store.migrate

    def opened_then_locked(store: Store, *, create: bool = True) -> None:
        # Another process starts a long write once the command has opened the store.
        opened(store, create=create)
        holder.execute("BEGIN IMMEDIATE")

    monkeypatch.setattr(Store, "migrate", opened_then_locked)
    try:
        r = shiprail("signal", "checkout", "customer_complaint", "--as", "support")
    finally:
        holder.close()
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "error: the database failed: database is locked; try again (what this command recorded before stands)\n"
    )
    assert len(signals(db)) == 1


def test_json_prints_the_row(shiprail: Any) -> None:
    r = shiprail("signal", "checkout", "alert", "--count", "2.5", "--as", "pager", "--json")
    assert (r.code, r.err) == (0, "")
    data = r.json()
    at = datetime.fromisoformat(data.pop("at"))
    assert at.tzinfo is not None
    assert data == {
        "id": 1,
        "service": "checkout",
        "version": None,
        "name": "alert",
        "value": 2.5,
        "actor": "pager",
        "note": "",
        "release_id": None,
    }


def test_an_unknown_service_exits_2_and_stores_nothing(shiprail: Any, db: Store, project: Path) -> None:
    assert shiprail("signal", "checkout", "customer_complaint", "--as", "support").code == 0
    r = shiprail("signal", "chekout", "customer_complaint", "--as", "support")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        f"error: no service 'chekout': services/chekout.yaml does not exist in {project}; known services: checkout\n"
    )
    assert len(signals(db)) == 1
    assert len(events(db)) == 1


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("0", "error: --count must be a finite number above 0, got 0\n"),
        ("-3", "error: --count must be a finite number above 0, got -3\n"),
        ("nan", "error: --count must be a finite number above 0, got nan\n"),
        ("inf", "error: --count must be a finite number above 0, got inf\n"),
    ],
)
def test_a_bad_count_exits_2_and_stores_nothing(shiprail: Any, db: Store, count: str, message: str) -> None:
    r = shiprail("signal", "checkout", "customer_complaint", "--as", "support", "--count", count)
    assert (r.code, r.out, r.err) == (2, "", message)
    assert signals(db) == []
    assert events(db) == []


def test_a_count_that_is_not_a_number_is_a_usage_error(shiprail: Any, db: Store) -> None:
    r = shiprail("signal", "checkout", "customer_complaint", "--as", "support", "--count", "three")
    assert (r.code, r.out) == (2, "")
    assert "--count" in r.err
    assert "Traceback" not in r.err
    assert signals(db) == []


@pytest.mark.parametrize("count", ["\u0665", "\uff15"])  # five in Arabic-Indic and in fullwidth digits
def test_a_count_in_other_digits_is_refused_and_stores_nothing(shiprail: Any, db: Store, count: str) -> None:
    # Click's float() read both as 5 and recorded the signal, where a duration flag and every file
    # refuse numbers not written in ASCII digits.
    r = shiprail("signal", "checkout", "customer_complaint", "--as", "support", "--count", count, "--json")
    assert (r.code, r.err) == (2, "")
    assert r.json() == {
        "ok": False,
        "error": f"invalid value for '--count': {count!r} is not a number; write it in ASCII digits (0-9); "
        "see `shiprail signal --help`",
        "exit_code": 2,
    }
    assert signals(db) == []
    assert events(db) == []


def test_a_bad_count_as_json(shiprail: Any) -> None:
    r = shiprail("signal", "checkout", "customer_complaint", "--as", "support", "--count", "0", "--json")
    assert (r.code, r.err) == (2, "")
    assert r.json() == {"ok": False, "error": "--count must be a finite number above 0, got 0", "exit_code": 2}


def test_a_bad_name_and_a_missing_actor_exit_2(shiprail: Any, db: Store) -> None:
    r = shiprail("signal", "checkout", "customer complaint", "--as", "support")
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "error: NAME 'customer complaint' is not a signal name; use a letter or _ first, then letters, digits, "
        "_ : . or - (e.g. customer_complaint)\n"
    )
    r = shiprail("signal", "checkout", "customer_complaint")
    assert (r.code, r.out, r.err) == (2, "", "error: say who is acting with --as NAME or SHIPRAIL_USER\n")
    assert signals(db) == []


def test_a_retry_with_the_same_idempotency_key_records_nothing_twice(shiprail: Any, db: Store) -> None:
    args = ("signal", "checkout", "customer_complaint", "--as", "support", "--idempotency-key", "ticket-4411")
    first, again = shiprail(*args), shiprail(*args)
    assert first.out == "recorded customer_complaint ×1 for checkout (no release in progress)\n"
    assert again.out == (
        "already recorded (the same idempotency key) customer_complaint ×1 for checkout (no release in progress)\n"
    )
    assert len(signals(db)) == 1 and len(events(db)) == 1
    other = shiprail("signal", "checkout", "alert", "--as", "support", "--idempotency-key", "ticket-4411")
    assert (other.code, other.err) == (
        2,
        "error: --idempotency-key 'ticket-4411' was used for another signal (customer_complaint ×1); "
        "use a new key for a new signal\n",
    )
    assert len(signals(db)) == 1


def test_an_empty_idempotency_key_exits_2_and_stores_nothing(shiprail: Any, db: Store) -> None:
    r = shiprail("signal", "checkout", "alert", "--as", "pager", "--idempotency-key", " ")
    assert (r.code, r.err) == (
        2,
        "error: --idempotency-key is empty; send a key of your own per signal, the same on a retry\n",
    )
    assert signals(db) == []
