"""What happened to a release, derived from its record: pure functions, no I/O, no clock.

The audit events are the spine: walked in chain order they say which phase the release was in
when anything happened, so every gate evaluation, analysis and router call can be placed at its
step. The other tables (gate evaluations, analyses, rollback logs) add what events only name.
"""

from __future__ import annotations

import re
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shiprail.domain import rules
from shiprail.domain.contract import trigger_name
from shiprail.durations import format_duration
from shiprail.export.record import ReleaseRecord
from shiprail.schema.plan import DRY_RUN_SHOWN, Trigger
from shiprail.store import audit
from shiprail.store.audit import EventRow
from shiprail.store.holds import HELD_EVENT
from shiprail.store.rollouts import DRY_RUN_EVENT, METRICS_AFTER_EVENT

VERIFY = "verify"
EXPORTED = "package.exported"
"""The event ``release export`` appends: the package's manifest SHA-256, pinned in the chain."""
HANDOVER_EVENT = "on_call.handed_over"
"""The audit event of an on-call handover (`release handover`): from, to, reason; its actor handed over."""
# Stage checks as people call them.
CHECK_KINDS = {"tests": "test", "load_test": "load test"}
_STEP = re.compile(r"\(step (\d+)\)")


# ---------------------------------------------------------------------------------- formatting


def when(at: datetime | str | None) -> str:
    """A time as the package prints it: ``2026-01-01 00:30:00`` (UTC)."""
    if at is None:
        return "–"
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value.strftime("%Y-%m-%d %H:%M:%S")


def refusal_text(gate: str, culprits: Sequence[Any]) -> str:
    """What refused a gate an override passed (its ``refused_by``), in words: ``freeze: maintenance
    until 2026-12-01 05:00:00 UTC``, ``on_call: erin``, ``tests: e2e, unit`` (``none``: nothing
    named, an analysis that failed for no trigger)."""
    things = []
    for thing in culprits:
        if isinstance(thing, Mapping):  # a freeze window: its name and its end
            until = thing.get("until")
            end = datetime.fromisoformat(until) if isinstance(until, str) else None
            if end is not None and end.tzinfo is not None:
                end = end.astimezone(UTC)
            things.append(f"{thing.get('name')}" + (f" until {when(end)} UTC" if end is not None else ""))
        else:
            things.append("–" if thing is None else str(thing))
    return f"{gate}: {', '.join(things) if things else 'none'}"


def override_gates(gates: Sequence[str], refused_by: Mapping[str, Sequence[Any]] | None) -> str:
    """An override's gates, each with what refused it when told apart (``refused_by``): ``freeze:
    maintenance until … UTC; approvals``. An override without (granted before refusals were told
    apart, or of gates told by name alone) reads as before, ``freeze, approvals``, so the packages of
    such releases are unchanged."""
    told = refused_by or {}
    if not any(g in told for g in gates):
        return ", ".join(gates)
    return "; ".join(refusal_text(g, told[g]) if g in told else g for g in gates)


def span(seconds: float | None) -> str:
    """A duration for people: ``0.42s``, ``45s``, ``2h30m``."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{seconds:.0f}s"
    return format_duration(round(seconds))


def number(value: Any) -> str:
    """A measured value, short: ``0.08``, ``1.2e+03``, ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 time``, ``3 times``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def weight_text(weight: float | None) -> str:
    """``10%``, or ``–``."""
    return "–" if weight is None else f"{weight:g}%"


# How a dry-run trigger is marked in a contract's listing (plan show, the release package's plan).
DRY_RUN_TEXT = "dry run: judged and reported, never rolls back"


def trigger_text(trigger: Trigger) -> str:
    """One trigger of the contract in words: ``errors: error_rate above 0.01 over 5m (at least 200 samples)``."""
    what = trigger.metric or trigger.signal or "?"
    if trigger.above is not None:
        rule = f"above {trigger.above:g}"
    elif trigger.below is not None:
        rule = f"below {trigger.below:g}"
    elif trigger.above_baseline is not None:
        rule = f"above {trigger.above_baseline:g} × the baseline's"
    elif trigger.regression is not None:
        rule = (
            f"worse than the baseline by a regression test (alpha {trigger.regression.alpha:g}, "
            f"min ratio {trigger.regression.min_ratio:g}"
            + (", bursts tolerated)" if trigger.regression.bursts == "tolerate" else ")")
        )
    else:
        rule = "?"
    extra = []
    if trigger.min_samples:
        extra.append(f"at least {trigger.min_samples} samples")
    if trigger.consecutive and trigger.consecutive > 1:
        extra.append(f"{trigger.consecutive} times in a row")
    window = f" over {format_duration(trigger.window)}" if trigger.window else ""
    dry = f"; {DRY_RUN_TEXT}" if trigger.dry_run else ""
    return f"{trigger_name(trigger)}: {what} {rule}{window}" + (f" ({', '.join(extra)})" if extra else "") + dry


# ------------------------------------------------------------------------------------ the walk


@dataclass
class Place:
    """Where a release stood: its status, step (0-based) and what it paused from."""

    status: str = "planned"
    step: int | None = None
    paused_from: str | None = None

    def slot(self) -> str | None:
        """The rollout slot this place belongs to: ``"0"``.. for steps, ``verify``, or None (not rolling)."""
        if self.step is not None and (self.status == "rolling_out" or self.paused_from == "rolling_out"):
            return str(self.step)
        if self.status == "verifying" or self.paused_from == "verifying":
            return VERIFY
        return None

    def label(self, record: ReleaseRecord) -> str:
        """``step 2 (10%)``, ``verify``, ``paused at step 2 (10%)``, ``staging``."""
        steps = record.resolved.steps
        if self.step is not None and self.step < len(steps):
            at = f"step {self.step + 1} ({steps[self.step].weight:g}%)"
        else:
            at = VERIFY if "verifying" in (self.status, self.paused_from) else ""
        if self.status == "paused":
            return f"paused at {at}" if at else "paused"
        if self.status in ("rolling_out", "verifying"):
            return at
        return self.status.replace("_", " ")


def _place_after(place: Place, payload: dict[str, Any]) -> Place:
    """The place a ``release.transitioned`` event leads to."""
    to = str(payload.get("to", ""))
    status = to.split(" ", 1)[0]
    if status == "rolling_out":
        match = _STEP.search(to)
        return Place("rolling_out", int(match.group(1)) - 1 if match else place.step)
    if status == "paused":
        source = place.status if place.status != "paused" else place.paused_from
        return Place("paused", place.step if source == "rolling_out" else None, source)
    return Place(status, None)


@dataclass(frozen=True)
class Walked:
    """One audit event and where the release stood when it happened."""

    event: EventRow
    payload: dict[str, Any]
    place: Place


_WALKS: weakref.WeakKeyDictionary[ReleaseRecord, list[Walked]] = weakref.WeakKeyDictionary()


def walk(record: ReleaseRecord) -> list[Walked]:
    """The release's events in chain order, each with the place it happened at.

    A transition is placed where the release was before it; everything else where it was then.
    Computed once per record (every view of a release starts here).
    """
    cached = _WALKS.get(record)
    if cached is None:
        cached = _WALKS[record] = _walk(record)
    return cached


def _walk(record: ReleaseRecord) -> list[Walked]:
    out: list[Walked] = []
    place = Place()
    for event in record.events:
        payload = audit.payload_of(event)
        out.append(Walked(event, payload, place))
        if event.kind == "release.transitioned":
            place = _place_after(place, payload)
    return out


def place_now(record: ReleaseRecord) -> Place:
    """Where the release stands after its last event, as its transitions put it."""
    walked = [w for w in walk(record) if w.event.kind == "release.transitioned"]
    return _place_after(walked[-1].place, walked[-1].payload) if walked else Place()


# ------------------------------------------------------------------------------------ outcome


@dataclass(frozen=True)
class Outcome:
    """How the release ended (or where it stands)."""

    status: str
    ended_at: datetime | None
    headline: str  # "complete", "rolled back at 50% (step 3)", "in progress: rolling_out (step 2)"
    detail: str  # one sentence


def by_hand(log: dict[str, Any]) -> dict[str, Any] | None:
    """A rollback log's confirmation when a person confirmed its revert (``release override`` past a
    stuck router), not the router: who, the override and its reason; None otherwise."""
    confirmation = log.get("confirmation")
    return confirmation if isinstance(confirmation, dict) and confirmation.get("by_hand") else None


def by_hand_text(hand: dict[str, Any]) -> str:
    """``dana confirmed it by hand (override #3), not the router: “…”``."""
    return (
        f"{hand.get('confirmed_by')} confirmed it by hand (override #{hand.get('override_id')}), not the router: "
        f"“{hand.get('reason')}”"
    )


def outcome(record: ReleaseRecord) -> Outcome:
    """The release's outcome in a headline and a sentence."""
    r = record.resolved
    if record.status == "complete":
        return Outcome(
            "complete",
            record.state_since,
            "complete",
            f"{record.version} serves all traffic since {when(_full_since(record))} UTC and passed its "
            f"{format_duration(r.verify_window)} validation window; complete at {when(record.state_since)} UTC.",
        )
    if record.status in ("rolled_back", "rolling_back") and record.rollbacks:
        log = record.rollbacks[-1]
        served = bool(log["weight_before"])
        at = weight_text(log["weight_before"]) if served else "0%"
        places = rollback_places(record)
        where = places[-1] if places else ""
        # A release paused at a step or in Verify is rolled back from there: say where, then that
        # it was paused ("paused at step 1 (1%)" is a place, not a phrase to put after "at").
        paused = where.startswith("paused")
        where = where.removeprefix("paused").removeprefix(" at ").strip()
        still = " while paused" if paused else ""
        if where.startswith("step"):
            head = f"rolled back at {where}{still}"  # the detail says when no traffic had moved
        elif where == "verify":
            head = f"rolled back during Verify ({at}){still}"
        elif not served:
            head = f"rolled back in {where or 'its rollout'}{still}, before any traffic moved"
        else:
            head = f"rolled back from {where or 'its rollout'} ({at}){still}"
        if record.status == "rolling_back":
            head = head.replace("rolled back", "rolling back", 1)
        reason = log["reason"].rstrip(".")
        automatic = log["initiated_by"].startswith(rules.SYSTEM_ACTOR_PREFIX)
        if automatic:
            if log["trigger"]:
                reason = reason.replace(f"trigger {log['trigger']} fired", f"trigger `{log['trigger']}` fired", 1)
            why = reason[:1].upper() + reason[1:]
            how = f"{why}, detected at {when(log['detected_at'])} UTC; shiprail rolled the release back on its own"
        else:
            how = f"{log['initiated_by']} rolled the release back by hand at {when(log['decided_at'])} UTC (“{reason}”)"
        took = log["detected_to_confirmed_s"]
        if not log["revert_confirmed_at"]:
            done = f"; the router has not confirmed that all traffic is back on {record.baseline} yet"
        elif not served:
            done = f"; no traffic had moved to {record.version}"
        else:
            done = f", and all traffic was back on {record.baseline} at {when(log['revert_confirmed_at'])} UTC"
            if took is not None:
                done += f" ({span(took)} after {'detection' if automatic else 'the decision'})"
        hand = by_hand(log) if log["revert_confirmed_at"] else None
        if hand is not None:
            done = (
                f"; the router never confirmed that all traffic was back on {record.baseline}: "
                f"{by_hand_text(hand)}, at {when(log['revert_confirmed_at'])} UTC"
                + (f" ({span(took)} after {'detection' if automatic else 'the decision'})" if took is not None else "")
            )
        return Outcome(
            record.status,
            record.state_since if record.status == "rolled_back" else None,
            head,
            f"{how}{done}.",
        )
    state = record.status + (f" (step {record.step + 1})" if record.step is not None else "")
    return Outcome(record.status, None, f"in progress: {state}", f"The release has not ended; it is {state}.")


def rollback_places(record: ReleaseRecord) -> list[str]:
    """Where the release stood when each rollback was decided, in order."""
    return [
        w.place.label(record)
        for w in walk(record)
        if w.event.kind == "release.transitioned" and w.payload.get("action") == "rollback"
    ]


def bare_reason(reason: str) -> str:
    """A gate's reason without the override note the engine appends (the override is told apart)."""
    return reason.split("; overridden: ", 1)[0]


def step_name(run: StepRun) -> str:
    """``step 2 (10%)`` or ``Verify (100%)``."""
    return (
        f"Verify ({weight_text(run.weight)})"
        if run.slot == VERIFY
        else f"step {run.number} ({weight_text(run.weight)})"
    )


def _full_since(record: ReleaseRecord) -> datetime | None:
    """When the router first confirmed that the new version takes all traffic."""
    for w in walk(record):
        if w.event.kind == "router.applied" and float(w.payload.get("weight", 0)) >= 100:
            return w.event.at
    return None


# ------------------------------------------------------------------------------------ phases


@dataclass
class PhaseRun:
    """One stay of the release in one state."""

    label: str
    entered_at: datetime
    left_at: datetime | None = None
    left_by: str | None = None  # the action that ended it
    to: str | None = None
    reason: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.left_at is None else (self.left_at - self.entered_at).total_seconds()


def phases(record: ReleaseRecord) -> list[PhaseRun]:
    """Every state the release went through, with when it entered and left and why."""
    out: list[PhaseRun] = [PhaseRun("planned", record.created_at)]
    for w in walk(record):
        if w.event.kind != "release.transitioned":
            continue
        current = out[-1]
        current.left_at, current.left_by = w.event.at, str(w.payload.get("action"))
        current.reason = w.payload.get("reason")
        nxt = _place_after(w.place, w.payload)
        current.to = nxt.label(record)
        out.append(PhaseRun(nxt.label(record), w.event.at))
    return out


# ------------------------------------------------------------------------------ rollout as run


@dataclass
class StepRun:
    """One rollout step (or Verify) as planned and as it ran."""

    slot: str  # "0", "1", ... or "verify"
    number: str  # "1", "2", ... or "verify"
    weight: float
    planned_bake_s: float | None
    entered_at: datetime | None = None
    applied_at: datetime | None = None
    left_at: datetime | None = None
    left_by: str | None = None
    baked_s: float | None = None
    pauses: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    first_analysis: datetime | None = None
    last_analysis: datetime | None = None

    @property
    def reached(self) -> bool:
        return self.entered_at is not None

    @property
    def seconds(self) -> float | None:
        """How long the step ran, from entering it to leaving it."""
        if self.entered_at is None or self.left_at is None:
            return None
        return (self.left_at - self.entered_at).total_seconds()

    def result(self) -> str:
        """How the step ended, in a word or two."""
        return {
            None: "running" if self.reached else "not reached",
            "promote": "promoted",
            "complete": "complete",
            "rollback": "rolled back",
            "finish_rollback": "rolled back",
        }.get(self.left_by, self.left_by or "")


def rollout_as_run(record: ReleaseRecord) -> list[StepRun]:
    """Each planned step and Verify: weight, bake as planned; when each was entered, applied, left."""
    r = record.resolved
    runs: dict[str, StepRun] = {
        str(i): StepRun(str(i), str(i + 1), float(s.weight), float(s.bake) if s.bake else None)
        for i, s in enumerate(r.steps)
    }
    runs[VERIFY] = StepRun(VERIFY, VERIFY, 100.0, float(r.verify_window))
    for w in walk(record):
        slot = w.place.slot()
        kind = w.event.kind
        if kind == "release.transitioned":
            nxt = _place_after(w.place, w.payload).slot()
            action = str(w.payload.get("action"))
            if slot is not None and nxt != slot:
                runs[slot].left_at, runs[slot].left_by = w.event.at, action
            if nxt is not None and nxt != slot and runs[nxt].entered_at is None:
                runs[nxt].entered_at = w.event.at
            if action == "pause" and slot is not None:
                runs[slot].pauses += 1
        elif kind == "router.applied" and slot is not None:
            run = runs[slot]
            if run.applied_at is None and float(w.payload.get("weight", -1)) == run.weight:
                run.applied_at = w.event.at
        elif kind == "analysis.completed" and slot is not None:
            run = runs[slot]
            run.verdicts[str(w.payload.get("verdict"))] += 1
            run.first_analysis = run.first_analysis or w.event.at
            run.last_analysis = w.event.at
            if w.payload.get("baked_s") is not None:
                run.baked_s = float(w.payload["baked_s"])
    return list(runs.values())


# ------------------------------------------------------------------------------------ timeline


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""

    at: datetime
    place: str
    what: str
    who: str
    note: str
    seqs: tuple[int, ...]


def actor_text(actor: str) -> str:
    """A person as named, shiprail itself as ``controller (shiprail)``."""
    prefix = rules.SYSTEM_ACTOR_PREFIX
    return actor.removeprefix(prefix) + " (shiprail)" if actor.startswith(prefix) else actor


def _gate_note(group: list[Walked]) -> tuple[str, str]:
    action = str(group[0].payload.get("action"))
    verdicts = [f"{w.payload.get('gate')} {w.payload.get('verdict')}" for w in group]
    bad = [w for w in group if w.payload.get("verdict") != "pass"]
    note = "; ".join(f"{w.payload.get('gate')}: {bare_reason(str(w.payload.get('reason')))}" for w in bad)
    return f"gates of {action}: {', '.join(verdicts)}", note


def _analysis_note(group: list[Walked]) -> tuple[str, str]:
    verdict = str(group[0].payload.get("verdict"))
    if len(group) > 1:
        what = f"{len(group)} analyses: {verdict}"
        first, last = when(group[0].event.at), when(group[-1].event.at)
        # The row shows the first one's date; a run that crosses midnight (a 24 h Verify) names the
        # last one's date too, or "06:50:00 to 06:40:00" would read as time running backwards.
        note = f"{first[11:]} to {last[11:] if last[:10] == first[:10] else last}"
    else:
        what = f"analysis: {verdict}"
        note = ""
    if verdict != "pass":
        # A dry run's verdict did not make the analysis's: its breaches have timeline rows of their own.
        failing = [
            t for t in group[-1].payload.get("triggers", []) if t.get("verdict") != "pass" and not t.get("dry_run")
        ]
        note = "; ".join(f"{t.get('trigger')}: {t.get('reason')}" for t in failing) or note
    baked = group[-1].payload.get("baked_s")
    if verdict == "pass" and baked:
        note = (note + "; " if note else "") + f"baked {span(float(baked))}"
    return what, note


def _single(w: Walked, record: ReleaseRecord) -> tuple[str, str] | None:
    """What one event says in the timeline; None to leave it out."""
    p = w.payload
    kind = w.event.kind
    if kind in ("notification.sent", "notification.failed"):
        # Who was told what: one line per delivery, not its full payload.
        outcome = "told" if kind == "notification.sent" else f"could not tell (attempt {p.get('attempt')})"
        # Why it failed, as the audit event has it: "could not tell" alone left the reader to dig.
        why = f": {p.get('error')}" if kind == "notification.failed" and p.get("error") else ""
        return f"{outcome} {p.get('audience')} via {p.get('channel')}", f"event {p.get('event')}{why}"
    if kind == "release.created":
        return "release created", f"{p.get('service')} {p.get('baseline')} → {p.get('version')}, {p.get('risk')} risk"
    if kind == "plan.updated":
        said = f"plan {str(p.get('plan_hash'))[:12]} (was {str(p.get('old_plan_hash'))[:12]})"
        if p.get("resolved_hash") is not None:
            said += f", release {str(p.get('resolved_hash'))[:12]} (was {str(p.get('old_resolved_hash'))[:12]})"
        return "plan updated", said
    if kind == "release.approved":
        release = f", release {str(p.get('resolved_hash'))[:12]}" if p.get("resolved_hash") is not None else ""
        return "approved", f"plan {str(p.get('plan_hash'))[:12]}{release}"
    if kind == "qa.signed_off":
        return "QA signed off", str(p.get("item"))
    if kind == audit.APPROVAL_AWAITED_EVENT:
        return (
            "waiting for approval",
            f"needs {p.get('needed')} more ({len(p.get('approvers') or [])} of {p.get('required')} given)",
        )
    if kind == "approval.revoked":
        hashes = ", ".join(f"plan {str(a.get('plan_hash'))[:12]}" for a in p.get("revoked", []) if isinstance(a, dict))
        return "approval revoked", hashes + (f": {p.get('reason')}" if p.get("reason") else "")
    if kind == "qa.signoff_revoked":
        return "QA sign-off revoked", str(p.get("item")) + (f": {p.get('reason')}" if p.get("reason") else "")
    if kind == "check.recorded":
        passed = "passed" if p.get("passed") else "failed"
        check = CHECK_KINDS.get(str(p.get("kind")), str(p.get("kind")))
        name = "" if p.get("name") == p.get("kind") else f" {p.get('name')}"
        return f"{check}{name} {passed}", str(p.get("summary") or "")
    if kind == "contract.frozen":
        return "contract frozen", f"contract {str(p.get('contract_hash'))[:12]}"
    if kind == "release.transitioned":
        nxt = _place_after(w.place, p)
        note = str(p.get("reason") or "")
        return f"{p.get('action')}: {w.place.label(record)} → {nxt.label(record)}", note
    if kind == "override.granted":
        gates = override_gates(p.get("gates", []), p.get("refused_by"))
        return f"override of {gates} ({p.get('action')})", str(p.get("reason"))
    if kind == "postmortem.opened":
        return f"post-mortem #{p.get('postmortem_id')} opened", f"for override #{p.get('override_id')}"
    if kind == "postmortem.closed":
        return f"post-mortem #{p.get('postmortem_id')} closed", str(p.get("summary") or "")
    if kind == "router.intent":
        return None
    if kind == "router.applied":
        extra = []
        if p.get("found_applied"):
            extra.append("found already applied after a restart")
        if (p.get("attempts") or 0) > 1:
            extra.append(f"after {p.get('attempts')} attempts")
        return f"router set {weight_text(p.get('weight'))}", ", ".join(extra)
    if kind == "router.error":
        return f"router error setting {weight_text(p.get('weight'))}", f"attempt {p.get('attempt')}: {p.get('error')}"
    if kind == "router.failed":
        passes = p.get("failed_passes")
        failed = f"{p.get('attempts')} attempts, failed pass {passes}: " if passes else ""
        return f"router failed to set {weight_text(p.get('weight'))}", f"{failed}{p.get('error')}"
    if kind in ("rollback.stuck", "rollback.recovered"):
        what = "revert not confirmed (announced)" if kind == "rollback.stuck" else "stuck revert confirmed"
        if p.get("by_hand"):
            what = f"stuck revert confirmed by hand (override #{p.get('override_id')})"
        return what, str(p.get("reason"))
    if kind == "router.stale":
        return f"router set {weight_text(p.get('weight'))} by a controller that had lost the lease", ""
    if kind == "router.settled":
        found = p.get("found")
        seen = "unreadable" if found is None else weight_text(found)
        return f"router checked after a stale call: found {seen}", "set again" if p.get("reapplied") else ""
    if kind == "rollback.decided":
        reason = str(p.get("reason"))
        value = ""
        if p.get("value") is not None and number(p.get("value")) not in reason:
            value = f" (value {number(p.get('value'))}, limit {number(p.get('threshold'))})"
        return f"rollback decided ({p.get('cause')})", f"{reason}{value}"
    if kind == "rollback.confirmed":
        limit = p.get("max_duration_s")
        took = span(p.get("detected_to_confirmed_s"))
        met = "" if limit is None else f" (limit {span(float(limit))}: {'met' if p.get('met') else 'missed'})"
        what = "revert confirmed"
        if p.get("by_hand"):
            what = f"revert confirmed by hand (override #{p.get('override_id')})"
        return what, f"{took} after detection{met}"
    if kind == METRICS_AFTER_EVENT:
        return "metrics read after the revert", metrics_after_text(p.get("metrics_after") or [])
    if kind == "verify.started":
        ends = p.get("ends_at")
        probes = p.get("probes") or []
        return "validation window opened", (
            f"on call {p.get('on_call')}"
            + (f", ends {when(ends)}" if ends else "")
            + (f", probes: {', '.join(probes)}" if probes else "")
        )
    if kind == HANDOVER_EVENT:
        return f"on call handed over: {p.get('from')} → {p.get('to')}", str(p.get("reason") or "")
    if kind == HELD_EVENT:
        return f"promotion held ({p.get('gate')}, announced)", str(p.get("reason") or "")
    if kind == DRY_RUN_EVENT:
        return f"dry run: {p.get('trigger')} would have rolled back ({w.place.label(record)})", str(p.get("reason"))
    if kind == "controller.attached":
        return "controller attached", str(p.get("holder", ""))
    if kind == "controller.error":
        return "controller error", str(p.get("error", ""))
    if kind == "retro.generated":
        return "retrospective generated", ""
    if kind == "retro.edited":
        return "retrospective edited", f"sha256 {str(p.get('sha256'))[:12]}"
    if kind == EXPORTED:
        return (
            "package exported",
            f"manifest sha256 {str(p.get('manifest_sha256'))[:12]}, through seq {p.get('head_seq')}",
        )
    detail = ", ".join(f"{k} {v}" for k, v in p.items() if not isinstance(v, dict | list))
    return kind, detail[:200]


def metrics_after_text(rows: list[dict[str, Any]]) -> str:
    """A rollback's metrics after (its log's, or its ``rollback.metrics_after`` event's) in one line."""
    parts = []
    for m in rows:
        canary, baseline = m.get("canary") or {}, m.get("baseline") or {}
        parts.append(
            f"{m.get('trigger')}: canary {number(canary.get('value'))} ({number(canary.get('samples'))} samples), "
            f"baseline {number(baseline.get('value'))}"
        )
    return "; ".join(parts) or "not read"


def timeline(record: ReleaseRecord) -> list[Entry]:
    """The release's events as people read them: one gate attempt per line, runs of analyses folded."""
    out: list[Entry] = []
    walked = walk(record)
    i = 0
    while i < len(walked):
        w = walked[i]
        kind = w.event.kind
        group = [w]
        if kind in ("gate.evaluated", "analysis.completed"):
            key = _group_key(w)
            j = i + 1
            while j < len(walked):
                nxt = walked[j]
                if nxt.event.kind == "router.intent" and kind == "analysis.completed":
                    j += 1
                    continue
                if nxt.event.kind != kind or _group_key(nxt) != key:
                    break
                group.append(nxt)
                j += 1
            i = j
            what, note = _gate_note(group) if kind == "gate.evaluated" else _analysis_note(group)
        else:
            i += 1
            said = _single(w, record)
            if said is None:
                continue
            what, note = said
        out.append(
            Entry(
                w.event.at,
                w.place.label(record),
                what,
                actor_text(w.event.actor),
                note,
                tuple(g.event.seq for g in group),
            )
        )
    return out


def _group_key(w: Walked) -> tuple[Any, ...]:
    if w.event.kind == "gate.evaluated":
        # One attempt: the gates one person's action evaluated at one moment.
        return (w.event.at, w.event.actor, w.payload.get("action"))
    # A run of analyses with the same verdict at the same place.
    return (w.payload.get("verdict"), w.place.slot(), w.place.status)


# ------------------------------------------------------------------------------------ gates


@dataclass
class GateSummary:
    """Every evaluation of one gate for one action at one place."""

    action: str
    gate: str
    place: str
    attempts: int = 0
    verdicts: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def final(self) -> str:
        return self.verdicts[-1] if self.verdicts else "–"

    def first_failure(self) -> str | None:
        return next((r for v, r in zip(self.verdicts, self.reasons, strict=True) if v == "fail"), None)


def gate_summaries(record: ReleaseRecord) -> list[GateSummary]:
    """Gate evaluations grouped by action, gate and place, in the order they were first evaluated."""
    out: dict[tuple[str, str, str], GateSummary] = {}
    for w in walk(record):
        if w.event.kind != "gate.evaluated":
            continue
        action, gate = str(w.payload.get("action")), str(w.payload.get("gate"))
        place = w.place.label(record)
        s = out.setdefault((action, gate, place), GateSummary(action, gate, place))
        s.attempts += 1
        s.verdicts.append(str(w.payload.get("verdict")))
        s.reasons.append(bare_reason(str(w.payload.get("reason"))))
        s.first_at = s.first_at or w.event.at
        s.last_at = w.event.at
    return list(out.values())


def owners(record: ReleaseRecord) -> set[str]:
    """Everyone the release's plan names or named as its owner, as its ``release.created`` and
    ``plan.updated`` events record them: the approvals gate never counts their approvals."""
    named = {record.owner}
    for w in walk(record):
        if w.event.kind in ("release.created", "plan.updated"):
            named.update(str(w.payload[key]) for key in ("owner", "old_owner") if key in w.payload)
    return named


def authors(record: ReleaseRecord) -> dict[str, str]:
    """Who created the release or changed what it runs, as its events record them (``rules.authors``):
    the approvals gate never counts their approvals."""
    kinds = ("release.created", "plan.updated")
    found = [(w.event.kind, w.event.actor, w.payload) for w in walk(record) if w.event.kind in kinds]
    return rules.authors(found)


def last_evidence(gates: Sequence[Mapping[str, Any]], action: str, gate: str) -> Mapping[str, Any]:
    """The evidence of the newest evaluation of ``gate`` for ``action`` (``gate_json`` rows); {} if none.

    The newest by id, not by place in the list: a package lists its evaluations as it pleases, and
    each is tied to its event by its id.
    """
    rows = [g for g in gates if g.get("action") == action and g.get("gate") == gate]
    newest = max(rows, key=lambda g: g["id"] if isinstance(g.get("id"), int) else -1, default=None)
    evidence = newest.get("evidence") if newest is not None else None
    return evidence if isinstance(evidence, Mapping) else {}


def approval_counts(record: ReleaseRecord, approval: Mapping[str, Any]) -> bool | None:
    """Whether ``approval`` (a row of ``record.approvals``) counts for the release, as far as its
    records and events can tell; None while the release is planned and it may still count.

    Once the release entered Stage, what counted is what the approvals gate counted there (its last
    evaluation's ``approvers``): an approver who lost the role before Stage did not count, and one
    who lost it after still did (Stage judged shiprail.yaml as it was then). Before Stage, whether
    its approver still holds a role that may approve is judged at Stage against shiprail.yaml as it
    is then, which no record or event holds: only an approval of another release, an owner's, or
    an author's (``authors``) is known not to count. After Stage, an evaluation without ``approvers``
    leaves it counting.
    """
    if not approval.get("current") or approval.get("by") in owners(record):
        return False
    if record.status == "planned":
        # An author's approval never counts (``authors``); after Stage the gate's evaluation says,
        # which a shiprail before that rule judged counting them.
        return False if approval.get("by") in authors(record) else None
    counted = last_evidence(record.gates, "stage", "approvals").get("approvers")
    # Every evaluation shiprail stores names the approvers it counted; a record without one says
    # nothing against the approval of the release it ran.
    return approval.get("by") in counted if isinstance(counted, list) else True


def signoff_counts(record: ReleaseRecord, signoff: Mapping[str, Any]) -> bool | None:
    """Whether ``signoff`` (a row of ``record.signoffs``) counts at the qa gate, as far as the
    release's records and events can tell; None before the rollout started, when it may still count.

    Once the rollout started, what counted is what the qa gate counted then (its last evaluation's
    ``unsigned`` items did not). Before, whether its signer still holds the qa role is judged when
    the rollout starts against shiprail.yaml as it is then, which no record or event holds: only a
    sign-off of an item the checklist no longer has, or an owner's, is known not to count.
    """
    if signoff.get("item") not in record.resolved.qa_checklist or signoff.get("by") in owners(record):
        return False
    if record.status in ("planned", "staging"):
        return None
    unsigned = last_evidence(record.gates, "start", "qa").get("unsigned")
    return signoff.get("item") not in unsigned if isinstance(unsigned, list) else True


def gate_places(record: ReleaseRecord) -> list[str]:
    """For each stored gate evaluation (``record.gates``, in order), the place it was evaluated at."""
    # gate.evaluated events and gate_evaluations rows are written together, one for one and in the
    # same order; match them on (action, gate, time) so a missing event cannot shift the rest.
    queues: dict[tuple[str, str, str], list[str]] = {}
    for w in walk(record):
        if w.event.kind == "gate.evaluated":
            key = (str(w.payload.get("action")), str(w.payload.get("gate")), w.event.at.isoformat())
            queues.setdefault(key, []).append(w.place.label(record))
    out = []
    for g in record.gates:
        queue = queues.get((g["action"], g["gate"], str(g["at"])), [])
        out.append(queue.pop(0) if queue else "")
    return out


# ------------------------------------------------------------------------------------ metrics


@dataclass
class StepMetrics:
    """The contract's triggers as the last analysis of one step (or Verify) judged them."""

    run: StepRun
    count: int
    last_at: str | None
    last_verdict: str | None
    triggers: list[dict[str, Any]]
    probes: list[dict[str, Any]]


def _analysis_slot(a: dict[str, Any]) -> str | None:
    if a["step"] is not None:
        return str(a["step"])
    if a["status"] in ("verifying", "paused"):
        return VERIFY
    return None


def metrics_per_step(record: ReleaseRecord) -> list[StepMetrics]:
    """For each step the release reached: its analyses and the last one's value for every trigger."""
    probe_names = {p.result_name for p in record.resolved.probes}
    by_slot: dict[str, list[dict[str, Any]]] = {}
    for a in record.analyses:
        slot = _analysis_slot(a)
        if slot is not None:
            by_slot.setdefault(slot, []).append(a)
    out = []
    for run in rollout_as_run(record):
        analyses = by_slot.get(run.slot, [])
        if not run.reached and not analyses:
            continue
        last = analyses[-1] if analyses else None
        rows = [] if last is None else [_metric_row(t) for t in last["results"]]
        out.append(
            StepMetrics(
                run,
                len(analyses),
                last["at"] if last else None,
                last["verdict"] if last else None,
                [x for x in rows if x["trigger"] not in probe_names],
                [x for x in rows if x["trigger"] in probe_names],
            )
        )
    return out


def _metric_row(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "trigger": t.get("trigger"),
        "verdict": t.get("verdict"),
        "value": t.get("value"),
        "threshold": t.get("threshold"),
        "baseline": t.get("baseline"),
        "canary_samples": t.get("canary_samples"),
        "baseline_samples": t.get("baseline_samples"),
        "reason": t.get("reason"),
    } | ({"dry_run": True} if t.get("dry_run") else {})


def verdict_text(row: dict[str, Any]) -> str:
    """A trigger's verdict in an analysis's row as shown: ``fail (dry run)`` for a dry run's, which acted on nothing."""
    return f"{row.get('verdict')}{DRY_RUN_SHOWN}" if row.get("dry_run") else str(row.get("verdict"))


# ------------------------------------------------------------------------------------ dry runs


@dataclass(frozen=True)
class DryRunBreach:
    """A dry-run trigger's first breach at a step (or in Verify): when, where, and on what."""

    at: datetime
    trigger: str
    place: str
    weight: float | None
    value: float | None
    threshold: float | None
    reason: str


def dry_run_breaches(record: ReleaseRecord) -> list[DryRunBreach]:
    """Where each dry-run trigger would have rolled the release back, oldest first (``DRY_RUN_EVENT``)."""
    return [
        DryRunBreach(
            w.event.at,
            str(w.payload.get("trigger")),
            w.place.label(record),
            w.payload.get("weight"),
            w.payload.get("value"),
            w.payload.get("threshold"),
            str(w.payload.get("reason")),
        )
        for w in walk(record)
        if w.event.kind == DRY_RUN_EVENT
    ]


def dry_run_text(b: DryRunBreach) -> str:
    """``dry run: errors would have rolled back at 2026-01-01 00:40:00 UTC, step 1 (1%): 0.5 above the limit 0.01``."""
    return f"dry run: {b.trigger} would have rolled back at {when(b.at)} UTC, {b.place}: {b.reason}"


# ------------------------------------------------------------------------------------ verify


@dataclass
class ProbeSummary:
    """One Verify probe over the validation window."""

    name: str
    analyses: int = 0  # analyses that held a result of the probe (a result is reused until its interval passes)
    passed: int = 0
    last_verdict: str | None = None
    last_reason: str | None = None
    last_value: float | None = None
    last_at: str | None = None


@dataclass
class VerifyReport:
    """The post-release validation: the window, who was on call, what the probes and analyses said."""

    reached: bool
    opened_at: datetime | None
    planned_s: int
    ends_at: datetime | str | None
    closed_at: datetime | None
    closed_by: str | None
    on_call: str  # who is on call now: the last handover's person, else who was when Verify opened
    probes: list[ProbeSummary]
    verdicts: Counter[str]
    analyses: list[dict[str, Any]]
    # The on-call handovers, oldest first: at, by, from, to, reason.
    handovers: list[dict[str, Any]] = field(default_factory=list)


def verify_report(record: ReleaseRecord) -> VerifyReport:
    """The Verify window of the release (``reached`` is False when it never got there)."""
    r = record.resolved
    run = next(x for x in rollout_as_run(record) if x.slot == VERIFY)
    started = next((w for w in walk(record) if w.event.kind == "verify.started"), None)
    on_call = str(started.payload.get("on_call")) if started else r.on_call
    handovers = [
        {
            "at": w.event.at,
            "by": w.event.actor,
            "from": w.payload.get("from"),
            "to": w.payload.get("to"),
            "reason": w.payload.get("reason"),
        }
        for w in walk(record)
        if w.event.kind == HANDOVER_EVENT
    ]
    if handovers:
        on_call = str(handovers[-1]["to"])
    # The window counts from the promotion into Verify (the 100% step's weight was confirmed
    # before): a later router.applied in Verify (a weight set again after drift) does not reopen it.
    opened = started.event.at if started else run.entered_at
    ends: datetime | str | None = None
    if started and started.payload.get("ends_at"):
        ends = str(started.payload["ends_at"])
    elif opened is not None:
        ends = datetime.fromtimestamp(opened.timestamp() + r.verify_window, tz=opened.tzinfo)
    analyses = [a for a in record.analyses if _analysis_slot(a) == VERIFY]
    probes = {p.result_name: ProbeSummary(p.name) for p in r.probes}
    for a in analyses:
        for t in a["results"]:
            summary = probes.get(str(t.get("trigger")))
            if summary is None:
                continue
            summary.analyses += 1
            summary.passed += t.get("verdict") == "pass"
            summary.last_verdict, summary.last_reason = t.get("verdict"), t.get("reason")
            summary.last_value, summary.last_at = t.get("value"), a["at"]
    return VerifyReport(
        reached=run.reached,
        opened_at=opened,
        planned_s=r.verify_window,
        ends_at=ends,
        closed_at=run.left_at,
        closed_by=run.left_by,
        on_call=on_call,
        probes=list(probes.values()),
        verdicts=run.verdicts,
        analyses=analyses,
        handovers=handovers,
    )


# ------------------------------------------------------------------------------------ exposure


@dataclass(frozen=True)
class Exposure:
    """How much traffic the new version served: per weight, and in all as time at 100%."""

    per_weight: list[tuple[float, float]]  # (weight, seconds), in the order they were served
    full_traffic_s: float


def exposure(record: ReleaseRecord, until: datetime | None = None) -> Exposure:
    """The canary's share of traffic over time, from the router's confirmations.

    Counted up to the confirmed revert (weight 0), or ``until``: by default the end of the release
    (a complete release keeps serving the new version, but that is no longer a rollout).
    """
    applied = [
        (w.event.at, float(w.payload.get("weight", 0))) for w in walk(record) if w.event.kind == "router.applied"
    ]
    if not applied:
        return Exposure([], 0.0)
    end = until or (record.state_since if record.ended or not record.events else record.events[-1].at)
    per: list[tuple[float, float]] = []
    for (at, weight), nxt in zip(applied, [*applied[1:], (end, 0.0)], strict=True):
        seconds = max(0.0, (nxt[0] - at).total_seconds())
        if weight > 0 and seconds > 0:
            if per and per[-1][0] == weight:
                per[-1] = (weight, per[-1][1] + seconds)
            else:
                per.append((weight, seconds))
    return Exposure(per, sum(w / 100 * s for w, s in per))


def exposure_text(e: Exposure) -> str:
    """``1% for 30m, 10% for 2h; as much traffic as 100% for 12m``."""
    if not e.per_weight:
        return "none"
    parts = ", ".join(f"{w:g}% for {span(s)}" for w, s in e.per_weight)
    return f"{parts}; as much traffic as 100% for {span(e.full_traffic_s)}"
