"""The notifier's side of the store: the outbox of deliveries and its cursor on the audit chain.

Three short transactions, none held while a channel is contacted:

- ``enqueue`` reads the audit chain after the ``notifier`` cursor, and for each event a release's
  communication plan announces, adds one ``deliveries`` row per (event, audience, channel), moving
  the cursor in the same transaction (the unique index on event_seq + audience + channel, and a
  look for rows already there, keep it idempotent);
- ``claim`` takes one due delivery for one attempt: it counts the attempt and pushes ``next_at``
  past the longest a send may take, under the row's lock, so no other notifier sends it meanwhile;
  it returns what to send;
- ``record`` writes the attempt's outcome (sent, or the error and the next try, or failed after
  the last attempt) and appends ``notification.sent`` / ``notification.failed`` to the audit chain.

A notifier that dies between ``claim`` and ``record`` leaves the delivery claimed; when the claim
lapses another notifier retries it (a notification may then arrive twice, which is why receivers
get a delivery id). A claim that lapses on the last attempt is recorded as failed.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from shiprail import defaults
from shiprail.notifiers.events import IMPLIED, NEWS_KINDS, event_of
from shiprail.notifiers.messages import Message
from shiprail.schema.plan import Communication
from shiprail.store import audit
from shiprail.store.models import AuditEvent, AuditHead, Cursor, Delivery, Release

ACTOR = "shiprail:notifier"
CURSOR = "notifier"
PENDING, SENT, FAILED = "pending", "sent", "failed"

_PLAN = TypeAdapter(list[Communication])


@dataclass(frozen=True)
class Due:
    """A delivery whose next attempt is due, as read before claiming it."""

    id: int
    channel: str
    attempts: int


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for one attempt: which attempt, and what to send."""

    id: int
    attempt: int
    message: Message


# ------------------------------------------------------------------------------------- enqueue


def _cursor(s: Session, name: str, now: datetime, max_age_s: float | None) -> Cursor:
    """The cursor row, locked; created where the news starts when there is none yet.

    A new cursor starts before the first event younger than ``max_age_s`` (all of them when None),
    so a notifier started on an old store does not announce its history.
    """
    cursor = s.get(Cursor, name, with_for_update=True)
    if cursor is not None:
        return cursor
    start = 0
    if max_age_s is not None:
        first = s.execute(
            select(func.min(AuditEvent.seq)).where(AuditEvent.at >= now - timedelta(seconds=max_age_s))
        ).scalar_one_or_none()
        head = s.execute(select(AuditHead.seq)).scalar_one_or_none() or 0
        start = first - 1 if first is not None else head
    cursor = Cursor(name=name, seq=start)
    s.add(cursor)
    s.flush()
    return cursor


def _plan_of(s: Session, release_id: str, cache: dict[str, list[Communication]]) -> list[Communication]:
    if release_id not in cache:
        resolved = s.execute(select(Release.resolved).where(Release.id == release_id)).scalar_one_or_none()
        entries: Any = json.loads(resolved).get("communication", []) if resolved else []
        cache[release_id] = _PLAN.validate_python(entries)
    return cache[release_id]


def targets(plan: Collection[Communication], event: str) -> list[tuple[str, str]]:
    """The (audience, channel) pairs a communication plan sends ``event`` to, each once, in plan order.

    An audience hears the events it names in ``on`` and those they imply (``events.IMPLIED``).
    """
    out: list[tuple[str, str]] = []
    hearing = {event, *IMPLIED.get(event, ())}
    for entry in plan:
        if hearing & set(entry.on):
            for channel in entry.notify:
                if (entry.audience, channel) not in out:
                    out.append((entry.audience, channel))
    return out


def enqueue(
    s: Session, now: datetime, *, name: str = CURSOR, max_age_s: float | None = None, span: int = 200
) -> tuple[int, bool]:
    """Read up to ``span`` audit seqs after the cursor and queue their deliveries.

    Returns the deliveries added and whether there may be more to read. Runs in the caller's
    transaction, which also moves the cursor.
    """
    cursor = _cursor(s, name, now, max_age_s)
    head = s.execute(select(AuditHead.seq)).scalar_one_or_none() or 0
    upto = min(head, cursor.seq + span)
    if upto <= cursor.seq:
        return 0, False
    rows = s.execute(
        select(AuditEvent)
        .where(AuditEvent.seq > cursor.seq, AuditEvent.seq <= upto, AuditEvent.kind.in_(NEWS_KINDS))
        .order_by(AuditEvent.seq)
    ).scalars()
    cache: dict[str, list[Communication]] = {}
    added = 0
    for row in rows:
        event = event_of(row.kind, json.loads(row.payload))
        if event is None or row.release_id is None:
            continue
        if max_age_s is not None and (now - row.at).total_seconds() > max_age_s:
            continue
        there = {
            (audience, channel)
            for audience, channel in s.execute(
                select(Delivery.audience, Delivery.channel).where(Delivery.event_seq == row.seq)
            )
        }
        for audience, channel in targets(_plan_of(s, row.release_id, cache), event):
            if (audience, channel) in there:
                continue
            s.add(
                Delivery(
                    release_id=row.release_id,
                    event_seq=row.seq,
                    event=event,
                    audience=audience,
                    channel=channel,
                    status=PENDING,
                    attempts=0,
                    last_error="",
                    next_at=now,
                    created_at=now,
                )
            )
            added += 1
    cursor.seq = upto
    s.flush()
    return added, upto < head


# ------------------------------------------------------------------------------------- deliver


def _waiting_behind(older: type[Delivery], *, not_yet_due_at: datetime | None) -> Any:
    """An older pending delivery of the same release on the same channel (not yet due at the time given).

    A channel tells a release's news in the order it happened: a delivery waits while an older
    one of its release on its channel waits for its retry (or is being sent: its claim pushed
    ``next_at`` ahead). Otherwise one failed attempt let the news after it through first, and
    the channel heard "rolled back" before "is rolling back", or "started" before "approved".
    """
    query = select(older.id).where(
        older.status == PENDING,
        older.channel == Delivery.channel,
        older.release_id == Delivery.release_id,
        older.id < Delivery.id,
    )
    if not_yet_due_at is not None:
        query = query.where(older.next_at > not_yet_due_at)
    return query.exists()


def due(s: Session, now: datetime, *, skip: Collection[str] = (), limit: int = 200) -> list[Due]:
    """Pending deliveries whose next attempt is due, oldest first, except on the channels in ``skip``.

    A delivery behind an older one of its release and channel that is not due yet is not due either.
    """
    older = aliased(Delivery)
    query = (
        select(Delivery.id, Delivery.channel, Delivery.attempts)
        .where(
            Delivery.status == PENDING,
            Delivery.next_at <= now,
            ~_waiting_behind(older, not_yet_due_at=now),
        )
        .order_by(Delivery.id)
        .limit(limit)
    )
    if skip:
        query = query.where(Delivery.channel.not_in(list(skip)))
    return [Due(i, c, a) for i, c, a in s.execute(query)]


def next_due(s: Session, *, skip: Collection[str] = ()) -> datetime | None:
    """When the next pending delivery (not on a channel in ``skip``) is due; None when none is.

    Only the oldest pending delivery of each release and channel counts: those behind it wait for it.
    """
    older = aliased(Delivery)
    query = select(func.min(Delivery.next_at)).where(
        Delivery.status == PENDING, ~_waiting_behind(older, not_yet_due_at=None)
    )
    if skip:
        query = query.where(Delivery.channel.not_in(list(skip)))
    value: datetime | None = s.execute(query).scalar_one_or_none()
    return value


def _state_at(s: Session, release_id: str, seq: int) -> str:
    """The release's state right after audit event ``seq``: the last transition up to it."""
    payload = s.execute(
        select(AuditEvent.payload)
        .where(
            AuditEvent.release_id == release_id,
            AuditEvent.kind == "release.transitioned",
            AuditEvent.seq <= seq,
        )
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    return str(json.loads(payload).get("to", "planned")) if payload else "planned"


def message_of(s: Session, delivery: Delivery) -> Message:
    """Everything a channel says about ``delivery``, read from the store."""
    event = s.execute(select(AuditEvent).where(AuditEvent.seq == delivery.event_seq)).scalar_one()
    release = s.execute(select(Release).where(Release.id == delivery.release_id)).scalar_one()
    resolved = json.loads(release.resolved)
    return Message(
        delivery_id=delivery.id,
        release_id=release.id,
        service=release.service,
        version=release.version,
        baseline=release.baseline,
        summary=str(resolved.get("summary", "")),
        event=delivery.event,
        audience=delivery.audience,
        channel=delivery.channel,
        seq=event.seq,
        kind=event.kind,
        actor=event.actor,
        at=event.at,
        state=_state_at(s, release.id, event.seq),
        payload=json.loads(event.payload),
        delivered=tuple(_delivered(delivery)),
    )


def _delivered(d: Delivery) -> list[str]:
    return [str(address) for address in json.loads(d.delivered_to or "[]")]


def _payload(d: Delivery, attempt: int, error: str, **extra: Any) -> dict[str, Any]:
    payload = {
        "delivery_id": d.id,
        "event": d.event,
        "event_seq": d.event_seq,
        "audience": d.audience,
        "channel": d.channel,
        "attempt": attempt,
        "error": error,
        **extra,
    }
    # Email says who has the message so far (every attempt's recipients, in order), so a partly
    # refused email is not mistaken for one everybody got.
    delivered = _delivered(d)
    if delivered:
        payload["delivered_to"] = delivered
    return payload


def claim(s: Session, item: Due, now: datetime, *, claim_s: float, max_attempts: int) -> Claimed | None:
    """Take ``item`` for its next attempt; None when another notifier has it or it is no longer due.

    A delivery whose last attempt was claimed and never recorded (its notifier died) is marked
    failed here, with an audit event saying so.
    """
    d = s.get(Delivery, item.id, with_for_update=True)
    if d is None or d.status != PENDING or d.attempts != item.attempts or d.next_at > now:
        return None
    if d.attempts >= max_attempts:
        error = f"attempt {d.attempts} of {max_attempts} was never recorded (its notifier stopped); giving up"
        d.status, d.last_error = FAILED, error
        audit.append(
            s,
            at=now,
            actor=ACTOR,
            kind="notification.failed",
            release_id=d.release_id,
            payload=_payload(d, d.attempts, error, retry_at=None, final=True),
        )
        return None
    d.attempts += 1
    d.next_at = now + timedelta(seconds=claim_s)
    s.flush()
    return Claimed(d.id, d.attempts, message_of(s, d))


def backoff(attempt: int, first_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling from ``first_s``, capped."""
    return min(first_s * 2.0 ** max(attempt - 1, 0), max_s)


def record(
    s: Session,
    claimed: Claimed,
    now: datetime,
    error: str | None,
    *,
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
    retry_after_s: float | None = None,
    delivered: Collection[str] = (),
    refused: Mapping[str, str] | None = None,
) -> str:
    """Write the outcome of ``claimed``'s attempt (``error`` None: sent) and its audit event; the new status.

    A failed attempt is retried after the backoff, or after ``retry_after_s`` when the receiver
    asked for longer (capped at ``defaults.NOTIFY_RETRY_AFTER_MAX_SECONDS``). ``delivered``: the
    email recipients this attempt reached, added to the delivery's (whatever the outcome: they
    have it, and a retry skips them); ``refused``: those it did not, with the server's answers,
    named in the ``notification.failed`` event.
    """
    d = s.get(Delivery, claimed.id, with_for_update=True)
    assert d is not None, f"delivery {claimed.id} vanished"
    before = _delivered(d)
    if any(address not in before for address in delivered):
        d.delivered_to = json.dumps(before + [a for a in delivered if a not in before])
    # Another notifier may have taken the delivery over after this claim lapsed: then only a
    # success changes the row (it was sent, even if the row was given up as failed meanwhile: the
    # row must not contradict the notification.sent event); the attempt is in the audit trail
    # either way.
    ours = d.status == PENDING and d.attempts == claimed.attempt
    if error is None:
        if d.status != SENT:
            d.status, d.sent_at, d.last_error = SENT, now, ""
        audit.append(
            s,
            at=now,
            actor=ACTOR,
            kind="notification.sent",
            release_id=d.release_id,
            payload=_payload(d, claimed.attempt, ""),
        )
        return d.status
    retry_at: datetime | None = None
    if ours:
        d.last_error = error
        if claimed.attempt >= max_attempts:
            d.status = FAILED
        else:
            wait = backoff(claimed.attempt, backoff_s, backoff_max_s)
            if retry_after_s is not None:
                wait = max(wait, min(retry_after_s, defaults.NOTIFY_RETRY_AFTER_MAX_SECONDS))
            retry_at = now + timedelta(seconds=wait)
            d.next_at = retry_at
            if retry_after_s is not None:
                # The receiver asked to be left alone, not this message: the channel's other
                # pending deliveries wait as long (Slack rate-limits the webhook, not one post).
                s.execute(
                    update(Delivery)
                    .where(
                        Delivery.channel == d.channel,
                        Delivery.status == PENDING,
                        Delivery.next_at < retry_at,
                        Delivery.id != d.id,
                    )
                    .values(next_at=retry_at)
                )
    audit.append(
        s,
        at=now,
        actor=ACTOR,
        kind="notification.failed",
        release_id=d.release_id,
        payload=_payload(
            d,
            claimed.attempt,
            error,
            retry_at=None if retry_at is None else retry_at.isoformat(),
            final=d.status == FAILED,
            **({"refused": dict(refused)} if refused else {}),
        ),
    )
    return d.status
