"""``shiprail audit anchor`` and ``audit verify --anchors`` on SQLite and PostgreSQL.

An anchor log is a file of checkpoints of the chain head, appended to as the chain grows. What is
pinned: an anchor is written only over a chain that verifies (and never twice for one head), and
verify against the log catches what the database alone cannot show — a tail cut with the head
rewound, a chain recomputed from some row on — naming the seq, as well as a forged anchor line and
a log that stopped being written to.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import hmac
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shiprail import defaults
from shiprail.cli.main import main
from shiprail.schema.resolved import canonical_json
from shiprail.store import audit
from shiprail.store.anchors import checkpoint_from_json, checkpoint_line, link_digest
from shiprail.store.db import Store

from .chain import COLUMNS, EVENTS, delete_rows, event_time, fill, head, rehash, set_head, set_row, tampering

N = 8
KEY = "anchor-test-key"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


def lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def grow(store: Store, n: int) -> None:
    """Append ``n`` more events to the chain."""
    seq = head(store)[0]
    for i in range(seq + 1, seq + n + 1):
        with store.transaction() as s:
            audit.append(s, at=event_time(i), actor="bob", kind="x", release_id=None, payload={"i": i})


@pytest.mark.usefixtures("cli_env")
class TestAnchor:
    def test_an_anchor_is_the_checkpoint_of_the_head_appended_once_per_head(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        rows = fill(store, N)
        log = tmp_path / "anchors.jsonl"
        code, out, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert code == 0
        assert out == f"anchored seq {N} (hash {rows[-1].hash[:16]}…, unsigned) to {log}, line 1\n"
        assert err.startswith("warning: SHIPRAIL_AUDIT_KEY is not set, so this anchor is not signed")
        [first] = lines(log)
        assert (sorted(first), first["seq"], first["hash"]) == (
            ["at", "hash", "index", "prev", "seq"],
            N,
            rows[-1].hash,
        )
        assert (first["index"], first["prev"]) == (1, audit.GENESIS)  # the first link of the anchor chain

        # The head did not move: nothing is written, and it says so.
        code, out, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert (code, err) == (0, "")
        assert out == f"nothing written: the chain head (seq {N}) is already anchored on line 1 of {log}\n"
        assert len(lines(log)) == 1

        grow(store, 2)
        code, out, _ = cli(capsys, "anchor", "--db", store_url, "--to", str(log), "--json")
        assert code == 0
        data = json.loads(out)
        assert (data["written"], data["line"], data["seq"]) == (True, 2, N + 2)
        assert [line["seq"] for line in lines(log)] == [N, N + 2]
        assert (data["index"], data["prev"]) == (2, link_digest(anchor_of(first)))

    def test_with_the_key_set_anchors_are_signed_and_no_warning_is_given(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        fill(store, N)
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", KEY)
        log = tmp_path / "anchors.jsonl"
        code, out, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert (code, err) == (0, "")
        assert ", signed) to " in out
        [line] = lines(log)
        # The link is signed with the rest: a line cannot be moved, nor one removed before it, without the key.
        text = canonical_json({k: line[k] for k in ("seq", "hash", "at", "index", "prev")})
        assert line["signature"] == hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()

    def test_an_anchor_is_never_written_over_a_chain_that_does_not_verify(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        with tampering(store) as s:
            set_row(s, 3, {"actor": "mallory"})
        log = tmp_path / "anchors.jsonl"
        code, out, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert (code, out) == (1, "")
        assert err == (
            "error: audit chain broken at seq 3: seq 3 was altered: its content no longer matches its hash; "
            "an anchor never blesses a broken chain, so nothing was written\n"
        )
        assert log.read_bytes() == b""

    def test_an_anchor_is_not_written_over_a_chain_cut_below_the_last_anchor(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        rows = fill(store, N)
        log = tmp_path / "anchors.jsonl"
        assert cli(capsys, "anchor", "--db", store_url, "--to", str(log))[0] == 0
        with tampering(store) as s:
            delete_rows(s, EVENTS.c.seq > 5)
            set_head(s, 5, rows[4].hash)
        before = log.read_bytes()
        code, _, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert code == 1
        assert err == (
            f"error: audit chain broken at seq 6: seq 6 missing: the chain ends at seq 5 but the anchor on line 1 "
            f"of {log} records seq {N}; an anchor never blesses a broken chain, so nothing was written\n"
        )
        assert log.read_bytes() == before

    def test_after_the_first_anchor_only_the_chain_since_the_last_one_is_walked(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Each anchor walked the whole chain: on a million events that held the controller's pass
        # (and any rollback due in it) for a minute every 15 minutes.
        fill(store, N)
        log = tmp_path / "anchors.jsonl"
        take(capsys, store_url, log)
        grow(store, 3)
        walked: list[int] = []
        rows_from = audit.rows_from

        def counting(session: object, seq: int) -> object:
            for row in rows_from(session, seq):  # type: ignore[arg-type]
                walked.append(row.seq)
                yield row

        monkeypatch.setattr(audit, "rows_from", counting)
        monkeypatch.setattr(audit, "rows", lambda *a, **k: pytest.fail("the whole chain was walked"))
        take(capsys, store_url, log)
        assert walked == [N, N + 1, N + 2, N + 3]
        assert [line["seq"] for line in lines(log)] == [N, N + 3]

    def test_a_row_altered_since_the_last_anchor_is_still_refused_and_named(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        log = tmp_path / "anchors.jsonl"
        take(capsys, store_url, log)
        grow(store, 3)
        with tampering(store) as s:
            set_row(s, N + 2, {"actor": "mallory"})
        code, _, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert code == 1
        assert err.startswith(f"error: audit chain broken at seq {N + 2}: seq {N + 2} was altered")
        assert len(lines(log)) == 1

    def test_a_directory_or_a_missing_directory_is_bad_input(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, 2)
        code, out, err = cli(capsys, "anchor", "--db", store_url, "--to", str(tmp_path))
        assert (code, out, err) == (2, "", f"error: --to: {tmp_path} is a directory; give the anchor log's file path\n")
        missing = tmp_path / "nope" / "a.jsonl"
        code, out, err = cli(capsys, "anchor", "--db", store_url, "--to", str(missing))
        assert (code, out) == (2, "")
        assert err == (
            f"error: --to: {missing}: the directory {missing.parent} does not exist; create it or give another path\n"
        )


def recompute_from(store: Store, k: int) -> None:
    """Alter seq ``k``, recompute every hash after it with correct links, and move the head along."""
    with store.transaction() as s:
        rows = list(audit.rows(s))
    prev = rows[k - 2].hash if k > 1 else audit.GENESIS
    new = []
    for row in rows[k - 1 :]:
        changed = rehash(row, prev_hash=prev, actor="mallory" if row.seq == k else row.actor)
        new.append(changed)
        prev = changed.hash
    with tampering(store) as s:
        for row in new:
            set_row(s, row.seq, {c: getattr(row, c) for c in COLUMNS})
        set_head(s, rows[-1].seq, prev)


def take(capsys: pytest.CaptureFixture[str], store_url: str, log: Path) -> None:
    code, _, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
    assert code == 0, err


def anchor_of(line: dict[str, object]) -> audit.Checkpoint:
    return checkpoint_from_json(line)


def write_legacy(store: Store, log: Path, key: str | None = None) -> None:
    """Append an anchor of the head as shiprail wrote them before anchors were chained: no index, no
    prev, the signature over seq, hash and at."""
    with store.transaction() as s:
        seq, digest = audit.head(s)
    cp = audit.Checkpoint(seq, digest, datetime.now(UTC).isoformat())
    with log.open("a", encoding="utf-8") as file:
        file.write(checkpoint_line(cp.sign(key) if key else cp))


@pytest.mark.usefixtures("cli_env")
class TestVerifyAnchors:
    def test_a_chain_that_matches_every_anchor_verifies(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        log = tmp_path / "anchors.jsonl"
        fill(store, 3)
        take(capsys, store_url, log)
        grow(store, 4)
        take(capsys, store_url, log)
        grow(store, 2)
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, err) == (0, "")
        assert out.endswith(f", matches the 2 anchors of {log} (the newest at seq 7)\n")
        code, out, _ = cli(capsys, "verify", "--db", store_url, "--anchors", str(log), "--json")
        data = json.loads(out)
        assert (code, data["ok"], data["anchors"], data["newest_anchor"]["seq"]) == (0, True, 2, 7)

    def test_a_tail_cut_with_the_head_rewound_fails_naming_the_missing_seq(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        log = tmp_path / "anchors.jsonl"
        rows = fill(store, 4)
        take(capsys, store_url, log)
        grow(store, 4)
        take(capsys, store_url, log)
        grow(store, 2)
        with store.transaction() as s:
            rows = list(audit.rows(s))
        with tampering(store) as s:
            delete_rows(s, EVENTS.c.seq > 6)
            set_head(s, 6, rows[5].hash)
        assert cli(capsys, "verify", "--db", store_url)[0] == 0  # nothing inside the database shows it
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (1, "")
        assert err == (
            f"error: audit chain broken at seq 7: seq 7 missing: the chain ends at seq 6 but the anchor on line 2 "
            f"of {log} records seq 8\n"
        )
        code, out, _ = cli(capsys, "verify", "--db", store_url, "--anchors", str(log), "--json")
        data = json.loads(out)
        assert (code, data["first_bad_seq"], data["problem"]) == (1, 7, "missing")

    @pytest.mark.parametrize("k", [2, 6])
    def test_a_chain_recomputed_from_a_row_fails_as_altered_at_the_first_anchor_after_it(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, k: int
    ) -> None:
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        take(capsys, store_url, log)
        grow(store, 4)
        take(capsys, store_url, log)
        grow(store, 2)
        recompute_from(store, k)
        assert cli(capsys, "verify", "--db", store_url)[0] == 0  # every hash recomputed, the head moved along
        code, _, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        at, line = (4, 1) if k <= 4 else (8, 2)
        assert code == 1
        assert err == (
            f"error: audit chain broken at seq {at}: seq {at} does not match the anchor on line {line} of {log}: "
            "the chain was rewritten up to it\n"
        )

    def test_a_tampered_anchor_line_has_a_bad_signature(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", KEY)
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        take(capsys, store_url, log)
        grow(store, 2)
        take(capsys, store_url, log)
        assert cli(capsys, "verify", "--db", store_url, "--anchors", str(log))[0] == 0
        # Someone who rewrote the chain from seq 5 on points the second anchor at the new hash.
        recompute_from(store, 5)
        with store.transaction() as s:
            new_hash = audit.head(s)[1]
        first, second = log.read_text(encoding="utf-8").splitlines()
        edited = json.loads(second) | {"hash": new_hash}
        log.write_text(first + "\n" + json.dumps(edited) + "\n", encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (1, "")
        assert err == (
            f"error: the anchor on line 2 of {log} has a bad signature: it was altered or signed with another key\n"
        )
        # Without the key, a signed log cannot be checked: bad input, nothing verified.
        monkeypatch.delenv("SHIPRAIL_AUDIT_KEY")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (2, "")
        assert err == (
            f"error: --anchors: the anchor on line 1 of {log} is signed; "
            "set SHIPRAIL_AUDIT_KEY to the key to check it\n"
        )

    def test_a_log_that_goes_back_does_not_hold(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Of lines written before anchors were chained (unchained, the seqs are all that can show it)."""
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        write_legacy(store, log)
        grow(store, 2)
        write_legacy(store, log)
        first, second = log.read_text(encoding="utf-8").splitlines()
        log.write_text(f"{second}\n{first}\n", encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert code == 1
        assert err == (
            f"error: the anchor log {log} does not hold: the anchor on line 2 of {log} records seq 4, after line 1 "
            "recorded seq 6: the chain went back, so its tail was cut and the chain written again after it\n"
        )
        log.write_text(first + "\n{not json\n", encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (2, "")
        assert err == (
            f"error: --anchors: {log}: line 2 is not JSON; an anchor log holds one checkpoint per line, as "
            "`shiprail audit anchor` writes them\n"
        )

    def test_an_old_anchor_with_events_after_it_fails_max_anchor_age(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        take(capsys, store_url, log)
        line = json.loads(log.read_text(encoding="utf-8"))
        old = datetime.now(UTC) - timedelta(hours=2, minutes=5)
        log.write_text(json.dumps(line | {"at": old.isoformat()}) + "\n", encoding="utf-8")
        args = ("verify", "--db", store_url, "--anchors", str(log), "--max-anchor-age", "1h")
        # Old, but nothing happened since: that is no stopped anchoring.
        assert cli(capsys, *args)[0] == 0
        grow(store, 3)
        code, out, err = cli(capsys, *args)
        assert (code, out) == (1, "")
        assert err.startswith(f"error: the newest anchor of {log} (line 1, seq 4) was taken 2h5m")
        assert err.endswith(
            " ago, more than --max-anchor-age 1h, and 3 events came after it (seq 5 to 7): anchoring has stopped; "
            "see why in the controller's log, or in the output of the job that runs `shiprail audit anchor`\n"
        )
        assert cli(capsys, "verify", "--db", store_url, "--anchors", str(log), "--max-anchor-age", "3h")[0] == 0

    def test_a_newest_anchor_dated_in_the_future_with_events_after_it_fails_max_anchor_age(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A clock set ahead (or a forged line) would otherwise keep the alert quiet however long anchoring stopped."""
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        take(capsys, store_url, log)
        line = json.loads(log.read_text(encoding="utf-8"))
        ahead = datetime.now(UTC) + timedelta(days=2, minutes=5)
        log.write_text(json.dumps(line | {"at": ahead.isoformat()}) + "\n", encoding="utf-8")
        args = ("verify", "--db", store_url, "--anchors", str(log), "--max-anchor-age", "1h")
        assert cli(capsys, *args)[0] == 0  # nothing happened since it
        grow(store, 3)
        code, out, err = cli(capsys, *args)
        assert (code, out) == (1, "")
        assert err.startswith(f"error: the newest anchor of {log} (line 1, seq 4) is dated 2d")
        assert err.endswith(
            " ahead of this host's clock, more than --max-anchor-age 1h, and 3 events came after it (seq 5 to 7): "
            "a clock is wrong, or the line was not written by shiprail; its age cannot tell whether anchoring "
            "has stopped\n"
        )
        # Within --max-anchor-age of the clock, as two hosts' clocks differ: no alert.
        log.write_text(
            json.dumps(line | {"at": (datetime.now(UTC) + timedelta(seconds=30)).isoformat()}) + "\n",
            encoding="utf-8",
        )
        assert cli(capsys, *args)[0] == 0

    def test_max_anchor_age_needs_anchors_and_a_duration(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, 2)
        code, out, err = cli(capsys, "verify", "--db", store_url, "--max-anchor-age", "1h")
        assert (code, out, err) == (
            2,
            "",
            "error: --max-anchor-age needs --anchors: give the anchor log whose newest anchor it limits\n",
        )
        log = tmp_path / "anchors.jsonl"
        take(capsys, store_url, log)
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log), "--max-anchor-age", "soon")
        assert (code, out, err) == (
            2,
            "",
            "error: --max-anchor-age: a duration like 30s, 5m, 2h or 1d is required, got 'soon'\n",
        )
        empty = tmp_path / "empty.jsonl"
        empty.write_bytes(b"")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(empty))
        assert (code, out) == (2, "")
        assert err == (
            f"error: --anchors: {empty} holds no anchors; give an anchor log written by `shiprail audit anchor` "
            "or the controller (audit.anchors)\n"
        )

    def test_an_export_is_checked_against_the_anchors_too(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        log, export = tmp_path / "anchors.jsonl", tmp_path / "audit.jsonl"
        fill(store, N)
        take(capsys, store_url, log)
        assert cli(capsys, "export", "--db", store_url, "--out", str(export))[0] == 0
        code, out, _ = cli(capsys, "verify", "--file", str(export), "--anchors", str(log))
        assert code == 0
        assert out.endswith(f", matches the 1 anchor of {log} (the newest at seq {N})\n")
        # An export cut short is caught by the checkpoint exported with it.
        checkpoint = tmp_path / "checkpoint.json"
        assert cli(capsys, "export", "--db", store_url, "--out", str(export), "--checkpoint", str(checkpoint))[0] == 0
        kept = export.read_text(encoding="utf-8").splitlines()[:5]
        export.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--file", str(export), "--checkpoint", str(checkpoint))
        assert code == 1
        assert err == (
            f"error: audit chain broken at seq 6: seq 6 missing: the chain ends at seq 5 but the checkpoint records "
            f"seq {N}\n"
        )

    def test_an_archived_export_is_checked_against_the_anchors_up_to_its_end(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """Last month's archive against the anchor log as it is today: the anchors taken after it
        record seqs it cannot hold. That is no tampering; they are said, not checked."""
        log, export = tmp_path / "anchors.jsonl", tmp_path / "audit.jsonl"
        fill(store, N)
        take(capsys, store_url, log)
        assert cli(capsys, "export", "--db", store_url, "--out", str(export))[0] == 0
        grow(store, 3)
        take(capsys, store_url, log)
        grow(store, 2)
        take(capsys, store_url, log)
        code, out, err = cli(capsys, "verify", "--file", str(export), "--anchors", str(log))
        assert (code, err) == (0, "")
        assert out.endswith(
            f", matches the 1 anchor of {log} up to its end (the newest at seq {N}); 2 later anchors record seqs "
            f"past seq {N}, where the export ends, and were not checked: it was exported before them, or cut short "
            "(the checkpoint exported with it tells)\n"
        )
        code, out, _ = cli(capsys, "verify", "--file", str(export), "--anchors", str(log), "--json")
        data = json.loads(out)
        assert (code, data["ok"], data["anchors"], data["anchors_past_end"]) == (0, True, 3, 2)
        # What it holds is still checked against the anchors it reaches.
        rows = export.read_text(encoding="utf-8").splitlines()
        altered = json.loads(rows[N - 1]) | {"actor": "mallory"}
        export.write_text("\n".join([*rows[: N - 1], json.dumps(altered)]) + "\n", encoding="utf-8")
        assert cli(capsys, "verify", "--file", str(export), "--anchors", str(log))[0] == 1


@pytest.mark.usefixtures("cli_env")
class TestAnchorChain:
    """Each line of the log records its place and the digest of the line before it, under its
    signature: a line removed, moved or edited anywhere fails verify wherever the file is kept."""

    def three(self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], log: Path) -> list[str]:
        """A log of three anchors (seqs 4, 6, 8), as its lines."""
        fill(store, 4)
        take(capsys, store_url, log)
        for _ in range(2):
            grow(store, 2)
            take(capsys, store_url, log)
        text = log.read_text(encoding="utf-8").splitlines()
        assert cli(capsys, "verify", "--db", store_url, "--anchors", str(log))[0] == 0
        return text

    def test_a_line_removed_from_the_middle_fails_naming_the_log_and_the_line(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # Every line is signed and the seqs still only grow: before the chain, this verified.
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", KEY)
        log = tmp_path / "anchors.jsonl"
        first, _, third = self.three(store, store_url, capsys, log)
        log.write_text(f"{first}\n{third}\n", encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (1, "")
        assert err == (
            f"error: the anchor log {log} does not hold: line 2 records that it is anchor 3 of the log, but 1 anchor "
            "comes before it: 1 anchor before it was removed, or lines were moved\n"
        )
        # Nor is an anchor written to it.
        code, _, err = cli(capsys, "anchor", "--db", store_url, "--to", str(log))
        assert code == 1
        assert err.endswith("1 anchor before it was removed, or lines were moved; nothing was written\n")

    def test_two_lines_swapped_fail_naming_the_log_and_the_line(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", KEY)
        log = tmp_path / "anchors.jsonl"
        first, second, third = self.three(store, store_url, capsys, log)
        log.write_text(f"{first}\n{third}\n{second}\n", encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (1, "")
        assert err == (
            f"error: the anchor log {log} does not hold: line 2 records that it is anchor 3 of the log, but 1 anchor "
            "comes before it: 1 anchor before it was removed, or lines were moved\n"
        )

    def test_a_line_whose_time_was_edited_fails_naming_the_log_and_the_line(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        # Unsigned, nothing but the next line's link shows it (signed, the line's own signature does).
        log = tmp_path / "anchors.jsonl"
        first, second, third = self.three(store, store_url, capsys, log)
        edited = json.loads(second) | {"at": "2026-01-01T00:00:00+00:00"}
        log.write_text(f"{first}\n{json.dumps(edited)}\n{third}\n", encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (1, "")
        assert err == (
            f"error: the anchor log {log} does not hold: line 3 does not record the digest of line 2 before it: "
            "line 2 was edited or replaced after line 3 was written (or line 3's prev was)\n"
        )

    def test_a_line_whose_link_was_cut_is_refused(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", KEY)
        log = tmp_path / "anchors.jsonl"
        first, second, third = self.three(store, store_url, capsys, log)
        half = json.loads(second)
        del half["prev"]
        log.write_text(f"{first}\n{json.dumps(half)}\n{third}\n", encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out) == (2, "")
        assert err == (
            f"error: --anchors: {log}: line 2 is not an anchor: it has index but no prev, so its link to the anchor "
            "before it is cut; an anchor log holds one checkpoint per line, as `shiprail audit anchor` writes them\n"
        )
        # Both cut, to pass for a line from before anchors were chained: the signature covered them.
        del half["index"]
        log.write_text(f"{first}\n{json.dumps(half)}\n{third}\n", encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, err) == (
            1,
            f"error: the anchor on line 2 of {log} has a bad signature: it was altered or signed with another key\n",
        )

    def test_a_log_from_before_the_chain_still_verifies_and_its_next_anchor_starts_the_chain(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", KEY)
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        write_legacy(store, log, KEY)
        grow(store, 2)
        write_legacy(store, log, KEY)
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, err) == (0, "")
        assert out.endswith(f", matches the 2 anchors of {log} (the newest at seq 6)\n")
        grow(store, 2)
        take(capsys, store_url, log)
        _, last, chained = lines(log)
        assert [sorted(last), sorted(chained)] == [
            ["at", "hash", "seq", "signature"],
            ["at", "hash", "index", "prev", "seq", "signature"],
        ]
        # It counts the lines before it and records the digest of the last of them.
        assert (chained["index"], chained["prev"]) == (3, link_digest(anchor_of(last)))
        assert cli(capsys, "verify", "--db", store_url, "--anchors", str(log))[0] == 0
        # So a line before it removed is caught there, ...
        first, second, third = log.read_text(encoding="utf-8").splitlines()
        log.write_text(f"{second}\n{third}\n", encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, err) == (
            1,
            f"error: the anchor log {log} does not hold: line 2 records that it is anchor 3 of the log, but 1 anchor "
            "comes before it: 1 anchor before it was removed, or lines were moved\n",
        )
        # ... and an unchained line after it (an older shiprail appending, a link stripped) is refused.
        log.write_text(f"{first}\n{second}\n{third}\n", encoding="utf-8")
        grow(store, 1)
        write_legacy(store, log, KEY)
        code, _, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, err) == (
            1,
            f"error: the anchor log {log} does not hold: line 4 has no index and prev, though the anchors from "
            "line 3 on are chained: its link was stripped, or a shiprail that does not chain anchors appended it\n",
        )

    def test_lines_cut_off_the_end_leave_a_log_whole_as_far_as_it_goes(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """What the chain cannot show (docs/concepts.md says so): no later line names the lines cut
        off, so only --max-anchor-age can tell that the newest anchor is old."""
        log = tmp_path / "anchors.jsonl"
        first, second, _ = self.three(store, store_url, capsys, log)
        log.write_text(f"{first}\n{second}\n", encoding="utf-8")
        code, out, _ = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, out.endswith(f", matches the 2 anchors of {log} (the newest at seq 6)\n")) == (0, True)


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the lock is the file's: one backend is enough
class TestReadWhileAppending:
    """``audit verify --anchors`` reads the log under the shared side of the lock a writer appends
    under, waiting for it as long as a writer waits (10 s): never a line half written."""

    def test_verify_waits_for_an_anchor_being_appended_and_reads_it_whole(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        for _ in range(2):
            take(capsys, store_url, log)
            grow(store, 2)
        take(capsys, store_url, log)
        *before, last = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(before))
        # A writer in the middle of its append: the exclusive lock held, half of the line written.
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, last[:40])
            asked = threading.Event()
            flock = fcntl.flock

            def watched(fd: int, operation: int) -> None:
                if operation & fcntl.LOCK_SH:
                    asked.set()
                flock(fd, operation)

            monkeypatch.setattr(fcntl, "flock", watched)
            codes: list[int] = []
            reader = threading.Thread(
                target=lambda: codes.append(main(["audit", "verify", "--db", store_url, "--anchors", str(log)]))
            )
            reader.start()
            deadline = time.monotonic() + 30
            while not asked.is_set() and reader.is_alive() and time.monotonic() < deadline:
                reader.join(0.01)
            # It did not read the half line (and call it a write cut short): it waits for the lock.
            assert reader.is_alive(), capsys.readouterr()
            os.write(fd, last[40:])
            os.fsync(fd)
        finally:
            os.close(fd)  # the append is done: the lock goes
        reader.join(30)
        out, err = capsys.readouterr()
        assert (codes, err) == ([0], "")
        assert out.endswith(f", matches the 3 anchors of {log} (the newest at seq 8)\n")

    def test_a_log_locked_longer_than_a_writer_waits_is_an_error_and_nothing_is_verified(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        take(capsys, store_url, log)
        monkeypatch.setattr(defaults, "ANCHOR_LOCK_WAIT_SECONDS", 0.2)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a hung writer, a `flock` on it while it is rotated
            code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
            assert (code, out) == (1, "")
            assert err == (
                f"error: --anchors: {log} is locked by another process (for more than 0.2 s), so nothing was "
                f"verified; try again, and if it stays locked find the process that holds it (`fuser {log}`)\n"
            )
            code, out, _ = cli(capsys, "verify", "--db", store_url, "--anchors", str(log), "--json")
            assert (code, json.loads(out)["exit_code"]) == (1, 1)
        finally:
            os.close(fd)
        assert cli(capsys, "verify", "--db", store_url, "--anchors", str(log))[0] == 0

    def test_a_log_on_a_file_system_without_locks_is_read_as_it_is(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """No writer can append there (it cannot lock either): a copy kept there still verifies."""
        log = tmp_path / "anchors.jsonl"
        fill(store, 4)
        take(capsys, store_url, log)

        def no_locks(fd: int, operation: int) -> None:
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

        monkeypatch.setattr(fcntl, "flock", no_locks)
        code, out, err = cli(capsys, "verify", "--db", store_url, "--anchors", str(log))
        assert (code, err) == (0, "")
        assert out.endswith(f", matches the 1 anchor of {log} (the newest at seq 4)\n")
