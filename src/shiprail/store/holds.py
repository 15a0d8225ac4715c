"""Holds: a promotion the controller asked for and a gate it cannot wait out by itself refused.

A deployment freeze (gate ``freeze``) holds a step until the freeze ends; a person on call who is
no longer valid in shiprail.yaml (gate ``on_call``) holds the release at 100% before Verify until
someone hands over or fixes shiprail.yaml; a step with ``promote: manual`` (gate ``judgment``)
holds until a person promotes it. Either needs a person's attention or explains a wait, so
the controller records it once as a ``release.held`` audit event (the ``held`` notification).
Other refused promotions (a ``bake`` or ``analysis`` gate a person's action raced) are not holds:
the controller's next analysis settles them by itself.

A hold is recorded once per state the release is in and per what holds it (the freeze, by name
and end; the person on call): a controller asking again after a restart, or at each analysis
while the on-call person is still not valid, records nothing more. A freeze moved to end later,
or a handover to another person who is not valid either, is a new hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiprail.domain.refusals import reference, refused_by
from shiprail.domain.states import ROUND_TRIP, Action, Gate
from shiprail.store.models import AuditEvent, GateEvaluation, Release

HELD_EVENT = "release.held"
TRANSITIONED_EVENT = "release.transitioned"  # a change of a release's state (shiprail.releases records it)
HOLDING_GATES: frozenset[str] = frozenset({Gate.FREEZE.value, Gate.ON_CALL.value, Gate.JUDGMENT.value})


def hold_of(failed: Iterable[tuple[str, str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """The hold the failed gates ``(gate, reason, evidence)`` of one promotion make, or None.

    Pure. The payload names the gate and its reason, and what holds: ``freeze`` and ``until``
    (the freeze that ends last), or ``on_call`` (the person who may not answer for Verify), with
    ``refusal``, the reference an override of it names (``shiprail.domain.refusals``). A step
    a person promotes waits for that person first: a freeze on as well refuses their promotion too,
    and says so then, but the controller does not promote it when the freeze ends.
    """
    failed = list(failed)
    for gate, reason, _evidence in failed:
        if gate == Gate.JUDGMENT.value:
            return {"gate": gate, "reason": reason}
    for gate, reason, evidence in failed:
        # The refusal an override of it would cover (``freeze@1f2e3d4c``): another freeze or another
        # person later is another refusal, which needs an override of its own.
        culprits = refused_by(gate, evidence)
        refusal = {} if culprits is None else {"refusal": reference(gate, culprits)}
        if gate == Gate.FREEZE.value:
            hits = list(evidence.get("freezes") or [])
            first = hits[0] if hits else {}
            return {"gate": gate, "reason": reason, "freeze": first.get("name"), "until": first.get("until")} | refusal
        if gate == Gate.ON_CALL.value:
            return {"gate": gate, "reason": reason, "on_call": evidence.get("on_call")} | refusal
    return None


def _key(payload: Mapping[str, Any]) -> tuple[Any, ...]:
    return (payload.get("gate"), payload.get("freeze"), payload.get("until"), payload.get("on_call"))


def entered_at(s: Session, release: Release) -> datetime:
    """When the release entered the state (and step) it is in, a pause and its resume not counted.

    A pause and its resume bring it back where it was, and the controller, holding, does not ask
    again after them: a hold recorded before them still stands (as ``Releases._refused_since``
    reads refusals for an override).
    """
    events = s.execute(
        select(AuditEvent.at, AuditEvent.payload)
        .where(AuditEvent.release_id == release.id, AuditEvent.kind == TRANSITIONED_EVENT)
        .order_by(AuditEvent.seq.desc())
    )
    for at, payload in events:
        data = json.loads(payload) if isinstance(payload, str) else dict(payload)
        if Action(data["action"]) not in ROUND_TRIP:
            return min(at, release.state_since)
    return release.state_since


def lapsed(hold: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``hold`` no longer holds anything at ``now``: a freeze that has ended. Pure.

    Nobody asks the promotion again just because a freeze ended at a step a person promotes (nor
    until the controller's next analysis elsewhere): the refusal stays the latest attempt, but the
    freeze it names is over.
    """
    until = hold.get("until")
    return hold.get("gate") == Gate.FREEZE.value and isinstance(until, str) and datetime.fromisoformat(until) <= now


def current_hold(
    s: Session, release: Release, since: datetime | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """The hold the release's latest refused promotion in its current state makes, with ``at``
    (that attempt's time); None when the latest attempt is not held (or there was none).
    ``since``: ``entered_at`` when the caller has it already.

    ``now``: a hold that has lapsed by then (a freeze that ended) is passed over for the attempt
    before it: at a step with ``promote: manual``, a person's promote refused only by a freeze
    leaves the controller's refusal before it (the step waits for a person) as what holds the
    step once the freeze ends. None: the latest attempt's hold, lapsed or not.
    """
    rows = s.execute(
        select(GateEvaluation)
        .where(
            GateEvaluation.release_id == release.id,
            GateEvaluation.action == Action.PROMOTE.value,
            GateEvaluation.at >= (entered_at(s, release) if since is None else since),
        )
        .order_by(GateEvaluation.at.desc(), GateEvaluation.id)
    ).scalars()
    # One attempt's evaluations share its time: newest attempt first, each one's failed gates.
    attempts: dict[datetime, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for r in rows:
        failed = attempts.setdefault(r.at, [])
        if r.verdict == "fail":
            failed.append((r.gate, r.reason, json.loads(r.evidence)))
    for at, failed in attempts.items():
        hold = hold_of(failed)
        if hold is not None and now is not None and lapsed(hold, now):
            continue
        return None if hold is None else hold | {"at": at.isoformat()}
    return None


def new_hold(s: Session, release: Release) -> dict[str, Any] | None:
    """The hold the release's latest refused promotion makes, unless it was recorded already in
    this state; None when there is none to record. Read in the caller's transaction (which holds
    the release row's lock, so two controllers never both record one)."""
    since = entered_at(s, release)
    hold = current_hold(s, release, since)
    if hold is None:
        return None
    hold.pop("at")
    earlier = s.execute(
        select(AuditEvent.payload).where(
            AuditEvent.release_id == release.id, AuditEvent.kind == HELD_EVENT, AuditEvent.at >= since
        )
    ).scalars()
    if any(_key(json.loads(p)) == _key(hold) for p in earlier):
        return None
    return hold
