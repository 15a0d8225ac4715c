"""What a notification says: one ``Message`` per delivery, and its text for each kind of channel.

Everything here is pure: the notifier gathers a ``Message`` from the store (the delivery, the
audit event it announces, the release), and these functions turn it into a Slack text, an email
subject and body, or a webhook's JSON body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shiprail.domain.rules import SYSTEM_ACTOR_PREFIX


@dataclass(frozen=True)
class Message:
    """One event of one release, as told to one audience through one channel."""

    delivery_id: int
    release_id: str
    service: str
    version: str
    baseline: str
    summary: str
    event: str
    audience: str
    channel: str
    seq: int
    kind: str
    actor: str
    at: datetime
    state: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    delivered: tuple[str, ...] = ()
    """Email recipients an earlier attempt already reached: a retry is not sent to them again."""

    @property
    def status(self) -> str:
        """The release's status after the event (``rolling_out``), without the step."""
        return self.state.split(" (", 1)[0]


def _num(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _step_of(state: str) -> str | None:
    """``2`` out of ``rolling_out (step 2)``."""
    if "(step " in state:
        return state.split("(step ", 1)[1].rstrip(")")
    return None


def headline(m: Message) -> str:
    """One sentence saying what happened, naming the service and version."""
    who = f"{m.service} {m.version}"
    p = m.payload
    reason = str(p.get("reason") or "")
    tail = f": {reason}" if reason else ""
    by = "" if m.actor.startswith(SYSTEM_ACTOR_PREFIX) else f" by {m.actor}"
    weight = p.get("weight")
    at_weight = f" at {_num(weight)}%" if weight is not None else ""
    if m.event == "awaiting_approval":
        return f"{who} is waiting for approval: {_awaited(m.release_id, p)}"
    if m.event == "approved":
        return f"{who} was approved{by}"
    if m.event == "staging":
        return f"{who} entered Stage{by}: its rollback contract is frozen"
    if m.event == "started":
        return f"{who} started its rollout{at_weight}{by}"
    if m.event == "step":
        step = _step_of(str(p.get("to", m.state)))
        return f"{who} moved to {'step ' + step if step else 'the next step'}{at_weight}{by}{tail}"
    if m.event == "verifying":
        return f"{who} finished its rollout and entered Verify{by}{tail}"
    if m.event == "paused":
        return f"{who} paused{by}{tail}"
    if m.event == "rolled_back":
        if p.get("action") == "rollback":
            return f"{who} is rolling back{by}{tail}"
        return f"{who} rolled back{tail}"
    if m.event == "revert_stuck":
        return f"{who} is NOT rolled back yet{tail}"
    if m.event == "revert_recovered" and p.get("by_hand"):
        return f"{who}'s stuck rollback was confirmed BY HAND, not by the router{tail}"
    if m.event == "revert_recovered":
        return f"{who}'s stuck rollback went through{tail}"
    if m.event == "held":
        return f"{who} is held {_held_where(p)}{tail}{_held_until(p)}"
    if m.event == "handover":
        frm, to = p.get("from"), p.get("to")
        return f"{to} is now on call for {who}, taking over from {frm}; handed over{by}{tail}"
    if m.event == "completed":
        return f"{who} is complete{tail}"
    if m.event == "dry_run":
        step = _step_of(m.state)
        at = f" ({_num(weight)}%)" if weight is not None else ""
        where = f"at step {step}{at}" if step else "in Verify" if m.status == "verifying" else f"at{at or ' its step'}"
        return f"{who}: dry-run trigger {p.get('trigger')} would have rolled it back {where}{tail}"
    if m.event == "override":
        gates = ", ".join(str(g) for g in p.get("gates", []))
        plural = "s" if len(p.get("gates", [])) != 1 else ""
        action = p.get("action", "the next action")
        return f"{m.actor} overrode the failed gate{plural} {gates} of {action} for {who}{tail}"
    return f"{who}: {m.event}{by}{tail}"


def _awaited(release_id: str, p: Mapping[str, Any]) -> str:
    """What a release waiting for approval needs: ``gate approvals of release checkout-2.4.0 needs 2 more
    approvals (0 of 2 given); approve it with `shiprail release approve checkout-2.4.0```."""
    needed, required, given = p.get("needed"), p.get("required"), len(p.get("approvers") or [])
    more = "1 more approval" if needed == 1 else f"{needed} more approvals"
    return (
        f"gate {p.get('gate', 'approvals')} of release {release_id} needs {more} ({given} of {required} given); "
        f"approve it with `shiprail release approve {release_id}`"
    )


def _held_where(p: Mapping[str, Any]) -> str:
    """``at step 2 (10%)``, or ``at 100%, before Verify`` for a release held from entering Verify."""
    weight = p.get("weight")
    step = _step_of(str(p.get("state", "")))
    at = f" ({_num(weight)}%)" if weight is not None else ""
    if p.get("gate") == "on_call":
        return f"at {_num(weight) + '%' if weight is not None else 'its last step'}, before Verify"
    return f"at step {step}{at}" if step else f"at its step{at}"


def _held_until(p: Mapping[str, Any]) -> str:
    """What ends the hold, said after its reason."""
    if p.get("gate") == "freeze":
        return "; the controller promotes it when the freeze ends"
    return ""


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def slack_text(m: Message) -> str:
    """The text of a Slack-compatible message: the headline, then where the release stands."""
    return f"[shiprail] {headline(m)}\n{slack_context(m)}"


def slack_context(m: Message) -> str:
    """Where the release stands, in one line: the context under a Slack message's headline."""
    return f"release {m.release_id} · now {m.state} · {_when(m.at)} · audit #{m.seq} · for {m.audience}"


def subject(m: Message) -> str:
    """An email subject: ``[shiprail] checkout-2.4.0 rolled_back``."""
    return f"[shiprail] {m.release_id} {m.event}"


def email_body(m: Message) -> str:
    """A plain-text email body: the headline, then the facts, one per line."""
    lines = [
        headline(m),
        "",
        f"Release:   {m.release_id}",
        f"Service:   {m.service}",
        f"Version:   {m.version} (baseline {m.baseline})",
        f"Change:    {m.summary}",
        f"Event:     {m.event}",
        f"State now: {m.state}",
        f"When:      {_when(m.at)}",
        f"By:        {m.actor}",
        f"Audit:     event #{m.seq} ({m.kind})",
        "",
        f"You receive this as {m.audience} in the release's communication plan (channel {m.channel}).",
        f"See it with: shiprail release show {m.release_id}",
    ]
    return "\n".join(lines) + "\n"


def webhook_body(m: Message) -> dict[str, Any]:
    """The JSON a generic webhook receives."""
    return {
        "delivery_id": m.delivery_id,
        "release_id": m.release_id,
        "event": m.event,
        "audience": m.audience,
        "service": m.service,
        "version": m.version,
        "baseline": m.baseline,
        "status": m.status,
        "state": m.state,
        "summary": m.summary,
        "text": headline(m),
        "actor": m.actor,
        "at": m.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "seq": m.seq,
        "kind": m.kind,
        "detail": dict(m.payload),
    }
