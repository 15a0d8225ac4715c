"""The audit chain: every event hash-linked to the one before it.

Each row carries ``hash = sha256(prev_hash || canonical JSON of {seq, at, actor, kind,
release_id, payload})``. Appends lock the chain head, so there is one writer at a time, and happen
in the same transaction as the change they record. The database refuses UPDATE and DELETE on the
table; ``verify`` finds what someone with enough rights to get around that did anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from shiprail.errors import AuditChainBroken
from shiprail.schema.resolved import canonical_json, sha256_hex
from shiprail.store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# A planned release whose approvals gate would refuse it now (created, its approvals asked again, or
# one revoked): news for a communication plan (``shiprail.notifiers.events``).
APPROVAL_AWAITED_EVENT = "approval.awaited"
HEAD_ID = 1


@dataclass(frozen=True)
class EventRow:
    """An audit row as verify sees it, from the database or from an export."""

    seq: int
    at: datetime
    actor: str
    kind: str
    release_id: str | None
    payload: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> EventRow:
        return cls(
            event.seq,
            event.at,
            event.actor,
            event.kind,
            event.release_id,
            event.payload,
            event.prev_hash,
            event.hash,
        )

    def to_json(self) -> dict[str, Any]:
        """The export form: payload as an object, time as ISO 8601.

        A payload that is not JSON (rewritten in the database) is exported as its text, a JSON
        string: it then hashes like no payload shiprail wrote, and the export verifies as altered there.
        """
        try:
            payload = json.loads(self.payload)
        except ValueError:
            payload = self.payload
        return {
            "seq": self.seq,
            "at": format_time(self.at),
            "actor": self.actor,
            "kind": self.kind,
            "release_id": self.release_id,
            "payload": payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventRow:
        """The row of one export line, exactly as ``to_json`` spells it; ``ValueError`` otherwise.

        Strict on purpose: a line whose ``seq`` is ``"5"`` or ``true``, or whose time is spelled
        another way, hashes like the original once coerced, so coercing would let an altered file
        verify.
        """
        if not isinstance(data, Mapping):
            raise ValueError("an audit event is a JSON object")
        seq, at = data["seq"], data["at"]
        if type(seq) is not int:
            raise ValueError("seq is not an integer")
        texts = [data[key] for key in ("actor", "kind", "prev_hash", "hash", "at")]
        release_id = data["release_id"]
        if not all(isinstance(t, str) for t in texts) or not (release_id is None or isinstance(release_id, str)):
            raise ValueError("a field that is text is not")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or format_time(parsed) != at:
            raise ValueError("at is not a UTC time as export writes it")
        return cls(
            seq,
            parsed,
            data["actor"],
            data["kind"],
            release_id,
            canonical_json(data["payload"]),
            data["prev_hash"],
            data["hash"],
        )


def format_time(at: datetime) -> str:
    """UTC with microseconds, always the same spelling: part of what is hashed."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def compute_hash(
    prev_hash: str, seq: int, at: datetime, actor: str, kind: str, release_id: str | None, payload: str
) -> str:
    """The hash a row with these values must carry."""
    document = {
        "seq": seq,
        "at": format_time(at),
        "actor": actor,
        "kind": kind,
        "release_id": release_id,
        "payload": json.loads(payload),
    }
    return sha256_hex(prev_hash + canonical_json(document))


def _self_hash(row: EventRow, seq: int | None = None) -> str:
    """The hash ``row`` must carry (at ``seq``); empty, matching no hash, when its payload is not JSON.

    shiprail writes every payload as canonical JSON: one that is not was written into the database
    by hand, and its row is altered, not a reason for verify to stop.
    """
    try:
        return compute_hash(
            row.prev_hash, row.seq if seq is None else seq, row.at, row.actor, row.kind, row.release_id, row.payload
        )
    except ValueError:
        return ""


def payload_of(row: EventRow | AuditEvent) -> dict[str, Any]:
    """An event's payload as a dict; empty when it is not a JSON object (a row rewritten by hand)."""
    try:
        data = json.loads(row.payload)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


HEAD_MISSING = (
    "the audit chain's head is missing: its row in audit_head (id 1) was deleted, so nothing can be appended "
    "and a tail cut from the chain cannot be seen; restore audit_head from a backup and check the chain with "
    "`shiprail audit verify --checkpoint FILE`"
)


def _head_row(session: Session, *, lock: bool) -> AuditHead:
    """The chain head's row (locked for the transaction when ``lock``); ``AuditChainBroken`` when it was deleted."""
    query = select(AuditHead).where(AuditHead.id == HEAD_ID)
    row = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if row is None:
        raise AuditChainBroken(HEAD_MISSING, 0)
    return row


def lock_head(session: Session) -> None:
    """Take the chain head's row lock now, for the rest of the caller's transaction.

    Every writer of the chain takes it (``append``), so a check that must see what concurrent
    writers committed (an open post-mortem, say) takes it first and then reads.
    """
    _head_row(session, lock=True)


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    kind: str,
    release_id: str | None,
    payload: Mapping[str, Any],
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction."""
    head = _head_row(session, lock=True)
    seq = head.seq + 1
    body = canonical_json(dict(payload))
    digest = compute_hash(head.hash, seq, at, actor, kind, release_id, body)
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        kind=kind,
        release_id=release_id,
        payload=body,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(event)
    head.seq, head.hash = seq, digest
    session.flush()
    return event


def rows(session: Session, release_id: str | None = None) -> Iterator[EventRow]:
    """The chain in order (or one release's events)."""
    query = select(AuditEvent).order_by(AuditEvent.seq)
    if release_id is not None:
        query = query.where(AuditEvent.release_id == release_id)
    return _events(session, query)


def rows_from(session: Session, seq: int) -> Iterator[EventRow]:
    """The chain in order from ``seq`` on."""
    return _events(session, select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq))


def _events(session: Session, query: Select[AuditEvent]) -> Iterator[EventRow]:
    """The rows ``query`` selects, read a thousand at a time (a chain may be millions long)."""
    for event in session.execute(query.execution_options(yield_per=1000)).scalars():
        yield EventRow.of(event)


def continues(events: Iterable[EventRow], start: Checkpoint, head_seq: int, head_hash: str) -> bool:
    """Whether ``events`` (the chain from ``start.seq`` on) hold: the row at ``start.seq`` carries
    ``start.hash`` and its content matches it, each later row links to the one before and matches
    its hash, and the last is the head. Only True or False: ``verify`` says what is wrong.

    What an anchor taken before needs checking again is only this: rows before ``start.seq`` cannot
    change without changing the hash at ``start.seq`` (each hash covers the one before), and an
    edit that leaves the stored hashes alone changes no anchor (a full ``verify`` names it).
    """
    expected, prev = start.seq, None
    for row in events:
        if row.seq != expected or _self_hash(row) != row.hash:
            return False
        if prev is None and row.hash != start.hash:
            return False
        if prev is not None and row.prev_hash != prev:
            return False
        prev, expected = row.hash, expected + 1
    return prev is not None and expected - 1 == head_seq and prev == head_hash


def head(session: Session) -> tuple[int, str]:
    """The chain head as last recorded: (seq, hash)."""
    h = _head_row(session, lock=False)
    return h.seq, h.hash


# ---------------------------------------------------------------------------------- checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """A (seq, hash) pair kept outside the database, optionally HMAC-signed.

    A checkpoint on a line of an anchor log also carries its link (``store.anchors``): ``index``,
    its place among the log's anchors (1 for the first), and ``prev``, the digest of the anchor
    before it (``GENESIS`` for the first). Both are signed with the rest, so a line cannot be
    moved, nor one removed before it, without the key. A checkpoint without them (``audit export
    --checkpoint``, an anchor written before anchors were chained) is signed as it always was.
    """

    seq: int
    hash: str
    at: str
    signature: str | None = None
    index: int | None = None
    prev: str | None = None

    def signed_text(self) -> str:
        fields: dict[str, Any] = {"seq": self.seq, "hash": self.hash, "at": self.at}
        if self.index is not None:
            fields |= {"index": self.index, "prev": self.prev}
        return canonical_json(fields)

    def sign(self, key: str) -> Checkpoint:
        mac = hmac.new(key.encode(), self.signed_text().encode(), hashlib.sha256).hexdigest()
        return replace(self, signature=mac)

    def signature_ok(self, key: str) -> bool:
        if self.signature is None:
            return False
        return hmac.compare_digest(self.sign(key).signature or "", self.signature)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "hash": self.hash, "at": self.at}
        if self.index is not None:
            out |= {"index": self.index, "prev": self.prev}
        if self.signature:
            out["signature"] = self.signature
        return out


# -------------------------------------------------------------------------------------- verify

FindingKind = Literal["altered", "missing", "inserted", "reordered"]


@dataclass(frozen=True)
class Finding:
    """The first place the chain does not hold, and what happened there."""

    seq: int
    kind: FindingKind
    detail: str


@dataclass(frozen=True)
class Report:
    """What ``verify`` found."""

    count: int
    last_seq: int
    last_hash: str
    finding: Finding | None

    @property
    def ok(self) -> bool:
        return self.finding is None


@dataclass(frozen=True, slots=True)
class _Link:
    """What ``verify`` keeps of every row: its place and hashes, not its content (a long chain's
    payloads would otherwise all be held at once)."""

    seq: int
    prev_hash: str
    hash: str


def _classify_bad_row(
    rows_: Sequence[_Link],
    row: EventRow,
    i: int,
    prev: str,
    before_prev: str | None,
    expected: int,
    seqs: Sequence[int],
) -> Finding:
    """Name what happened at the first row that breaks the chain (``row``, at index ``i`` of ``rows_``)."""
    if row.seq > expected:
        gap = f"seq {expected}" if row.seq == expected + 1 else f"seqs {expected}..{row.seq - 1}"
        return Finding(expected, "missing", f"{gap} missing: the chain jumps from {expected - 1} to {row.seq}")
    if i > 0 and row.prev_hash == before_prev:
        # This row links to the one two back: the row between was put in.
        prior = rows_[i - 1].seq
        return Finding(prior, "inserted", f"seq {prior} was inserted: the next event links past it")
    # The seq this row's event was recorded at, when it now sits at another one (moved, or renumbered
    # over a deleted row: then it is seq + 1, which for the last row is not among the seqs left).
    recorded_at = None
    if _self_hash(row) != row.hash:
        recorded_at = next(
            (o for o in sorted({*seqs, row.seq + 1}) if o != row.seq and _self_hash(row, o) == row.hash), None
        )
    # A genuine event of the chain, present once, was moved here rather than put in.
    moved = recorded_at is not None and sum(r.hash == row.hash for r in rows_) == 1
    nxt = rows_[i + 1] if i + 1 < len(rows_) else None
    if nxt is not None and nxt.prev_hash == prev and not moved:
        return Finding(row.seq, "inserted", f"seq {row.seq} was inserted: the next event links past it")
    known = {r.hash for r in rows_}
    if recorded_at is not None:
        if recorded_at == row.seq + 1 and row.prev_hash not in known:
            return Finding(row.seq, "missing", f"seq {row.seq} missing: later rows were renumbered over it")
        return Finding(
            row.seq, "reordered", f"seq {row.seq} holds the event recorded as seq {recorded_at}: rows were moved"
        )
    if _self_hash(row) != row.hash:
        return Finding(row.seq, "altered", f"seq {row.seq} was altered: its content no longer matches its hash")
    if row.prev_hash in known:
        return Finding(
            row.seq, "reordered", f"seq {row.seq} does not follow seq {row.seq - 1} in the chain: rows were moved"
        )
    if i > 0:
        # This row is intact but links to a version of the row before it that is gone: that row was
        # altered and its own hash recomputed to cover it.
        prior = rows_[i - 1].seq
        return Finding(
            prior,
            "altered",
            f"seq {prior} was altered: its hash was recomputed, but seq {row.seq} links to the original",
        )
    return Finding(row.seq, "altered", f"seq {row.seq} was altered: it does not link to seq {row.seq - 1}")


def verify(
    events: Iterable[EventRow],
    *,
    head_seq: int | None = None,
    head_hash: str | None = None,
    checkpoint: Checkpoint | None = None,
    anchors: Iterable[tuple[str, Checkpoint]] = (),
) -> Report:
    """Walk the chain; name the first seq that was altered, removed, inserted or moved.

    ``head_*`` is the chain head the database recorded; ``checkpoint`` one kept outside it, and
    ``anchors`` more of them (each with the words naming it: ``the anchor on line 3 of
    anchors.jsonl``), checked in their order (read once the rows are walked: a caller streaming an
    export may choose them by where it ended). Each catches a truncated tail that the chain alone
    cannot show.
    """
    # One pass over the events, keeping only each row's links: the first row that breaks the chain
    # is kept whole, and the links of all the rows name what happened there.
    rows_: list[_Link] = []
    bad: tuple[int, EventRow] | None = None
    prev, before_prev = GENESIS, None
    expected = 1
    for i, row in enumerate(events):
        rows_.append(_Link(row.seq, row.prev_hash, row.hash))
        if bad is not None:
            continue
        if row.seq == expected and row.prev_hash == prev and _self_hash(row) == row.hash:
            before_prev, prev = prev, row.hash
            expected += 1
            continue
        bad = (i, row)
    if bad is not None:
        i, row = bad
        if head_seq is not None and row.seq > expected > head_seq:
            # The chain is whole up to its head; this row lies past it, after a gap: it was put in,
            # nothing was removed.
            finding = Finding(
                row.seq, "inserted", f"seq {row.seq} was inserted: the head records seq {head_seq} as the last event"
            )
            return Report(i, expected - 1, prev, finding)
        seqs = [r.seq for r in rows_]
        return Report(i, expected - 1, prev, _classify_bad_row(rows_, row, i, prev, before_prev, expected, seqs))
    last_seq = expected - 1
    count = len(rows_)
    if head_seq is not None:
        if head_seq > last_seq:
            return Report(
                count,
                last_seq,
                prev,
                Finding(
                    last_seq + 1,
                    "missing",
                    f"seq {last_seq + 1} missing: the chain ends at seq {last_seq} but its head records seq {head_seq}",
                ),
            )
        if head_seq < last_seq:
            return Report(
                count,
                last_seq,
                prev,
                Finding(
                    head_seq + 1,
                    "inserted",
                    f"seq {head_seq + 1} was inserted: the head records seq {head_seq} as the last event",
                ),
            )
        if head_hash is not None and head_hash != prev:
            return Report(
                count,
                last_seq,
                prev,
                Finding(
                    last_seq,
                    "altered",
                    # Every row up to here hashes and links: either the head was rewound over events
                    # removed after it (keeping their hash), or this row was rewritten, hash and all.
                    f"seq {last_seq} was altered, or events after it were removed: it does not match the "
                    "hash the head records",
                ),
            )
    outside = [("the checkpoint", checkpoint)] if checkpoint is not None else []
    for name, cp in [*outside, *anchors]:
        unmatched = _against(rows_, last_seq, cp, name)
        if unmatched is not None:
            return Report(count, last_seq, prev, unmatched)
    return Report(count, last_seq, prev, None)


def _against(rows_: Sequence[_Link], last_seq: int, cp: Checkpoint, name: str) -> Finding | None:
    """What a chain that holds (``rows_``, seq 1 to ``last_seq``) lacks to match ``cp`` (``name`` says
    which checkpoint); None when it matches."""
    if cp.seq > last_seq:
        return Finding(
            last_seq + 1,
            "missing",
            f"seq {last_seq + 1} missing: the chain ends at seq {last_seq} but {name} records seq {cp.seq}",
        )
    # A chain that holds is rows_ numbered 1, 2, ...: the row at cp.seq is at index cp.seq - 1.
    if cp.seq > 0 and rows_[cp.seq - 1].hash != cp.hash:
        return Finding(cp.seq, "altered", f"seq {cp.seq} does not match {name}: the chain was rewritten up to it")
    return None
