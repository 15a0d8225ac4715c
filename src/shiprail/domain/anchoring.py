"""When the controller anchors the audit chain: the decision, without the file or the database.

An anchor is a checkpoint of the chain head appended to a log kept outside the database
(``store.anchors``). The controller takes one at most every ``audit.anchor_every``, and only when
the head moved since the last one: an idle system adds no lines. After a failed attempt (a full
disk, a chain that does not verify) it tries again after ``retry_s``, not at every pass: each try
verifies the chain (from the last anchor on, or all of it when anything is amiss).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Mark:
    """The last anchor the log holds: the head it recorded and when."""

    seq: int
    hash: str
    at: datetime


def anchor_due(
    now: datetime,
    *,
    head: tuple[int, str],
    last: Mark | None,
    every_s: float,
    failed_at: datetime | None = None,
    retry_s: float = 0.0,
) -> bool:
    """Whether an anchor of ``head`` (seq, hash) should be taken at ``now``.

    Not for an empty chain (nothing to anchor), nor while a failed attempt's ``retry_s`` runs, nor
    when ``last`` already records ``head``; else when there is no anchor yet or ``every_s`` has
    passed since ``last``. A ``last`` dated after ``now`` (a clock set ahead where it was taken, a
    forged line) says nothing of when anchoring last ran: it holds nothing back.
    """
    seq, digest = head
    if seq < 1:
        return False
    if failed_at is not None and now < failed_at + timedelta(seconds=retry_s):
        return False
    if last is None:
        return True
    if (last.seq, last.hash) == (seq, digest):
        return False
    return last.at > now or now >= last.at + timedelta(seconds=every_s)


def next_look(now: datetime, *, last: Mark | None, every_s: float) -> datetime:
    """The earliest time an anchor after ``last`` can be due, for a caller that wants to skip reading
    the head until then (``now`` when there is no anchor yet, or it is dated after ``now``)."""
    if last is None or last.at > now:
        return now
    return max(now, last.at + timedelta(seconds=every_s))
