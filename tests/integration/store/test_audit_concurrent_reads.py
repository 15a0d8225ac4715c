"""Reading the chain while others append: the events and the head must come from one moment.

On PostgreSQL (READ COMMITTED by default) each statement of a transaction sees what was committed
when it began; an event committed between reading the head and reading the events made `audit
verify` report a row "inserted", and `audit export --checkpoint` write a checkpoint past its events.
Here the append is committed exactly between the two reads, by patching ``audit.head``.

On SQLite the reads used to hold the write lock (BEGIN IMMEDIATE) for as long as they took, so
every writer waited out `audit verify` of a long chain, then failed "database is locked"; now they
are a deferred read transaction (WAL), which the same appends must not get into either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shiprail.cli.main import main
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import AuditEvent

from .chain import event_time, fill

pytestmark = pytest.mark.usefixtures("cli_env")


def _append_when_head_is_read(monkeypatch: pytest.MonkeyPatch, store: Store) -> Callable[[], int]:
    """Make every read of the head commit one more event from another connection right after it."""
    real = audit.head
    appended = 0

    def head_then_append(session: sa.orm.Session) -> tuple[int, str]:
        nonlocal appended
        seen = real(session)
        with store.transaction() as s:
            audit.append(s, at=event_time(99), actor="other", kind="test.event", release_id=None, payload={})
        appended += 1
        return seen

    monkeypatch.setattr(audit, "head", head_then_append)
    return lambda: appended


def test_verify_is_not_fooled_by_an_event_appended_while_it_reads(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(store, 4)
    appended = _append_when_head_is_read(monkeypatch, store)

    code = main(["audit", "verify", "--db", store_url])

    out, err = capsys.readouterr()
    assert appended() == 1
    assert code == 0, err
    assert "audit chain ok: 4 events" in out


def test_an_export_and_its_checkpoint_agree_while_others_append(
    store: Store,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    fill(store, 4)
    real_rows = audit.rows
    armed = True

    def rows_then_append(session: sa.orm.Session, release_id: str | None = None) -> list[audit.EventRow]:
        # The export reads the events, then the head: commit an event in between.
        out = list(real_rows(session, release_id))
        if armed:
            with store.transaction() as s:
                audit.append(s, at=event_time(99), actor="other", kind="test.event", release_id=None, payload={})
        return out

    monkeypatch.setattr(audit, "rows", rows_then_append)
    events, checkpoint = tmp_path / "audit.jsonl", tmp_path / "checkpoint.json"

    assert main(["audit", "export", "--db", store_url, "--out", str(events), "--checkpoint", str(checkpoint)]) == 0
    armed = False
    code = main(["audit", "verify", "--file", str(events), "--checkpoint", str(checkpoint)])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "audit chain ok: 4 events" in out and "matches checkpoint at seq 4" in out
    with store.transaction() as s:
        assert s.query(AuditEvent).count() == 5  # the other append did happen, after the export's moment


def test_an_export_writes_events_as_it_reads_them_and_names_the_file_once_complete(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The export held every line, then the whole text, in memory before writing (333 MB for 100,000
    events); it now writes each event as it reads it, into a file renamed to ``--out`` at the end."""
    with store.transaction() as s:
        for n in range(1, 5):
            audit.append(s, at=event_time(n), actor="a", kind="k", release_id=None, payload={"note": "x" * 20_000})
    archive = tmp_path / "archive"
    archive.mkdir()
    events = archive / "audit.jsonl"
    real_rows = audit.rows
    seen: list[tuple[bool, int]] = []

    def rows_watched(session: sa.orm.Session, release_id: str | None = None) -> Iterator[audit.EventRow]:
        yield from real_rows(session, release_id)
        # Reading the last event: the others are on disk already, and --out is not there yet.
        written = sum(p.stat().st_size for p in archive.iterdir())
        seen.append((events.exists(), written))

    monkeypatch.setattr(audit, "rows", rows_watched)
    assert main(["audit", "export", "--db", store_url, "--out", str(events)]) == 0
    assert capsys.readouterr() == (f"wrote 4 events to {events}\n", "")
    [(named, written)] = seen
    assert not named
    assert written >= 3 * 20_000
    assert sorted(p.name for p in archive.iterdir()) == ["audit.jsonl"]
    lines = events.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
    assert main(["audit", "verify", "--file", str(events)]) == 0
