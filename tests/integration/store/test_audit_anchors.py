"""``shiprail audit anchor`` and ``audit verify --anchors`` on SQLite and PostgreSQL.

An anchor log is a file of checkpoints of the chain head, appended to as the chain grows. What is
pinned: an anchor is written only over a chain that verifies (and never twice for one head), and
verify against the log catches what the database alone cannot show — a tail cut with the head
rewound, a chain recomputed from some row on — naming the seq, as well as a forged anchor line and
a log that stopped being written to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from shiprail.cli.main import main
from shiprail.schema.resolved import canonical_json
from shiprail.store import audit
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
        assert (sorted(first), first["seq"], first["hash"]) == (["at", "hash", "seq"], N, rows[-1].hash)

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
        text = canonical_json({"seq": line["seq"], "hash": line["hash"], "at": line["at"]})
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
