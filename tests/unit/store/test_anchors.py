"""The anchor log's lines and its consistency, without a file: ``store.anchors``' pure half."""

from __future__ import annotations

import json

import pytest

from shiprail.store.anchors import Anchor, AnchorLogInvalid, inconsistency, parse_log
from shiprail.store.audit import Checkpoint

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
