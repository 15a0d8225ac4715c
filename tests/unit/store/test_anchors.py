"""The anchor log's lines and its consistency, without a file: ``store.anchors``' pure half."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shiprail.schema.resolved import canonical_json, sha256_hex
from shiprail.store.anchors import (
    Anchor,
    AnchorLogInvalid,
    broken_link,
    chained,
    checkpoint_line,
    inconsistency,
    link_digest,
    parse_log,
)
from shiprail.store.audit import GENESIS, Checkpoint

H1, H2 = "a1" * 32, "b2" * 32
AT = "2026-03-01T09:00:00+00:00"


def line(seq: object, digest: object = H1, at: object = AT, **more: object) -> bytes:
    return json.dumps({"seq": seq, "hash": digest, "at": at, **more}).encode() + b"\n"


def test_a_log_reads_as_its_anchors_with_their_lines_blank_lines_skipped() -> None:
    signed = "cd" * 32
    data = line(3) + b"\n" + line(5, H2, signature=signed)
    assert parse_log(data) == [
        Anchor(1, Checkpoint(3, H1, AT)),
        Anchor(3, Checkpoint(5, H2, AT, signed)),
    ]
    assert parse_log(b"") == []


@pytest.mark.parametrize(
    ("data", "line_no", "why"),
    [
        (line(3) + b"{nope\n", 2, "is not JSON"),
        (line(3) + b"\xff\xfe\n", 2, "is not UTF-8 text"),
        (line(0), 1, "is not an anchor: seq is 0, not the seq of an event (a whole number of at least 1)"),
        (line(3, "AB"), 1, 'is not an anchor: hash is "AB", not a SHA-256 (64 lowercase hex digits)'),
        (
            line(3, at="2026-03-01T09:00:00"),
            1,
            'is not an anchor: at is "2026-03-01T09:00:00", a time without a UTC offset',
        ),
        (b"[1, 2]\n", 1, "is not an anchor: not a JSON object of seq, hash and at"),
        (line(3) + line(4)[:-1], 2, "has no newline at its end: a write cut short (a full disk) or an edit"),
    ],
)
def test_a_line_that_is_no_anchor_is_named_with_what_is_wrong(data: bytes, line_no: int, why: str) -> None:
    with pytest.raises(AnchorLogInvalid) as caught:
        parse_log(data)
    assert (caught.value.line, caught.value.why) == (line_no, why)


def anchors(*pairs: tuple[int, str]) -> list[Anchor]:
    return [Anchor(i, Checkpoint(seq, digest, AT)) for i, (seq, digest) in enumerate(pairs, 1)]


def test_a_log_that_only_grows_is_consistent() -> None:
    assert inconsistency(anchors((3, H1), (3, H1), (7, H2)), "a.jsonl") is None
    assert inconsistency([], "a.jsonl") is None


def test_a_seq_going_back_or_one_seq_with_two_hashes_is_named() -> None:
    assert inconsistency(anchors((3, H1), (9, H2), (7, H1)), "a.jsonl") == (
        7,
        "the anchor on line 3 of a.jsonl records seq 7, after line 2 recorded seq 9: the chain went back, "
        "so its tail was cut and the chain written again after it",
    )
    assert inconsistency(anchors((3, H1), (3, H2)), "a.jsonl") == (
        3,
        "the anchor on line 2 of a.jsonl records another hash for seq 3 than line 1: one of them was taken "
        "over a rewritten chain",
    )


# ------------------------------------------------------------------------------ the anchor chain

KEY = "unit-key"


def chained_log(*seqs: int, key: str | None = KEY, legacy: int = 0) -> list[Anchor]:
    """A log as shiprail writes it, one anchor per seq (hash and time made up): the first ``legacy``
    without links (written before anchors were chained), every other one chained to the one before."""
    log: list[Anchor] = []
    for n, seq in enumerate(seqs, 1):
        cp = Checkpoint(seq, f"{seq:064x}", f"2026-03-01T09:{n:02d}:00+00:00")
        if n > legacy:
            cp = chained(cp, log)
        log.append(Anchor(n, cp.sign(key) if key else cp))
    return log


def as_bytes(log: list[Anchor]) -> bytes:
    return b"".join(checkpoint_line(a.checkpoint).encode() for a in log)


def relined(log: list[Anchor]) -> list[Anchor]:
    """``log`` as it reads once its lines are written out in this order (each renumbered by place)."""
    return [Anchor(n, a.checkpoint) for n, a in enumerate(log, 1)]


def why(log: list[Anchor]) -> str:
    """What ``broken_link`` says of ``log`` (empty when every link holds)."""
    broken = broken_link(log)
    return "" if broken is None else broken[1]


def test_each_anchor_records_its_place_and_the_digest_of_the_one_before_under_its_signature() -> None:
    first, second = chained_log(3, 5)
    assert (first.checkpoint.index, first.checkpoint.prev) == (1, GENESIS)
    assert (second.checkpoint.index, second.checkpoint.prev) == (2, link_digest(first.checkpoint))
    assert link_digest(first.checkpoint) == sha256_hex(canonical_json(json.loads(checkpoint_line(first.checkpoint))))
    assert second.checkpoint.signature_ok(KEY)
    # The link is signed: a line moved and renumbered to fit is no longer the line the key signed.
    assert not replace(second.checkpoint, index=1, prev=GENESIS).signature_ok(KEY)
    assert parse_log(as_bytes([first, second])) == [first, second]
    assert broken_link([first, second]) is None


def test_a_line_removed_from_the_middle_breaks_the_next_line_s_link() -> None:
    a, _, c, d = chained_log(3, 5, 8, 9)
    assert broken_link(relined([a, c, d])) == (
        Anchor(2, c.checkpoint),
        "records that it is anchor 3 of the log, but 1 anchor comes before it: 1 anchor before it was removed, "
        "or lines were moved",
    )
    # The first line, too; and the first two.
    assert why(relined([c, d])).startswith(
        "records that it is anchor 3 of the log, but no anchor comes before it: 2 anchors before it were removed"
    )


def test_two_lines_swapped_break_the_link_of_the_first_of_them() -> None:
    a, b, c = chained_log(3, 5, 8)
    assert broken_link(relined([a, c, b])) == (
        Anchor(2, c.checkpoint),
        "records that it is anchor 3 of the log, but 1 anchor comes before it: 1 anchor before it was removed, "
        "or lines were moved",
    )
    # A line inserted (here a copy of one) is named as such.
    assert broken_link(relined([a, b, b, c])) == (
        Anchor(3, b.checkpoint),
        "records that it is anchor 2 of the log, but 2 anchors come before it: a line was inserted before it, "
        "or lines were moved",
    )


def test_a_line_edited_in_an_unsigned_log_breaks_the_next_line_s_link() -> None:
    """Unsigned, nothing else catches it: the link of the line after does."""
    a, b, c = chained_log(3, 5, 8, key=None)
    edited = replace(b.checkpoint, at="2026-03-01T08:00:00+00:00")
    assert broken_link([a, Anchor(2, edited), c]) == (
        c,
        "does not record the digest of line 2 before it: line 2 was edited or replaced after line 3 was written "
        "(or line 3's prev was)",
    )
    first = replace(a.checkpoint, prev=link_digest(b.checkpoint))
    assert why([Anchor(1, first), b, c]) == (
        "records that it is anchor 1 of the log, but its prev is not the 64 zeros of a first anchor: it was edited"
    )


def test_a_log_written_before_anchors_were_chained_holds_and_its_next_line_starts_the_chain() -> None:
    legacy = chained_log(3, 5, legacy=2)
    assert [a.checkpoint.index for a in legacy] == [None, None]
    assert broken_link(legacy) is None
    log = chained_log(3, 5, 8, 9, legacy=2)
    assert (log[2].checkpoint.index, log[2].checkpoint.prev) == (3, link_digest(log[1].checkpoint))
    assert broken_link(log) is None
    # The first chained line counts the lines before it: one of them removed is caught there.
    assert why(relined([log[0], log[2], log[3]])).startswith(
        "records that it is anchor 3 of the log, but 1 anchor comes before it"
    )


def test_a_line_without_a_link_after_the_chain_started_breaks_it() -> None:
    a, b = chained_log(3, 5)
    stripped = Checkpoint(8, "c3" * 32, AT).sign(KEY)  # as a shiprail that does not chain writes it
    assert broken_link([a, b, Anchor(4, stripped)]) == (
        Anchor(4, stripped),
        "has no index and prev, though the anchors from line 1 on are chained: its link was stripped, or a "
        "shiprail that does not chain anchors appended it",
    )


@pytest.mark.parametrize(
    ("more", "why"),
    [
        ({"index": 2}, "it has index but no prev, so its link to the anchor before it is cut"),
        ({"prev": GENESIS}, "it has prev but no index, so its link to the anchor before it is cut"),
        ({"index": 0, "prev": GENESIS}, "index is 0, not a place in the log (a whole number of at least 1)"),
        ({"index": True, "prev": GENESIS}, "index is true, not a place in the log (a whole number of at least 1)"),
        ({"index": 1, "prev": "00"}, 'prev is "00", not a SHA-256 (64 lowercase hex digits)'),
    ],
)
def test_a_link_cut_in_half_or_not_a_link_is_no_anchor(more: dict[str, object], why: str) -> None:
    with pytest.raises(AnchorLogInvalid) as caught:
        parse_log(line(3, **more))
    assert (caught.value.line, caught.value.why) == (1, f"is not an anchor: {why}")
