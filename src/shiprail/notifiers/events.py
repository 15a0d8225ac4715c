"""Which audit events are news for a communication plan, and what kind of news.

Every state change of a release is an audit event (``release.transitioned`` with the action that
caused it, ``release.approved``, ``override.granted``...). A communication plan speaks of a
smaller vocabulary (``started``, ``rolled_back``...): ``event_of`` maps the one to the other. It is
pure, so the mapping is tested row by row without a store.

The mapping:

====================================================  =============
audit event                                           event
====================================================  =============
``approval.awaited`` (approvals are needed)           awaiting_approval
``release.approved`` (each approval)                  approved
``release.transitioned`` action ``stage``             staging
``release.transitioned`` action ``start``             started
``release.transitioned`` action ``promote`` to a step step
``release.transitioned`` action ``promote`` to Verify verifying
``release.transitioned`` action ``pause``             paused
``release.transitioned`` action ``rollback``          rolled_back (the rollback is decided)
``release.transitioned`` action ``finish_rollback``   rolled_back (the revert is confirmed)
``release.transitioned`` action ``complete``          completed
``override.granted``                                  override
``rollback.stuck`` (the revert is not confirmed)      revert_stuck
``rollback.recovered`` (a stuck revert confirmed)     revert_recovered
``release.held`` (a freeze or on_call gate held it)   held
``on_call.handed_over`` (release handover)            handover
``dry_run.breached`` (a dry-run trigger failed)        dry_run
====================================================  =============

A release that starts waiting for approval is news (``awaiting_approval``, as GitLab tells the
approvers of a deployment that waits for them): when it is created, when ``release update``
asks for its approvals again, and when a revoked approval leaves it short; the event names the
release, the gate and how many approvals it still needs.

A rollback is news twice: when it is decided (traffic is going back to the baseline, with the
reason) and when the router confirmed it. The first is the one people act on; the second says it
is over. A revert the router does not confirm (it is down) is news too: the controller announces
it once when it has been unconfirmed past a threshold (``revert_stuck``), and once more if it then
completes (``revert_recovered``). Both reach everyone who hears ``rolled_back`` (``IMPLIED``):
people told a rollback was decided must be told it is not happening. A promotion the controller
asked for and a gate it cannot wait out refused (a deployment freeze, a person on call no longer
valid) is news once per hold (``held``, see ``shiprail.store.holds``). A handover (``release
handover``) tells who is on call now (``handover``). A dry-run trigger's failure, once per step
(``dry_run``), tells those trialling it what it would have done, live. ``resume`` and everything
else (analyses, router calls, gate evaluations, the notifier's own ``notification.*`` events) is
not news.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from shiprail.export.history import HANDOVER_EVENT
from shiprail.schema.plan import Event
from shiprail.store.audit import APPROVAL_AWAITED_EVENT
from shiprail.store.holds import HELD_EVENT
from shiprail.store.rollouts import DRY_RUN_EVENT

EVENTS: tuple[Event, ...] = get_args(Event)
# The audit kinds that can be news; the notifier reads no others.
NEWS_KINDS: frozenset[str] = frozenset(
    {
        APPROVAL_AWAITED_EVENT,
        "release.approved",
        "release.transitioned",
        "override.granted",
        "rollback.stuck",
        "rollback.recovered",
        HELD_EVENT,
        HANDOVER_EVENT,
        DRY_RUN_EVENT,
    }
)
# An audience that hears the key also hears each of these events without naming them.
IMPLIED: dict[str, tuple[Event, ...]] = {
    "revert_stuck": ("rolled_back",),
    "revert_recovered": ("rolled_back", "revert_stuck"),
}

_BY_ACTION: dict[str, Event] = {
    "stage": "staging",
    "start": "started",
    "pause": "paused",
    "rollback": "rolled_back",
    "finish_rollback": "rolled_back",
    "complete": "completed",
}


def event_of(kind: str, payload: Mapping[str, Any]) -> Event | None:
    """The communication event an audit event of ``kind`` with ``payload`` is, or None."""
    if kind == APPROVAL_AWAITED_EVENT:
        return "awaiting_approval"
    if kind == "release.approved":
        return "approved"
    if kind == "override.granted":
        return "override"
    if kind == "rollback.stuck":
        return "revert_stuck"
    if kind == "rollback.recovered":
        return "revert_recovered"
    if kind == HELD_EVENT:
        return "held"
    if kind == HANDOVER_EVENT:
        return "handover"
    if kind == DRY_RUN_EVENT:
        return "dry_run"
    if kind != "release.transitioned":
        return None
    action = payload.get("action")
    if action == "promote":
        to = str(payload.get("to", ""))
        if to == "verifying":
            return "verifying"
        return "step" if to.startswith("rolling_out") else None
    return _BY_ACTION.get(str(action))
