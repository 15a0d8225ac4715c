"""Tampering with the audit chain the way someone with DBA rights could; verify names the first bad seq.

Every scenario runs on SQLite (triggers dropped and put back) and PostgreSQL (user triggers disabled,
or replication role), and asserts the exact seq and kind ``verify`` reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from shiprail.cli.main import main
from shiprail.errors import ShiprailError
from shiprail.schema.resolved import canonical_json
from shiprail.store import audit
from shiprail.store.db import Store

from .chain import (
    APPEND_ONLY,
    COLUMNS,
    EVENTS,
    START,
    chain,
    check,
    checkpoint_of,
    delete_rows,
    fill,
    forged,
    get_row,
    head,
    insert_row,
    rehash,
    renumber,
    replace_chain,
    set_head,
    set_row,
    tampering,
)

N = 8


def assert_first_bad(report: audit.Report, seq: int, kind: str) -> None:
    assert report.finding is not None, "verify did not notice the tampering"
    assert (report.finding.seq, report.finding.kind) == (seq, kind), report.finding.detail
    assert f"seq {seq}" in report.finding.detail


# -------------------------------------------------------------------------------- the triggers


def test_tampering_needs_the_triggers_out_of_the_way_and_they_come_back(store: Store) -> None:
    fill(store, 3)
    with tampering(store) as s:
        set_row(s, 2, {"actor": "mallory"})

    assert_first_bad(check(store), 2, "altered")
    with pytest.raises(DBAPIError, match=APPEND_ONLY), store.transaction() as s:
        s.execute(sa.text("DELETE FROM audit_events WHERE seq = 1"))


def test_postgresql_replication_role_gets_around_the_triggers_too(pg_store: Store) -> None:
    fill(pg_store, N)
    with tampering(pg_store, pg_method="replica") as s:
        set_row(s, 5, {"payload": '{"note":"replica"}'})
        delete_rows(s, EVENTS.c.seq == 7)

    assert_first_bad(check(pg_store), 5, "altered")
    # SET LOCAL ended with the transaction: the triggers are back in force.
    with pytest.raises(DBAPIError, match=APPEND_ONLY), pg_store.transaction() as s:
        s.execute(sa.text("UPDATE audit_events SET actor = 'x' WHERE seq = 1"))


# -------------------------------------------------------------------------------------- altered


@pytest.mark.parametrize("k", [1, 4, N])
def test_an_altered_payload_is_named(store: Store, k: int) -> None:
    fill(store, N)
    with tampering(store) as s:
        row = get_row(s, k)
        payload = json.loads(row["payload"])
        payload["weight"] = 100
        set_row(s, k, {"payload": canonical_json(payload)})

    assert_first_bad(check(store), k, "altered")


@pytest.mark.parametrize("k", [1, 4, N])
def test_an_altered_row_with_its_own_hash_recomputed_is_named(store: Store, k: int) -> None:
    """The attacker knows the scheme and fixes the row's hash, but not the rows after it."""
    rows = fill(store, N)
    bad = rehash(rows[k - 1], actor="mallory")
    with tampering(store) as s:
        set_row(s, k, {"actor": bad.actor, "hash": bad.hash})

    assert_first_bad(check(store), k, "altered")


@pytest.mark.parametrize("k", [1, 4])
def test_a_rewritten_tail_is_caught_only_by_a_checkpoint(store: Store, k: int) -> None:
    """Alter seq k and recompute every hash after it, and the head: only an outside checkpoint shows it.

    The checkpoint holds one (seq, hash), so verify can say the chain up to it was rewritten, not where.
    """
    rows = fill(store, N)
    checkpoint = checkpoint_of(store)
    new: list[audit.EventRow] = []
    prev = rows[k - 2].hash if k > 1 else audit.GENESIS
    for row in rows[k - 1 :]:
        changed = rehash(row, prev_hash=prev, actor="mallory" if row.seq == k else row.actor)
        new.append(changed)
        prev = changed.hash
    with tampering(store) as s:
        for row in new:
            set_row(s, row.seq, {c: getattr(row, c) for c in COLUMNS})
        set_head(s, N, prev)

    assert check(store).ok
    assert_first_bad(check(store, checkpoint), N, "altered")


# -------------------------------------------------------------------------------------- missing


@pytest.mark.parametrize("k", [1, 4, N - 1])
def test_a_deleted_row_is_named(store: Store, k: int) -> None:
    fill(store, N)
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq == k)

    assert_first_bad(check(store), k, "missing")


def test_deleted_rows_in_a_run_name_the_first(store: Store) -> None:
    fill(store, N)
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq.between(3, 5))

    finding = check(store).finding
    assert finding is not None
    assert (finding.seq, finding.kind) == (3, "missing")
    assert finding.detail.startswith("seqs 3..5 missing")


def test_the_deleted_last_row_is_named_by_the_head(store: Store) -> None:
    fill(store, N)
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq == N)

    assert_first_bad(check(store), N, "missing")


@pytest.mark.parametrize("k", [1, 4, N - 1])
def test_a_deleted_row_with_the_later_rows_renumbered_over_it_is_named(store: Store, k: int) -> None:
    fill(store, N)
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq == k)
        renumber(s, k + 1, -1)
        set_head(s, N - 1, get_row(s, N - 1)["hash"])

    assert_first_bad(check(store), k, "missing")


# ------------------------------------------------------------------------------------- inserted


@pytest.mark.parametrize("k", [1, 4, N])
def test_a_row_inserted_in_the_middle_is_named(store: Store, k: int) -> None:
    """Later rows moved up one seq, a forged row with a correct hash linking to seq k-1 put at k."""
    rows = fill(store, N)
    with tampering(store) as s:
        renumber(s, k, +1)
        insert_row(s, forged(k, rows[k - 2].hash if k > 1 else audit.GENESIS))
        set_head(s, N + 1, rows[-1].hash)

    assert_first_bad(check(store), k, "inserted")


def test_a_row_inserted_with_a_made_up_hash_is_named(store: Store) -> None:
    rows = fill(store, N)
    with tampering(store) as s:
        renumber(s, 4, +1)
        insert_row(s, {**forged(4, rows[2].hash), "hash": "f" * 64})

    assert_first_bad(check(store), 4, "inserted")


def test_a_row_appended_behind_the_heads_back_is_named(store: Store) -> None:
    """A forged row at the end that links correctly, added without taking the head along."""
    rows = fill(store, N)
    with store.transaction() as s:  # no trigger stops an INSERT: appending is what the table is for
        insert_row(s, forged(N + 1, rows[-1].hash))

    assert_first_bad(check(store), N + 1, "inserted")


@pytest.mark.parametrize("gap", [1, 1000])
def test_a_row_put_in_past_the_head_after_a_gap_is_named_inserted_not_missing(store: Store, gap: int) -> None:
    """Plain INSERT rights suffice; nothing was removed, so 'seqs N+1.. missing' would send people looking for rows."""
    rows = fill(store, N)
    with store.transaction() as s:
        insert_row(s, forged(N + 1 + gap, rows[-1].hash))

    assert_first_bad(check(store), N + 1 + gap, "inserted")


# ------------------------------------------------------------------------------------ reordered


@pytest.mark.parametrize(("a", "b"), [(2, 6), (3, 4), (1, 2), (1, N), (N - 1, N)])
def test_two_swapped_rows_are_named_at_the_lower_seq(store: Store, a: int, b: int) -> None:
    rows = fill(store, N)
    with tampering(store) as s:
        first, second = get_row(s, a), get_row(s, b)
        set_row(s, a, second)
        set_row(s, b, first)

    assert [r.seq for r in chain(store)] == [r.seq for r in rows]
    assert_first_bad(check(store), a, "reordered")


@pytest.mark.parametrize(("a", "b"), [(2, 6), (1, N), (4, 5)])
def test_a_row_moved_earlier_is_named_where_it_now_sits(store: Store, a: int, b: int) -> None:
    """Event b taken out and put back at seq a, the rows between pushed down one."""
    rows = fill(store, N)
    order = [*rows[: a - 1], rows[b - 1], *rows[a - 1 : b - 1], *rows[b:]]
    with tampering(store) as s:
        replace_chain(s, order)

    assert_first_bad(check(store), a, "reordered")


@pytest.mark.parametrize(("a", "b"), [(2, 6), (1, N), (4, 5)])
def test_a_row_moved_later_is_named_where_it_was(store: Store, a: int, b: int) -> None:
    """Event a taken out and put back at seq b, the rows between pulled up one."""
    rows = fill(store, N)
    order = [*rows[: a - 1], *rows[a:b], rows[a - 1], *rows[b:]]
    with tampering(store) as s:
        replace_chain(s, order)

    assert_first_bad(check(store), a, "reordered")


def test_a_copy_of_an_event_put_in_is_named_inserted(store: Store) -> None:
    rows = fill(store, N)
    with tampering(store) as s:
        replace_chain(s, [*rows[:2], rows[5], *rows[2:]])

    assert_first_bad(check(store), 3, "inserted")


# ------------------------------------------------------------------------------------ truncated


def test_a_truncated_tail_with_the_head_rewound_is_caught_by_an_earlier_checkpoint(store: Store) -> None:
    rows = fill(store, N)
    checkpoint = checkpoint_of(store)
    keep = 5
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq > keep)
        set_head(s, keep, rows[keep - 1].hash)

    assert head(store) == (keep, rows[keep - 1].hash)
    assert check(store).ok  # the chain and its head agree: nothing inside the database shows it
    assert_first_bad(check(store, checkpoint), keep + 1, "missing")


def test_a_truncated_tail_is_named_by_the_head(store: Store) -> None:
    fill(store, N)
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq > 5)

    assert_first_bad(check(store), 6, "missing")


def test_a_truncated_tail_with_only_the_heads_seq_rewound_says_events_may_have_been_removed(store: Store) -> None:
    """The head's seq rewound but its hash left as the old last row's: the row at the new head
    hashes and links, so the message must not blame it alone."""
    rows = fill(store, N)
    with tampering(store) as s:
        delete_rows(s, EVENTS.c.seq == N)
        set_head(s, N - 1, rows[N - 1].hash)

    report = check(store)
    assert_first_bad(report, N - 1, "altered")
    assert report.finding is not None
    assert report.finding.detail == (
        f"seq {N - 1} was altered, or events after it were removed: it does not match the hash the head records"
    )


def test_a_chain_emptied_with_the_head_reset_is_caught_by_a_checkpoint(store: Store) -> None:
    fill(store, N)
    checkpoint = checkpoint_of(store)
    with tampering(store) as s:
        if store.dialect == "postgresql":
            s.execute(sa.text("TRUNCATE audit_events"))
        else:
            delete_rows(s, sa.true())
        set_head(s, 0, audit.GENESIS)

    assert check(store).ok
    assert_first_bad(check(store, checkpoint), 1, "missing")


def test_a_checkpoint_taken_earlier_still_holds_for_a_chain_that_grew(store: Store) -> None:
    fill(store, 3)
    checkpoint = checkpoint_of(store)
    fill(store, 3)
    assert head(store)[0] == 6
    assert check(store, checkpoint).ok


# ------------------------------------------------------------------------------------------ CLI


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("cli_env")
class TestCli:
    def test_verify_passes_a_good_chain(self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        fill(store, N)
        code, out, err = cli(capsys, "verify", "--db", store_url)
        assert (code, err) == (0, "")
        assert f"audit chain ok: {N} events" in out

    @pytest.mark.parametrize("k", [2, 5])
    def test_verify_names_the_altered_seq(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], k: int
    ) -> None:
        fill(store, N)
        with tampering(store) as s:
            set_row(s, k, {"payload": '{"note":"rewritten"}'})

        code, _, err = cli(capsys, "verify", "--db", store_url)
        assert code == 1
        assert err.startswith(f"error: audit chain broken at seq {k}: seq {k} was altered")
        assert err.count("\n") == 1  # one sentence, no traceback

    @pytest.mark.parametrize("payload", ["not json", "[1, 2]"])
    def test_a_payload_rewritten_as_something_shiprail_never_writes_is_named_not_a_traceback(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, payload: str
    ) -> None:
        """shiprail writes every payload as a JSON object; text that is not JSON, written by hand,
        is a row altered at its seq, in the database and in an export of it."""
        fill(store, N)
        with tampering(store) as s:
            set_row(s, 3, {"payload": payload})

        code, _, err = cli(capsys, "verify", "--db", store_url)
        assert (code, err) == (
            1,
            "error: audit chain broken at seq 3: seq 3 was altered: its content no longer matches its hash\n",
        )
        out_file = tmp_path / "audit.jsonl"
        code, _, err = cli(capsys, "export", "--db", store_url, "--out", str(out_file))
        assert (code, err) == (0, "")
        code, _, err = cli(capsys, "verify", "--file", str(out_file))
        assert (code, err) == (
            1,
            "error: audit chain broken at seq 3: seq 3 was altered: its content no longer matches its hash\n",
        )

    def test_a_deleted_chain_head_is_named_not_a_traceback(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        with tampering(store) as s:
            s.execute(sa.text("DELETE FROM audit_head"))

        message = f"error: {audit.HEAD_MISSING}\n"
        for args in (["verify"], ["export", "--out", str(tmp_path / "audit.jsonl")]):
            code, out, err = cli(capsys, *args, "--db", store_url)
            assert (code, out, " ".join(err.split()) + "\n") == (1, "", message)
        assert not (tmp_path / "audit.jsonl").exists()
        with pytest.raises(ShiprailError, match="audit chain's head is missing"), store.transaction() as s:
            audit.append(s, at=START, actor="alice", kind="x", release_id=None, payload={})

    def test_verify_of_one_releases_export_is_refused_not_called_a_broken_chain(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        whole = tmp_path / "whole.jsonl"
        assert cli(capsys, "export", "--db", store_url, "--out", str(whole))[0] == 0
        lines = whole.read_text(encoding="utf-8").splitlines()
        one = tmp_path / "one.jsonl"  # as `audit export --release checkout-2.4.0` writes it
        one.write_text(
            "".join(line + "\n" for line in lines if json.loads(line)["release_id"] == "checkout-2.4.0"),
            encoding="utf-8",
        )
        code, out, err = cli(capsys, "verify", "--file", str(one))
        assert (code, out) == (2, "")
        assert " ".join(err.split()) == (
            f"error: --file: {one} holds only the events of release checkout-2.4.0 (seq 2 to 8), as `shiprail "
            "audit export --release` writes them, not the whole chain; give a file written by `shiprail audit "
            "export --out` without --release"
        )
        # A whole export whose rows all belong to one release is still verified, and a cut one still fails.
        whole.write_text("".join(line + "\n" for i, line in enumerate(lines) if i != 3), encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--file", str(whole))
        assert (code, err.startswith("error: audit chain broken at seq 4: seq 4 missing")) == (1, True)

    def test_verify_names_a_deleted_seq(self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        fill(store, N)
        with tampering(store) as s:
            delete_rows(s, EVENTS.c.seq == 3)

        code, _, err = cli(capsys, "verify", "--db", store_url)
        assert code == 1
        assert "audit chain broken at seq 3: seq 3 missing" in err

    def test_verify_json(self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        rows = fill(store, N)
        code, out, _ = cli(capsys, "verify", "--db", store_url, "--json")
        assert code == 0
        data = json.loads(out)
        assert data == {
            "ok": True,
            "events": N,
            "verified_through": N,
            "last_hash": rows[-1].hash,
            "first_bad_seq": None,
            "problem": None,
            "detail": None,
        }

        with tampering(store) as s:
            first, second = get_row(s, 3), get_row(s, 6)
            set_row(s, 3, second)
            set_row(s, 6, first)
        code, out, err = cli(capsys, "verify", "--db", store_url, "--json")
        assert (code, err) == (1, "")
        data = json.loads(out)
        assert (data["ok"], data["first_bad_seq"], data["problem"]) == (False, 3, "reordered")
        assert (data["events"], data["verified_through"]) == (2, 2)
        assert data["last_hash"] == rows[1].hash
        assert "seq 3" in data["detail"]

    def test_export_then_verify_the_file_against_its_checkpoint(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        rows = fill(store, N)
        out_file, cp_file = tmp_path / "audit.jsonl", tmp_path / "checkpoint.json"

        code, out, _ = cli(capsys, "export", "--db", store_url, "--out", str(out_file), "--checkpoint", str(cp_file))
        assert code == 0
        assert f"wrote {N} events" in out
        lines = out_file.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["seq"] for line in lines] == list(range(1, N + 1))
        assert [audit.EventRow.from_json(json.loads(line)) for line in lines] == rows
        cp = json.loads(cp_file.read_text(encoding="utf-8"))
        assert (cp["seq"], cp["hash"]) == (N, rows[-1].hash)
        assert "signature" not in cp

        code, out, err = cli(capsys, "verify", "--file", str(out_file), "--checkpoint", str(cp_file))
        assert (code, err) == (0, "")
        assert f"matches checkpoint at seq {N}" in out

        # The export is evidence too: edit one line of it and verify names that seq.
        edited = json.loads(lines[4])
        edited["payload"]["weight"] = 0
        lines[4] = json.dumps(edited, ensure_ascii=False)
        out_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--file", str(out_file), "--checkpoint", str(cp_file))
        assert code == 1
        assert "audit chain broken at seq 5: seq 5 was altered" in err

        # ...and a file cut short is caught by the checkpoint.
        out_file.write_text("".join(line + "\n" for line in lines[:4]), encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--file", str(out_file), "--checkpoint", str(cp_file))
        assert code == 1
        assert "audit chain broken at seq 5: seq 5 missing" in err

    def test_an_export_line_respelled_so_it_hashes_the_same_is_refused_not_verified(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        out_file = tmp_path / "audit.jsonl"
        assert cli(capsys, "export", "--db", store_url, "--out", str(out_file))[0] == 0
        lines = out_file.read_text(encoding="utf-8").splitlines()
        at = json.loads(lines[2])["at"]
        # Each edit, coerced, gives back the original row and so its hash: the file must not verify.
        respelled = [
            ("seq", "3"),
            ("seq", 3.0),
            ("actor", 7),
            ("at", at.replace("+00:00", "Z")),
            ("at", at[:-6]),
            ("at", at.replace(".", ",", 1) if "." in at else at + " "),
        ]
        for key, value in respelled:
            edited = json.loads(lines[2])
            edited[key] = value
            changed = [*lines[:2], json.dumps(edited, ensure_ascii=False), *lines[3:]]
            out_file.write_text("\n".join(changed) + "\n", encoding="utf-8")
            code, out, err = cli(capsys, "verify", "--file", str(out_file))
            assert (code, out) == (2, ""), (key, value)
            assert err == f"error: {out_file}:3: not an audit event line from `shiprail audit export`\n", (key, value)
        edited = json.loads(lines[0])
        edited["seq"] = True  # seq 1, and True == 1 in Python
        out_file.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n", encoding="utf-8")
        assert cli(capsys, "verify", "--file", str(out_file))[0] == 2

    def test_a_checkpoint_of_one_releases_export_is_refused_and_writes_nothing(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        out_file, cp_file = tmp_path / "audit.jsonl", tmp_path / "checkpoint.json"
        args = ("export", "--db", store_url, "--release", "r1", "--out", str(out_file), "--checkpoint", str(cp_file))
        code, out, err = cli(capsys, *args)
        assert (code, out) == (2, "")
        assert err == (
            "error: --checkpoint records the whole chain's head, which one release's events cannot be checked "
            "against; drop --release for an archive with its checkpoint, or use `shiprail release export` for one "
            "release's proof\n"
        )
        assert not out_file.exists() and not cp_file.exists()

    def test_an_export_to_a_path_that_cannot_be_written_is_refused_and_writes_nothing(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        fill(store, N)
        out_file, missing = tmp_path / "audit.jsonl", tmp_path / "nowhere" / "c.json"
        cases = [
            (("--out", str(missing)), f"error: --out {missing}: the directory {missing.parent} does not exist"),
            (("--out", str(tmp_path)), f"error: --out {tmp_path} is a directory; give a file path"),
            (
                ("--out", str(out_file), "--checkpoint", str(missing)),
                f"error: --checkpoint {missing}: the directory {missing.parent} does not exist",
            ),
        ]
        for args, start in cases:
            code, out, err = cli(capsys, "export", "--db", store_url, *args)
            assert (code, out) == (2, ""), args
            assert err.startswith(start) and err.count("\n") == 1, err
            assert not out_file.exists() and not missing.parent.exists()

    def test_export_round_trips_a_payload_with_unicode_line_separators(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        with store.transaction() as s:
            audit.append(
                s, at=START, actor="ana", kind="override", release_id=None, payload={"reason": "one\u2028two\u2029"}
            )
        out_file = tmp_path / "audit.jsonl"
        assert cli(capsys, "export", "--db", store_url, "--out", str(out_file))[0] == 0
        code, _, err = cli(capsys, "verify", "--file", str(out_file))
        assert (code, err) == (0, "")

    def test_truncation_with_the_head_rewound_is_caught_by_the_checkpoint(
        self, store: Store, store_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        rows = fill(store, N)
        cp_file = tmp_path / "checkpoint.json"
        export = ("export", "--db", store_url, "--out", str(tmp_path / "audit.jsonl"), "--checkpoint", str(cp_file))
        code, _, _ = cli(capsys, *export)
        assert code == 0
        with tampering(store) as s:
            delete_rows(s, EVENTS.c.seq > 6)
            set_head(s, 6, rows[5].hash)

        assert cli(capsys, "verify", "--db", store_url)[0] == 0
        code, _, err = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file))
        assert code == 1
        assert "audit chain broken at seq 7: seq 7 missing" in err
        code, out, _ = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file), "--json")
        assert code == 1
        data = json.loads(out)
        assert (data["ok"], data["first_bad_seq"], data["problem"]) == (False, 7, "missing")

    def test_a_signed_checkpoint(
        self,
        store: Store,
        store_url: str,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        fill(store, N)
        cp_file = tmp_path / "checkpoint.json"
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", "s3cret-kéy")
        export = ("export", "--db", store_url, "--out", str(tmp_path / "audit.jsonl"), "--checkpoint", str(cp_file))
        code, _, _ = cli(capsys, *export)
        assert code == 0
        cp = json.loads(cp_file.read_text(encoding="utf-8"))
        assert audit.Checkpoint(cp["seq"], cp["hash"], cp["at"], cp["signature"]).signature_ok("s3cret-kéy")

        code, out, err = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file))
        assert (code, err) == (0, "")
        assert f"matches checkpoint at seq {N}" in out

        # Wrong key: refused.
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", "another key")
        code, _, err = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file))
        assert code == 1
        assert "bad signature" in err
        monkeypatch.setenv("SHIPRAIL_AUDIT_KEY", "s3cret-kéy")

        # A tampered signature: refused.
        flipped = cp["signature"][:-1] + ("0" if cp["signature"][-1] != "0" else "1")
        cp_file.write_text(json.dumps({**cp, "signature": flipped}), encoding="utf-8")
        code, out, err = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file))
        assert code == 1
        assert err.startswith(f"error: the checkpoint {cp_file} has a bad signature")
        code, out, _ = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file), "--json")
        assert code == 1
        assert json.loads(out)["ok"] is False

        # A checkpoint rewound (to cover up truncation) keeping the old signature: refused.
        cp_file.write_text(json.dumps({**cp, "seq": N - 2}), encoding="utf-8")
        code, _, err = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file))
        assert code == 1
        assert "bad signature" in err

        # A signed checkpoint with no key to check it: a usage error, not a pass.
        cp_file.write_text(json.dumps(cp), encoding="utf-8")
        monkeypatch.delenv("SHIPRAIL_AUDIT_KEY")
        code, _, err = cli(capsys, "verify", "--db", store_url, "--checkpoint", str(cp_file))
        assert code == 2
        assert "SHIPRAIL_AUDIT_KEY" in err
