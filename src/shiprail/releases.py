"""The service layer: commands on releases.

Each command loads the release, gathers the facts its gates need, asks the pure engine what
follows, and writes the change, every gate evaluation and the audit events in one transaction.
The CLI, the API and the controller all go through here; nothing else writes a release.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from shiprail import retro
from shiprail.clock import Clock
from shiprail.domain import gates as judge
from shiprail.domain import rules
from shiprail.domain.engine import (
    Evaluation,
    GateResult,
    Outcome,
    ReleaseState,
    check_allowed,
    gates_for,
    transition,
)
from shiprail.domain.freezes import frozen
from shiprail.domain.refusals import covers, parse_gate, reference, reference_problem, refused_by, within
from shiprail.domain.rollout import entered, pause_refusal, paused_by_person, progress_to_json, resumed
from shiprail.domain.states import FORWARD, ON_THE_ROUTER, ROUND_TRIP, TERMINAL, Action, Gate, Status
from shiprail.errors import BadInput, ContractFrozen, GateFailed, IllegalTransition, NotFound, OverrideRefused
from shiprail.export.history import HANDOVER_EVENT, last_evidence, span
from shiprail.project import CheckedPlan, PolicyWatch, file_hash
from shiprail.schema.policy import APPROVE_ROLES, ON_CALL_ROLE, QA_ROLE, Policy
from shiprail.schema.resolved import ResolvedRelease, canonical_json, resolved_hash, sha256_hex
from shiprail.schema.source import display_name
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.holds import TRANSITIONED_EVENT, current_hold
from shiprail.store.models import (
    Approval,
    AuditEvent,
    CheckRun,
    GateEvaluation,
    Lease,
    Override,
    Postmortem,
    Release,
    RollbackLog,
    Signoff,
)
from shiprail.store.rollouts import (
    analysis_json,
    dry_run_breaches,
    latest_analysis,
    load_progress,
    lock_progress,
    open_rollback,
    revert_stuck_after,
    rollback_json,
    router_trouble,
    save_progress,
)
from shiprail.store.rows import (
    approval_json,
    gate_json,
    iso,
    of_release,
    override_json,
    postmortem_json,
    refusal_of,
    signoff_json,
)
from shiprail.text import is_digits

# Actors that are not people: the controller and other parts of shiprail acting on their own.
SYSTEM_ACTOR_PREFIX = rules.SYSTEM_ACTOR_PREFIX
# Gates judged by plugins (analysis, probes, router confirmation): callers hand in the verdict.
EXTERNAL_GATES = frozenset({Gate.ANALYSIS, Gate.PROBES, Gate.REVERT_CONFIRMED})
# Who may drive a release forward or stop it, besides its owner.
DRIVE_ROLES = ("releaser", "executive")
STOP_ROLES = ("releaser", "oncall", "executive")
# Who may write up and close a post-mortem.
POSTMORTEM_ROLES = ("releaser", "executive")
# Audit events of a release's lifecycle: each gate of each attempted action, each change of state.
EVALUATED_EVENT = "gate.evaluated"
# A person withdrawing their approval, or their QA sign-off, before its gate was judged.
APPROVAL_REVOKED_EVENT = "approval.revoked"
SIGNOFF_REVOKED_EVENT = "qa.signoff_revoked"
# Who may hand a release's on-call duty to someone else, besides its owner and the person on call.
HANDOVER_ROLES = ("executive",)

ACTION_ROLES: dict[Action, tuple[str, ...]] = {
    Action.STAGE: DRIVE_ROLES,
    Action.START: DRIVE_ROLES,
    Action.PROMOTE: DRIVE_ROLES,
    Action.COMPLETE: DRIVE_ROLES,
    Action.PAUSE: STOP_ROLES,
    Action.RESUME: STOP_ROLES,
    Action.ROLLBACK: STOP_ROLES,
    Action.FINISH_ROLLBACK: STOP_ROLES,
}


@dataclass(frozen=True)
class RollbackCause:
    """Why a release is being rolled back, for its rollback log."""

    cause: str  # "trigger", "no_data" or "manual"
    reason: str
    trigger: str | None = None
    value: float | None = None
    threshold: float | None = None
    detected_at: datetime | None = None


@dataclass(frozen=True)
class Refusal:
    """One refusal of a gate, as the audit trail recorded it: what refused it (None: told by the
    gate's name alone) and the reason it gave."""

    refused_by: list[Any] | None
    reason: str


def stored_cause(s: Session, release_id: str, reason: str) -> RollbackCause:
    """Why a release rolls back when the analysis that failed it is stored but was not acted on (its
    controller stopped first; or a person rolls it back before a controller acts): that analysis,
    with its time as the detection time; ``no_data`` when no trigger in it failed."""
    row = latest_analysis(s, release_id)
    if row is None:
        return RollbackCause("no_data", reason)
    # A dry run's failure is in the row too, but it never rolls back: not the cause.
    fired = next((r for r in json.loads(row.results) if r["verdict"] == "fail" and not r.get("dry_run")), None)
    if fired is None:
        return RollbackCause("no_data", reason, detected_at=row.at)
    return RollbackCause(
        "trigger",
        f"trigger {fired['trigger']} fired: {fired['reason']}",
        trigger=fired["trigger"],
        value=fired["value"],
        threshold=fired["threshold"],
        detected_at=row.at,
    )


def state_of(release: Release) -> ReleaseState:
    """The engine's view of a stored release."""
    return ReleaseState(
        Status(release.status),
        release.step,
        Status(release.paused_from) if release.paused_from else None,
    )


def resolved_of(release: Release) -> ResolvedRelease:
    """The resolved plan a release runs."""
    return ResolvedRelease.model_validate_json(release.resolved)


def resolved_hash_of(release: Release) -> str:
    """The hash of the resolved release it runs: what its approvals must have approved."""
    return resolved_hash(release.resolved)


@dataclass
class ReleaseView:
    """A release as commands report it."""

    id: str
    service: str
    version: str
    baseline: str
    owner: str
    risk: str
    status: str
    state: str
    step: int | None
    weight: float | None
    created_at: datetime
    state_since: datetime
    frozen_at: datetime | None
    plan_file: str
    plan_hash: str
    contract_hash: str
    resolved_hash: str
    resolved: ResolvedRelease
    approvals: list[dict[str, Any]] = field(default_factory=list)
    signoffs: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    postmortems: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    last_analysis: dict[str, Any] | None = None
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    # The controller holding the release's lease: {"holder", "lease_until"}; None when none ever did.
    controller: dict[str, Any] | None = None
    # Whether that lease had run out when the view was read, by the lease clock (not in the JSON).
    lease_lapsed: bool = False
    # A weight the router keeps failing to apply: {"weight", "since", "attempts", "error"}; None when none.
    router_trouble: dict[str, Any] | None = None
    # What holds the rollout now (a deployment freeze, or the on_call gate before Verify): the
    # latest refused promotion's hold with its time ``at``; None when nothing holds it.
    held: dict[str, Any] | None = None
    # Who is on call now (the plan's verify.on_call until a handover), and the handovers.
    on_call: str | None = None
    handovers: list[dict[str, Any]] = field(default_factory=list)
    # Where dry-run triggers would have rolled the release back: their breaches (``DRY_RUN_EVENT``), oldest first.
    dry_runs: list[dict[str, Any]] = field(default_factory=list)
    # Who paused the release, when and why (``{by, at, reason, for_missing_data}``); None unless it is paused.
    paused: dict[str, Any] | None = None

    def to_json(self, full: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (``full=False``: the summary row of ``release list``)."""
        out: dict[str, Any] = {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "baseline": self.baseline,
            "owner": self.owner,
            "risk": self.risk,
            "status": self.status,
            "state": self.state,
            "step": self.step,
            "weight": self.weight,
            "created_at": self.created_at.isoformat(),
            "state_since": self.state_since.isoformat(),
        }
        if full:
            out |= {
                "frozen_at": self.frozen_at.isoformat() if self.frozen_at else None,
                "plan_file": self.plan_file,
                "plan_hash": self.plan_hash,
                "contract_hash": self.contract_hash,
                "resolved_hash": self.resolved_hash,
                "plan": self.resolved.model_dump(mode="json"),
                "approvals": self.approvals,
                "signoffs": self.signoffs,
                "gates": self.gates,
                "overrides": self.overrides,
                "postmortems": self.postmortems,
                "progress": self.progress,
                "last_analysis": self.last_analysis,
                "rollbacks": self.rollbacks,
                "controller": self.controller,
                "router_trouble": self.router_trouble,
                "held": self.held,
                "on_call": self.on_call,
                "handovers": self.handovers,
                "dry_runs": self.dry_runs,
                "paused": self.paused,
            }
        return out


@dataclass
class PlanReplaced:
    """What ``release update`` did: the release now, and whether its approvals must be given again."""

    view: ReleaseView
    plan_changed: bool  # the plan file's text changed
    # The fields of the resolved release (``plan`` in ``release show --json``) that changed; empty
    # when it resolves exactly as before, and then its approvals still count.
    changed: list[str]
    # Who had approved it as it was, and whose approval no longer counts.
    no_longer_counting: list[str]
    # Who had approved it when it last resolved as it does now (an edit reverted): counted again.
    counting_again: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:60] or "release"


def no_such_release(session: Session, release_id: str) -> str:
    """Why ``release_id`` is refused when the store holds no such release: the id and the latest ones."""
    known = session.execute(select(Release.id).order_by(Release.created_at.desc()).limit(5)).scalars().all()
    hint = f"; recent releases: {', '.join(known)}" if known else "; `shiprail release list` shows them"
    if Path(release_id).suffix in (".yaml", ".yml"):
        # Only start, promote, pause, resume and rollback take a plan file for its latest release.
        hint = f": give a release id, not a plan file{hint}"
    return f"no release {release_id!r}{hint}"


class Releases:
    """Commands on releases, over one store, one policy and one clock."""

    def __init__(self, store: Store, clock: Clock, policy: Policy, policy_watch: PolicyWatch | None = None) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        # Where ``policy`` came from, for a long-running process to take a changed shiprail.yaml
        # (``reload_policy``); None: the policy stays as given (tests, one-shot commands).
        self.policy_watch = policy_watch

    def reload_policy(self, said_to: logging.Logger, taken: str) -> bool:
        """Take ``shiprail.yaml`` again if it changed and loads, saying so on ``said_to`` (``taken``:
        what counts from now); True when taken. A change that does not load is said once and changes
        nothing; a failure to read the file never escapes (the loop asking drives releases)."""
        if self.policy_watch is None:
            return False
        try:
            policy, why = self.policy_watch.poll()
        except Exception:
            said_to.exception("cannot read shiprail.yaml again; keeping the policy loaded before")
            return False
        if policy is None:
            if why is not None:
                said_to.warning("shiprail.yaml changed but does not load (%s); keeping the policy loaded before", why)
            return False
        self.policy = policy
        said_to.warning("shiprail.yaml changed: %s", taken)
        return True

    # ------------------------------------------------------------------------------ helpers

    def _load(self, session: Session, release_id: str, *, lock: bool = False) -> Release:
        query = select(Release).where(Release.id == release_id)
        if lock:
            query = query.with_for_update()
        release = session.execute(query).scalar_one_or_none()
        if release is None:
            raise NotFound(no_such_release(session, release_id))
        return release

    def _event(self, session: Session, actor: str, what: str, release_id: str | None, /, **payload: Any) -> None:
        self._event_at(session, self.clock.now(), actor, what, release_id, **payload)

    def _event_at(
        self, session: Session, at: datetime, actor: str, what: str, release_id: str | None, /, **payload: Any
    ) -> None:
        """Append an event at ``at``: the clock read the action wrote its rows with, so that a row's time
        and its event's are one instant (``release verify-package`` compares them)."""
        audit.append(session, at=at, actor=actor, kind=what, release_id=release_id, payload=payload)

    def _person(self, actor: str) -> set[str]:
        """The actor's roles; system actors have none but are trusted by the calling code."""
        if actor.startswith(SYSTEM_ACTOR_PREFIX):
            return set()
        rules.require_person(actor, self.policy.people)
        return self.policy.roles_of(actor)

    def _may_act(self, actor: str, action: Action, owner: str, doing: str | None = None) -> None:
        """``actor`` may take ``action`` (the owner always may); ``doing`` names what was refused, if not the action."""
        if actor.startswith(SYSTEM_ACTOR_PREFIX):
            return
        roles = self._person(actor)
        if actor != owner:
            rules.require_role(actor, roles, ACTION_ROLES[action], doing or f"{action.value} this release", owner)

    # ------------------------------------------------------------------------------ create

    def create(self, checked: CheckedPlan, actor: str) -> ReleaseView:
        """Record a new release of a plan that passed every guardrail; it starts ``planned``."""
        self._person(actor)
        r = checked.resolved
        now = self.clock.now()
        with self.store.transaction() as s:
            # Every writer takes the chain head: two creates of one plan at once (PostgreSQL) must
            # not both pick the same free id and the second fail on the primary key.
            audit.lock_head(s)
            base = _slug(f"{r.service}-{r.version}")
            taken = set(s.execute(select(Release.id).where(Release.id.like(f"{base}%"))).scalars())
            release_id, n = base, 1
            while release_id in taken:
                n += 1
                release_id = f"{base}-{n}"
            release = Release(
                id=release_id,
                service=r.service,
                version=r.version,
                baseline=r.baseline,
                owner=r.owner,
                risk=r.risk,
                status=Status.PLANNED.value,
                step=None,
                paused_from=None,
                plan_file=str(checked.path.resolve()),
                plan_text=checked.text,
                resolved=r.model_dump_json(),
                plan_hash=r.plan_hash,
                contract_hash=r.contract_hash,
                frozen_at=None,
                state_since=now,
                created_at=now,
                revision=0,
            )
            s.add(release)
            s.flush()
            self._event_at(
                s,
                now,
                actor,
                "release.created",
                release_id,
                created_at=now.isoformat(),
                service=r.service,
                version=r.version,
                baseline=r.baseline,
                owner=r.owner,
                risk=r.risk,
                risk_reason=r.risk_reason,
                plan_file=checked.file,
                plan_hash=r.plan_hash,
                contract_hash=r.contract_hash,
                resolved_hash=resolved_hash_of(release),
            )
            self._ask_approvals(s, release, actor, now, None)
            return self._view(s, release)

    def update_plan(self, release_id: str, checked: CheckedPlan, actor: str) -> PlanReplaced:
        """Replace the plan of a release still ``planned``.

        Its approvals must then be given again whenever the resolved release changed: the plan
        file, or what it resolves to with the service file and shiprail.yaml as they are now.
        """
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            # Who may stage a release may change its plan before it is staged.
            self._may_act(actor, Action.STAGE, release.owner, "update this release's plan")
            if release.frozen_at is not None:
                raise ContractFrozen(
                    f"release {release_id} froze its contract at {_utc(release.frozen_at)}; its plan can no "
                    f"longer change: revert the file, or create a new release of it (`shiprail release create "
                    f"{checked.file}`)"
                )
            r = checked.resolved
            if (r.service, r.version) != (release.service, release.version):
                raise BadInput(  # the wrong file for this release: bad input, nothing changed
                    f"{checked.file} is for {r.service} {r.version}, but release {release_id} is {release.service} "
                    f"{release.version}; create a new release instead"
                )
            old, old_owner = release.plan_hash, release.owner
            old_resolved, old_hash = json.loads(release.resolved), resolved_hash_of(release)
            counted = self._counting(s, release)
            release.plan_text, release.resolved = checked.text, r.model_dump_json()
            release.plan_file = str(checked.path.resolve())
            release.plan_hash, release.contract_hash = r.plan_hash, r.contract_hash
            release.risk, release.owner, release.baseline = r.risk, r.owner, r.baseline
            release.revision += 1
            self._event(
                s,
                actor,
                "plan.updated",
                release_id,
                old_plan_hash=old,
                plan_hash=r.plan_hash,
                contract_hash=r.contract_hash,
                old_resolved_hash=old_hash,
                resolved_hash=resolved_hash_of(release),
                # Who owned it before stays barred from approving, signing off and overriding it.
                **({"owner": r.owner, "old_owner": old_owner} if r.owner != old_owner else {}),
            )
            new_resolved = json.loads(release.resolved)
            changed = sorted(
                k for k in old_resolved.keys() | new_resolved.keys() if old_resolved.get(k) != new_resolved.get(k)
            )
            if resolved_hash_of(release) != old_hash:
                # Its approvals are asked again (or those of the release as it resolves now count again).
                self._ask_approvals(s, release, actor, self.clock.now(), None)
            now = self._counting(s, release)
            return PlanReplaced(
                self._view(s, release),
                plan_changed=r.plan_hash != old,
                changed=changed if resolved_hash_of(release) != old_hash else [],
                no_longer_counting=[p for p in counted if p not in now],
                counting_again=[p for p in now if p not in counted],
            )

    @staticmethod
    def _approvers(s: Session, release: Release) -> list[str]:
        """Who approved the resolved release it runs now, first approval first."""
        query = (
            select(Approval.principal)
            .where(Approval.release_id == release.id, Approval.resolved_hash == resolved_hash_of(release))
            .order_by(Approval.id)
        )
        return list(s.execute(query).scalars())

    def _counting(self, s: Session, release: Release) -> list[str]:
        """The approvers the approvals gate counts now: of the resolved release it runs, not an owner
        (present or former), still holding a role that may approve; what `release update` reports."""
        approvers = self._approvers(s, release)
        barred = (
            self._former_owners(s, release) | {release.owner} | self._lapsed(approvers) | set(self._authors(s, release))
        )
        return [name for name in approvers if name not in barred]

    def _lapsed(self, approvers: Collection[str]) -> set[str]:
        """The approvers who may no longer approve under shiprail.yaml as it is now (lost the role, or left it).

        Judged now, as the on_call gate is: an approval given by someone whose role was taken away
        since (they left the team, their account was misused) must not carry the release into Stage.
        """
        return {name for name in approvers if not self.policy.roles_of(name) & set(APPROVE_ROLES)}

    def _holds_qa(self, name: str) -> bool:
        """Whether ``name`` holds the qa role under shiprail.yaml as it is now (judged when the rollout starts)."""
        return QA_ROLE in self.policy.roles_of(name)

    def _former_owners(self, s: Session, release: Release) -> set[str]:
        """Everyone the release's plan named as its owner before the current one (audit trail)."""
        query = select(AuditEvent.payload).where(
            AuditEvent.release_id == release.id, AuditEvent.kind.in_(("release.created", "plan.updated"))
        )
        owners: set[str] = set()
        for payload in s.execute(query).scalars():
            data = json.loads(payload)
            owners.update(str(data[key]) for key in ("owner", "old_owner") if key in data)
        return owners - {release.owner}

    def _approvals_gate(self, s: Session, release: Release) -> GateResult:
        """The approvals gate of Stage, judged now: what ``release stage`` would find."""
        approvers = self._approvers(s, release)
        return judge.approvals(
            approvers,
            release.owner,
            resolved_of(release).approvals_required,
            self._former_owners(s, release),
            self._lapsed(approvers),
            APPROVE_ROLES,
            self._authors(s, release),
        )

    def _ask_approvals(self, s: Session, release: Release, actor: str, at: datetime, fewer_than: int | None) -> None:
        """Record that the release waits for approval (``approval.awaited``, news for its communication
        plan) when its approvals gate would refuse it now; with ``fewer_than``, only when it counts fewer
        approvers than that (a revoked approval that did not count changes nothing anyone waits for)."""
        gate = self._approvals_gate(s, release)
        counted = list(gate.evidence["approvers"])
        if gate.passed or (fewer_than is not None and len(counted) >= fewer_than):
            return
        required = resolved_of(release).approvals_required
        self._event_at(
            s,
            at,
            actor,
            audit.APPROVAL_AWAITED_EVENT,
            release.id,
            gate=Gate.APPROVALS.value,
            required=required,
            approvers=counted,
            needed=required - len(counted),
        )

    @staticmethod
    def _authors(s: Session, release: Release) -> dict[str, str]:
        """Who created the release or changed what it runs, with what they did (``rules.authors``)."""
        query = (
            select(AuditEvent)
            .where(AuditEvent.release_id == release.id, AuditEvent.kind.in_(("release.created", "plan.updated")))
            .order_by(AuditEvent.seq)
        )
        rows = [(row.kind, row.actor, audit.payload_of(row)) for row in s.execute(query).scalars()]
        return rules.authors(rows)

    def check_plan_file(self, release: Release) -> None:
        """Refuse to go on when the plan file on disk no longer matches the release's plan."""
        path = Path(release.plan_file)
        if not path.is_file():
            return
        if file_hash(path) == release.plan_hash:
            return
        if release.frozen_at is not None:
            raise ContractFrozen(
                f"{path} was edited after release {release.id} froze its contract; the release runs the plan it "
                "froze. Revert the file, or plan a new release for the change"
            )
        raise ContractFrozen(
            f"{path} changed since release {release.id} was created; run `shiprail release update {release.id} "
            f"{path}` (approvals are then asked again) or revert the file"
        )

    # ------------------------------------------------------------------------------ approvals

    def approve(self, release_id: str, actor: str) -> ReleaseView:
        """Approve the release as it will run (its resolved release); the owner cannot, each person counts once."""
        roles = self._person(actor)
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            rules.require_role(actor, roles, APPROVE_ROLES, "approve releases")
            rules.require_not_owner(actor, release.owner, "approve it", self._former_owners(s, release))
            rules.require_not_author(actor, self._authors(s, release), "approve it")
            if release.status != Status.PLANNED.value:
                raise IllegalTransition(
                    f"release {release_id} is {state_of(release).describe()}; approvals are given while it is planned"
                )
            approved = resolved_hash_of(release)
            exists = s.execute(
                select(Approval).where(
                    Approval.release_id == release_id,
                    Approval.principal == actor,
                    Approval.resolved_hash == approved,
                )
            ).scalar_one_or_none()
            if exists is None:
                now = self.clock.now()
                s.add(
                    Approval(
                        release_id=release_id,
                        principal=actor,
                        plan_hash=release.plan_hash,
                        resolved_hash=approved,
                        at=now,
                    )
                )
                s.flush()
                self._event_at(
                    s,
                    now,
                    actor,
                    "release.approved",
                    release_id,
                    plan_hash=release.plan_hash,
                    resolved_hash=approved,
                    approved_at=now.isoformat(),
                )
            return self._view(s, release)

    def revoke_approval(self, release_id: str, actor: str, reason: str | None = None) -> ReleaseView:
        """Withdraw ``actor``'s approval of the release (of every plan they approved it as) while it is planned.

        Only the approver revokes their approval (GitLab's revoke, Octopus's reject): the approvals
        gate no longer counts it, and an ``approval.revoked`` event records what was withdrawn. Once
        the release entered Stage its approvals gate was judged: refused, nothing changed.
        """
        self._person(actor)
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            if release.status != Status.PLANNED.value:
                raise IllegalTransition(
                    _judged_already(release, "its approvals gate was judged when it entered Stage", "an approval")
                )
            rows = (
                s.execute(
                    select(Approval)
                    .where(Approval.release_id == release_id, Approval.principal == actor)
                    .order_by(Approval.id)
                )
                .scalars()
                .all()
            )
            if not rows:
                raise NotFound(f"{actor} has not approved release {release_id}: there is no approval to revoke")
            counted = len(self._approvals_gate(s, release).evidence["approvers"])
            now = self.clock.now()
            withdrawn = [
                {"plan_hash": a.plan_hash, "resolved_hash": a.resolved_hash, "approved_at": iso(a.at)} for a in rows
            ]
            for a in rows:
                s.delete(a)
            s.flush()
            self._event_at(
                s,
                now,
                actor,
                APPROVAL_REVOKED_EVENT,
                release_id,
                revoked=withdrawn,
                revoked_at=now.isoformat(),
                **({"reason": reason} if reason else {}),
            )
            self._ask_approvals(s, release, actor, now, counted)
            return self._view(s, release)

    def revoke_signoff(self, release_id: str, item: str, actor: str, reason: str | None = None) -> ReleaseView:
        """Withdraw ``actor``'s sign-off of one QA item while the release is planned or staging.

        Only the qa who signed it off revokes it; the qa gate no longer counts it, and a
        ``qa.signoff_revoked`` event records it. Once the rollout started the qa gate was judged:
        refused, nothing changed.
        """
        self._person(actor)
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            if state_of(release).paused_from is Status.STAGING:
                # Paused in Stage: the qa gate is not judged yet, and a sign-off changes once resumed.
                raise IllegalTransition(
                    f"release {release_id} is {state_of(release).describe()}: a QA sign-off is revoked while it is "
                    f"planned or staging; nothing was changed; resume it first (`shiprail release resume "
                    f"{release_id}`), then revoke it"
                )
            if release.status not in (Status.PLANNED.value, Status.STAGING.value):
                raise IllegalTransition(
                    _judged_already(release, "its qa gate was judged when its rollout started", "a QA sign-off")
                )
            chosen = _checklist_item(resolved_of(release).qa_checklist, item, release_id)
            done = s.execute(
                select(Signoff).where(Signoff.release_id == release_id, Signoff.item == chosen)
            ).scalar_one_or_none()
            if done is None:
                raise NotFound(f"{chosen!r} of release {release_id} is not signed off: there is no sign-off to revoke")
            if done.principal != actor:
                raise NotFound(
                    f"{actor} has not signed off {chosen!r} of release {release_id} ({done.principal} did, who alone "
                    "may revoke it): there is no sign-off of theirs to revoke"
                )
            now = self.clock.now()
            signed_at = iso(done.at)
            s.delete(done)
            s.flush()
            self._event_at(
                s,
                now,
                actor,
                SIGNOFF_REVOKED_EVENT,
                release_id,
                item=chosen,
                signed_off_at=signed_at,
                revoked_at=now.isoformat(),
                **({"reason": reason} if reason else {}),
            )
            return self._view(s, release)

    def signoff(self, release_id: str, item: str, actor: str) -> ReleaseView:
        """Sign off one QA checklist item (by its text or its 1-based number)."""
        roles = self._person(actor)
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            rules.require_role(actor, roles, (QA_ROLE,), "sign off QA items")
            former = self._former_owners(s, release)
            rules.require_not_owner(actor, release.owner, "sign off its QA", former)
            if release.status not in (Status.PLANNED.value, Status.STAGING.value):
                raise IllegalTransition(
                    f"release {release_id} is {state_of(release).describe()}; QA signs off while it is planned or "
                    "staging"
                )
            checklist = resolved_of(release).qa_checklist
            chosen = _checklist_item(checklist, item, release_id)
            done = s.execute(
                select(Signoff).where(Signoff.release_id == release_id, Signoff.item == chosen)
            ).scalar_one_or_none()
            now = self.clock.now()
            if done is None:
                s.add(Signoff(release_id=release_id, item=chosen, principal=actor, at=now))
                s.flush()
                self._event_at(s, now, actor, "qa.signed_off", release_id, item=chosen, signed_off_at=now.isoformat())
            elif done.principal in former | {release.owner} or not self._holds_qa(done.principal):
                # Signed off by someone the plan has since named its owner, or who no longer holds
                # the qa role: it no longer counts, so another qa signs it off in their place.
                replaced, done.principal, done.at = done.principal, actor, now
                self._event_at(
                    s,
                    now,
                    actor,
                    "qa.signed_off",
                    release_id,
                    item=chosen,
                    replaced=replaced,
                    signed_off_at=now.isoformat(),
                )
            return self._view(s, release)

    def record_check(
        self,
        release_id: str,
        *,
        kind: str,
        name: str,
        passed: bool,
        summary: str,
        evidence: Mapping[str, Any],
        actor: str,
    ) -> None:
        """Store the result of a stage check run (tests, load test) as gate evidence."""
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            if release.status != Status.STAGING.value:
                raise IllegalTransition(
                    f"release {release_id} is {state_of(release).describe()}; checks run in staging"
                )
            now = self.clock.now()
            run = CheckRun(
                release_id=release_id,
                kind=kind,
                name=name,
                passed=passed,
                summary=summary,
                evidence=canonical_json(dict(evidence)),
                at=now,
            )
            s.add(run)
            s.flush()
            self._event_at(
                s,
                now,
                actor,
                "check.recorded",
                release_id,
                kind=kind,
                name=name,
                passed=passed,
                summary=summary,
                # The evidence by its digest (JUnit cases, Locust numbers: too long to chain whole).
                evidence_sha256=sha256_hex(run.evidence),
                recorded_at=now.isoformat(),
            )

    # ------------------------------------------------------------------------------ gates

    def _gate_results(
        self, s: Session, release: Release, action: Action, external: Mapping[Gate, GateResult], actor: str
    ) -> dict[Gate, GateResult]:
        r = resolved_of(release)
        results: dict[Gate, GateResult] = {g: v for g, v in external.items() if g in EXTERNAL_GATES}
        if action is Action.STAGE:
            # Approvals of the release as it runs: the plan file alone is not what was approved.
            results[Gate.APPROVALS] = self._approvals_gate(s, release)
        elif action is Action.START:
            signed = {
                row.item: row.principal
                for row in s.execute(select(Signoff).where(Signoff.release_id == release.id)).scalars()
            }
            owners = self._former_owners(s, release) | {release.owner}
            lapsed = {who for who in signed.values() if not self._holds_qa(who)}
            results[Gate.QA] = judge.qa(r.qa_checklist, signed, r.qa_required, owners, lapsed, QA_ROLE)
            runs = (
                s.execute(select(CheckRun).where(CheckRun.release_id == release.id).order_by(CheckRun.id))
                .scalars()
                .all()
            )
            latest = {(c.kind, c.name): judge.CheckRecord(c.name, c.passed, c.summary) for c in runs}
            results[Gate.TESTS] = judge.tests(
                [t.name for t in r.tests], {n: rec for (k, n), rec in latest.items() if k == "tests"}
            )
            results[Gate.LOAD_TEST] = judge.load_test(
                r.load_test_required, r.load_test is not None, latest.get(("load_test", "load_test"))
            )
        elif action is Action.PROMOTE:
            step = r.steps[release.step or 0]
            progress = load_progress(s, release.id)
            results[Gate.BAKE] = judge.baked(progress.baked_s, step.bake or 0, step.weight)
            if step.promote == "manual":
                by_person = not actor.startswith(SYSTEM_ACTOR_PREFIX)
                number = (release.step or 0) + 1
                results[Gate.JUDGMENT] = judge.judgment(by_person, actor, number, step.weight, release.id)
            if Gate.ON_CALL in gates_for(action, state_of(release), len(r.steps), manual_steps(r)):
                # Judged against shiprail.yaml as it is now: the plan was checked when it was made,
                # and the person may have left, or lost the role, since.
                results[Gate.ON_CALL] = self._on_call_gate(_on_call_now(s, release))
        elif action is Action.COMPLETE:
            # The window runs from the moment the router confirmed 100% for Verify, in watched time.
            progress = load_progress(s, release.id)
            results[Gate.VERIFY_WINDOW] = judge.verify_window(progress.baked_s, r.verify_window, progress.step_started)
            if Gate.PROBES not in results:
                results[Gate.PROBES] = _probes_gate(s, release, [p.result_name for p in r.probes])
        if action in (Action.START, Action.PROMOTE):
            results[Gate.FREEZE] = self.freeze_gate(release, action)
        if Gate.ANALYSIS not in results and action in (Action.PROMOTE, Action.COMPLETE):
            # The weight the release stands at: its step's, or 100 % in Verify.
            weight = r.steps[-1 if release.step is None else release.step].weight
            results[Gate.ANALYSIS] = _analysis_gate(s, release, weight)
        if Gate.REVERT_CONFIRMED not in results and action is Action.FINISH_ROLLBACK:
            log = open_rollback(s, release.id)
            confirmed = load_progress(s, release.id).applied_weight == 0 and log is None
            results[Gate.REVERT_CONFIRMED] = judge.recorded(
                Gate.REVERT_CONFIRMED,
                (True, "the router confirmed weight 0") if confirmed else None,
                "the router has not confirmed weight 0 yet",
            )
        for gate in EXTERNAL_GATES:
            if gate not in results:
                results[gate] = judge.recorded(gate, None, f"no {gate.value.replace('_', ' ')} verdict recorded")
        return results

    def _on_call_gate(self, name: str) -> GateResult:
        """Whether ``name`` may be on call for Verify under the policy now."""
        people = self.policy.people
        roles = set(people[name].roles) if name in people else None
        return judge.on_call(name, roles, ON_CALL_ROLE, self.policy.holding(ON_CALL_ROLE))

    def freeze_gate(self, release: Release, action: Action) -> GateResult:
        """The deployment freezes of the policy, at the clock's now, for ``action`` (start or promote).

        A promotion from the last step into Verify sends the canary no more traffic: no freeze holds it.
        """
        moves = action is Action.START or (release.step or 0) + 1 < len(resolved_of(release).steps)
        hits = frozen(self.policy.freeze_windows(), release.service, self.clock.now())
        return judge.freeze(hits, moves_traffic=moves)

    def _open_rollback_log(self, s: Session, release: Release, why: RollbackCause, actor: str) -> None:
        now = self.clock.now()
        limit = resolved_of(release).contract.revert.max_duration
        log = RollbackLog(
            release_id=release.id,
            cause=why.cause,
            trigger=why.trigger,
            reason=why.reason,
            value=why.value,
            threshold=why.threshold,
            initiated_by=actor,
            weight_before=load_progress(s, release.id).applied_weight,
            detected_at=why.detected_at or now,
            decided_at=now,
            max_duration_s=float(limit) if limit is not None else None,
            metrics_after="[]",
        )
        s.add(log)
        s.flush()
        self._event_at(
            s,
            now,
            actor,
            "rollback.decided",
            release.id,
            rollback_id=log.id,
            cause=why.cause,
            trigger=why.trigger,
            reason=why.reason,
            value=why.value,
            threshold=why.threshold,
            detected_at=log.detected_at.isoformat(),
            decided_at=now.isoformat(),
            weight_before=log.weight_before,
        )

    def _record(self, s: Session, release: Release, outcome: Outcome, actor: str, reason: str | None = None) -> None:
        now = self.clock.now()
        for ev in outcome.evaluations:
            row = _store_evaluation(s, release.id, outcome.action, ev, actor, now)
            # What refused it, when told apart: the refusal an override covers (``domain.refusals``).
            culprits = None if ev.verdict == "pass" else refused_by(ev.gate, ev.evidence)
            self._event_at(
                s,
                now,
                actor,
                EVALUATED_EVENT,
                release.id,
                action=outcome.action.value,
                gate=ev.gate.value,
                verdict=ev.verdict,
                reason=ev.reason,
                **({} if culprits is None else {"refused_by": culprits}),
                # What the row keeps beside it, as the package shows it: its evidence by digest, and
                # the reference of its refusal as read from that evidence (``gate_json``).
                evidence_sha256=sha256_hex(row.evidence),
                refusal=refusal_of(row.gate, row.verdict, json.loads(row.evidence)),
                evaluated_at=now.isoformat(),
            )
        if not outcome.allowed:
            return
        before, after = outcome.before, outcome.state
        release.status = after.status.value
        release.step = after.step
        release.paused_from = after.paused_from.value if after.paused_from else None
        release.state_since = now
        release.revision += 1
        r = resolved_of(release)
        self._event_at(
            s,
            now,
            actor,
            TRANSITIONED_EVENT,
            release.id,
            action=outcome.action.value,
            **{"from": before.describe()},
            to=after.describe(),
            state_since=now.isoformat(),
            weight=None if after.step is None else r.steps[after.step].weight,
            **({"reason": reason} if reason else {}),
        )
        if outcome.action is Action.PROMOTE:
            # A new step (or Verify) bakes from zero, whoever promoted.
            save_progress(s, release.id, entered(load_progress(s, release.id), now), now)
            if after.status is Status.VERIFYING:
                # Who answers for the validation window, recorded when it opens.
                self._event_at(
                    s,
                    now,
                    actor,
                    "verify.started",
                    release.id,
                    on_call=_on_call_now(s, release),
                    window_s=r.verify_window,
                    ends_at=(now + timedelta(seconds=r.verify_window)).isoformat(),
                    probes=[p.name for p in r.probes],
                )
        elif outcome.action is Action.RESUME:
            save_progress(s, release.id, resumed(load_progress(s, release.id), now), now)
        elif outcome.action is Action.PAUSE and not actor.startswith(SYSTEM_ACTOR_PREFIX):
            save_progress(s, release.id, paused_by_person(load_progress(s, release.id)), now)
        if outcome.action is Action.STAGE:
            release.frozen_at = now
            self._event_at(
                s,
                now,
                actor,
                "contract.frozen",
                release.id,
                frozen_at=now.isoformat(),
                plan_hash=release.plan_hash,
                contract_hash=release.contract_hash,
                resolved_hash=resolved_hash_of(release),
            )

    # ------------------------------------------------------------------------------ actions

    def act(
        self,
        release_id: str,
        action: Action,
        actor: str,
        external: Mapping[Gate, GateResult] | None = None,
        *,
        reason: str | None = None,
        rollback: RollbackCause | None = None,
    ) -> Outcome:
        """Attempt ``action``. Gate evaluations are stored either way; a failed gate raises ``GateFailed``.

        ``reason`` is written to the audit trail; ``rollback`` says why a rollback happens (by
        default: by hand, by ``actor``).
        """
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            lock_progress(s, release_id)  # before any event: the controller's order
            state = state_of(release)
            if state.status in TERMINAL:
                raise IllegalTransition(
                    f"cannot {action.value} release {release_id}: it is {state.describe()}, and a release that has "
                    f"ended takes no more actions; {ended_next(state.status, release.plan_file)}"
                )
            progress = load_progress(s, release.id)
            # A person's pause is not paused again (``pause_refusal``): not a choice to offer.
            person_paused = state.status is Status.PAUSED and not progress.paused_for_no_data
            check_allowed(state, action, refused=(Action.PAUSE,) if person_paused else ())
            self._may_act(actor, action, release.owner)
            if action is Action.STAGE:
                self.check_plan_file(release)
            if action is Action.START:
                _check_service_free(s, release)
            held = pause_refusal(
                state.status,
                progress,
                action,
                by_person=not actor.startswith(SYSTEM_ACTOR_PREFIX),
            )
            if held is not None:
                raise IllegalTransition(f"cannot {action.value} release {release_id}: {held}")
            results = self._gate_results(s, release, action, external or {}, actor)
            r = resolved_of(release)
            outcome = transition(state, action, steps=len(r.steps), results=results, manual=manual_steps(r))
            self._record(s, release, outcome, actor, reason)
            if outcome.allowed and action is Action.ROLLBACK:
                why = rollback or self._manual_cause(s, release, actor, reason)
                self._open_rollback_log(s, release, why, actor)
            # A release that just ended gets its retrospective, in this same transaction.
            retro.generate_if_ended(s, release.id, self.clock.now())
        if not outcome.allowed:
            raise _gate_failed(release_id, outcome, self.policy.overrides.roles)
        return outcome

    @staticmethod
    def _manual_cause(s: Session, release: Release, actor: str, reason: str | None) -> RollbackCause:
        """A person's rollback; but one of a release whose latest analysis failed the contract, not
        yet acted on (its controller stopped first), is the contract's: the rollback log names the
        trigger and when it was detected, so that how long the canary stayed bad is not hidden."""
        said = reason or f"rolled back by {actor}"
        if load_progress(s, release.id).last_verdict == "fail":
            fired = stored_cause(s, release.id, said)
            if fired.cause == "trigger":
                by = f"rolled back by {actor}" + (f": {reason}" if reason else "")
                return replace(fired, reason=f"{fired.reason}; {by}")
        return RollbackCause("manual", said)

    @staticmethod
    def _refused_since(s: Session, release: Release, action: Action) -> dict[str, list[Refusal]]:
        """The gates that refused ``action`` since the release entered its state (empty: none did),
        each with its refusals, newest first: what refused it (None: told by the gate's name alone,
        as refusals recorded by an earlier shiprail are) and the reason given.

        A pause and its resume bring the release back to the state (and step) it was in: a refusal
        before them still stands (a step the controller holds in a freeze, or before Verify for the
        on_call gate, is not asked again after a resume). Read in the audit chain's order, so that a
        refusal and a change of state at one instant are never confused.
        """
        events = s.execute(
            select(AuditEvent.kind, AuditEvent.payload)
            .where(
                AuditEvent.release_id == release.id,
                AuditEvent.kind.in_((EVALUATED_EVENT, TRANSITIONED_EVENT)),
            )
            .order_by(AuditEvent.seq.desc())
        )
        refused: dict[str, list[Refusal]] = {}
        for kind, payload in events:
            data = json.loads(payload) if isinstance(payload, str) else dict(payload)
            if kind == TRANSITIONED_EVENT and Action(data["action"]) not in ROUND_TRIP:
                break  # the release entered its state here: nothing before counts
            if kind == EVALUATED_EVENT and data["action"] == action.value and data["verdict"] == "fail":
                refused.setdefault(str(data["gate"]), []).append(Refusal(data.get("refused_by"), str(data["reason"])))
        return refused

    def override(
        self,
        release_id: str,
        actor: str,
        reason: str,
        gates: Sequence[str] = (),
        external: Mapping[Gate, GateResult] | None = None,
        *,
        seen: ReleaseState | None = None,
    ) -> Outcome:
        """Pass the failed gates of the release's next forward action; opens a post-mortem.

        Without ``gates`` the action must have been tried and refused since the release entered its
        state: the override passes what failed, never gates nobody has tried (see ``_refused_since``).
        ``seen``: the state the person saw refused (``release override --at``); refused, with nothing
        recorded, when the release is no longer in it, checked under the release row's lock.

        Each gate is passed only for what refused it when the person looked (``domain.refusals``):
        a gate of ``gates`` may name that refusal (``freeze@1f2e3d4c``, as the refusal's message
        suggests it); one named without, or left out, covers what refused the action in this state.
        A gate failing now for something else (another freeze, another person on call) is refused,
        nothing recorded: it needs an override of its own. The override records what it passed.
        """
        roles = self._person(actor)
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            lock_progress(s, release_id)  # before any event: the controller's order
            state = state_of(release)
            if seen is not None:
                rules.check_seen(release_id, seen, state, _last_change(s, release))
            action = FORWARD.get(state.status)
            if state.paused_from is not None:
                # An override takes the step forward: of a paused release, it would also resume it,
                # which its pause (a person's, or for missing data) is there to stop.
                raise IllegalTransition(
                    f"release {release_id} is {state.describe()}: a paused release takes no step forward, so there "
                    f"is no gate to override; resume it first (`shiprail release resume {release_id}`), then "
                    f"override what its {FORWARD[state.paused_from].value} refused"
                )
            if action is None:
                raise IllegalTransition(
                    f"release {release_id} is {state.describe()}; there is no gate to override from there"
                    + (f"; {ended_next(state.status, release.plan_file)}" if state.status in TERMINAL else "")
                )
            if action is Action.STAGE:
                self.check_plan_file(release)
            results = self._gate_results(s, release, action, external or {}, actor)
            r = resolved_of(release)
            manual = manual_steps(r)
            gated = gates_for(action, state, len(r.steps), manual)
            failed = [g.value for g, res in results.items() if g in gated and not res.passed]
            reverting = open_rollback(s, release.id) if action is Action.FINISH_ROLLBACK else None
            if action is Action.FINISH_ROLLBACK and (not failed or reverting is None):
                # The router confirmed weight 0 before this override took the release's lock (the
                # controller's confirmation waits for the same progress row): nothing to attest.
                raise OverrideRefused(
                    f"release {release_id}'s revert is confirmed by the router now; nothing was overridden: the "
                    f"controller ends the rollback at its next pass (`shiprail release show {release_id}`)"
                )
            # Two overrides on releases of one service lock different release rows: without one
            # lock both would read "no open post-mortem" (PostgreSQL) and both pass.
            audit.lock_head(s)
            open_pms = s.execute(
                select(Postmortem.id, Postmortem.release_id).where(
                    Postmortem.service == release.service, Postmortem.status == "open"
                )
            ).all()
            # A gate may name the refusal it passes (``freeze@1f2e3d4c``, as refusals suggest it).
            given_gates = [parse_gate(given) for given in gates]
            # A name that is no gate is the first thing wrong with the flags (a typo): said before
            # anything about the refusals it would name.
            unknown = [name for name, _ in given_gates if name not in {x.value for x in Gate}]
            if unknown:
                raise BadInput(  # a typo in a flag: bad input (exit 2), nothing stored
                    f"--gate {unknown[0]!r} is not a gate; the gates of {action.value} are "
                    f"{', '.join(g.value for g in gated)}"
                )
            for given, (name, ref) in zip(gates, given_gates, strict=True):
                problem = None if ref is None else reference_problem(name, ref, release_id)
                if problem is not None:
                    # No refusal has such a reference: a flag mistyped, not a refusal that changed.
                    raise BadInput(f"--gate {given}: {problem}")
            named: dict[str, str | None] = {}
            for name, ref in given_gates:
                if named.get(name) not in (None, ref) and ref is not None:
                    raise BadInput(  # two refusals of one gate: it fails for one thing now
                        f"--gate {named[name]} and --gate {ref} name two refusals of gate {name}; name the one "
                        "you override"
                    )
                named[name] = ref if ref is not None else named.get(name)
            asked = list(named) or failed  # a gate named twice is passed (and recorded) once
            if not failed and Gate.JUDGMENT in gated:
                # The judgment gate passes for any person: what moves such a step on is a promote.
                step = r.steps[release.step or 0]
                raise OverrideRefused(
                    f"step {(release.step or 0) + 1} ({step.weight:g}%) waits for a person to promote it "
                    "(promote: manual), and it needs no override: no gate of its promotion fails for you; "
                    f"promote it with `shiprail release promote {release_id}`"
                )
            rules.check_override(
                who=actor,
                roles=roles,
                owner=release.owner,
                reason=reason,
                former_owners=self._former_owners(s, release),
                override_roles=self.policy.overrides.roles,
                reason_min_chars=self.policy.overrides.reason_min_chars,
                open_postmortems=[(pm_id, rid) for pm_id, rid in open_pms],
                failed_gates=failed,
                asked_gates=asked,
            )
            if Gate.APPROVALS.value in asked:
                # Passing the approvals gate is approving the release: not by whoever created it or
                # changed what it runs, whose approval the gate would not count either.
                rules.require_not_author(actor, self._authors(s, release), "override its approvals gate")
            if action is Action.START:
                # Not a gate: no override passes it. Checked once the flags are (a typo in --gate, a
                # reason too short: bad input, said first) and the person may override at all.
                _check_service_free(s, release)
            if reverting is not None:
                # rolled_back is final and the controller stops driving it: the executive attests that
                # the canary takes no traffic, which only a revert a controller has tried for the limit
                # at which it announces it stuck (revert_stuck) may need; before that the router may yet confirm.
                self._check_revert_stuck(release_id, reverting)
            refused = self._refused_since(s, release, action)
            if action is Action.FINISH_ROLLBACK:
                # Nobody is refused finish_rollback: the controller does not ask while the router has
                # not confirmed. What fails is what rolling_back means, seen with the state (--at).
                refused = {Gate.REVERT_CONFIRMED.value: [Refusal(None, "the router has not confirmed weight 0 yet")]}
            if not gates and not refused:
                # Without --gate an override passes the failed gates of whatever the forward action is
                # when it runs: had the release moved on since the person looked (a stage that landed
                # first), an override meant for Stage's approvals would start the rollout past its
                # tests. A gate nobody has tried has not failed yet.
                raise OverrideRefused(
                    f"release {release_id} has not been refused {action.value} since it became {state.describe()}, "
                    f"so no gate has failed yet: {_try_first(release_id, action)}; or name the gates to pass "
                    f"with --gate (failing now: {', '.join(failed)})"
                )
            unseen = [g for g in failed if g not in refused]
            if not gates and unseen:
                # Nor a gate that fails now and refused nobody here: a freeze that held the step ended
                # and the analysis fails instead (none since a resume, say); the person saw the freeze.
                raise OverrideRefused(
                    f"gate {unseen[0]} fails now, but no {action.value} of release {release_id} was refused on it "
                    f"since it became {state.describe()} (refused on: {', '.join(sorted(refused))}): "
                    f"{_try_first(release_id, action)}; or name the gates to pass with --gate (failing now: "
                    f"{', '.join(failed)})"
                )
            # Each gate passes only for what refused it when its author looked: not another freeze
            # begun since under the same gate, nor another person on call after a handover.
            culprits = {g: refused_by(g, results[Gate(g)].evidence) for g in asked}
            for g in asked:
                seen_here = refused.get(g, [])
                if not covers(g, culprits[g], named.get(g), [r.refused_by for r in seen_here]):
                    raise OverrideRefused(
                        _not_covered(release_id, state, g, results[Gate(g)], culprits[g], named.get(g), seen_here)
                    )
            outcome = transition(
                state,
                action,
                steps=len(r.steps),
                results=results,
                overrides={Gate(g): f"{actor}: {reason}" for g in asked},
                manual=manual,
            )
            self._record(s, release, outcome, actor)
            if outcome.allowed:
                now = self.clock.now()
                # What each gate was refused for, told apart (``domain.refusals``); a gate told by
                # its name alone has none.
                passed_for = {g: c for g, c in culprits.items() if c is not None}
                row = Override(
                    release_id=release.id,
                    action=action.value,
                    gates=canonical_json(asked),
                    refused_by=canonical_json(passed_for),
                    principal=actor,
                    reason=reason,
                    at=now,
                )
                s.add(row)
                s.flush()
                pm = Postmortem(
                    release_id=release.id, service=release.service, override_id=row.id, status="open", opened_at=now
                )
                s.add(pm)
                s.flush()
                self._event_at(
                    s,
                    now,
                    actor,
                    "override.granted",
                    release.id,
                    action=action.value,
                    gates=asked,
                    refused_by=passed_for,
                    reason=reason,
                    override_id=row.id,
                    granted_at=now.isoformat(),
                )
                if reverting is not None:
                    self._confirm_by_hand(s, release, reverting, actor, reason, row.id)
                self._event_at(
                    s,
                    now,
                    actor,
                    "postmortem.opened",
                    release.id,
                    postmortem_id=pm.id,
                    override_id=row.id,
                    opened_at=now.isoformat(),
                    # Whose releases it holds back until closed (the row's service).
                    service=pm.service,
                )
            retro.generate_if_ended(s, release.id, self.clock.now())  # overriding Verify's gates completes it
        if not outcome.allowed:
            raise _gate_failed(release_id, outcome, self.policy.overrides.roles)
        return outcome

    def _check_revert_stuck(self, release_id: str, log: RollbackLog) -> None:
        """Refuse to confirm a revert by hand before a controller has tried the router for
        ``revert_stuck_after`` (counted from its first attempt, ``revert_started_at``)."""
        limit = revert_stuck_after(log)
        if log.revert_started_at is None:
            # Nobody asked the router for weight 0: the executive's word would be the only evidence
            # (no failed attempt, no metrics after), and a router that works would confirm it at once.
            raise OverrideRefused(
                f"release {release_id}'s revert was never tried: no controller has asked the router for weight 0 "
                "yet; start one (`shiprail controller`, or `shiprail serve`, which runs one inside) and confirm it "
                f"by hand only if the router has not confirmed weight 0 {span(limit)} after the controller's first "
                "attempt; nothing was overridden"
            )
        # From the first attempt, not the decision: the time the router had to confirm, which a
        # controller started late (none ran when the rollback was decided) has not given it.
        waited = (self.clock.now() - log.revert_started_at).total_seconds()
        if waited >= limit:
            return
        raise OverrideRefused(
            f"release {release_id}'s revert has been unconfirmed for {span(waited)} only since a controller first "
            "asked the router for weight 0, and a controller (`shiprail controller`) keeps asking: it may be "
            f"confirmed by hand once unconfirmed for {span(limit)} since that first attempt (the limit at which the "
            f"controller announces it stuck), in {span(limit - waited)}; nothing was overridden"
        )

    def _confirm_by_hand(
        self, s: Session, release: Release, log: RollbackLog, actor: str, reason: str, override_id: int
    ) -> None:
        """Close the rollback log as an executive confirmed it, not the router: what every reader shows."""
        now = self.clock.now()
        took = (now - log.detected_at).total_seconds()
        log.revert_confirmed_at = now
        log.met = None if log.max_duration_s is None else took <= log.max_duration_s
        confirmation = {
            "by_hand": True,
            "confirmed": True,
            "confirmed_by": actor,
            "override_id": override_id,
            "reason": reason,
            "summary": f"not read back from the router: confirmed by hand by {actor} (override #{override_id}): "
            f"{reason}",
        }
        log.confirmation = json.dumps(confirmation, sort_keys=True)
        self._event_at(
            s,
            now,
            actor,
            "rollback.confirmed",
            release.id,
            rollback_id=log.id,
            revert_started_at=iso(log.revert_started_at),
            confirmation=confirmation,
            detected_to_confirmed_s=round(took, 4),
            max_duration_s=log.max_duration_s,
            met=log.met,
            by_hand=True,
            override_id=override_id,
        )
        if _stuck_announced(s, release.id):
            # Those told the revert was stuck hear that it ended, and how.
            stuck_s = (now - log.decided_at).total_seconds()
            self._event(
                s,
                actor,
                "rollback.recovered",
                release.id,
                rollback_id=log.id,
                weight=0.0,
                unconfirmed_s=round(stuck_s, 3),
                by_hand=True,
                override_id=override_id,
                reason=f"confirmed by hand by {actor} (override #{override_id}) {span(stuck_s)} after the rollback "
                f"was decided, the router never having confirmed weight 0: {reason}",
            )

    def close_postmortem(self, release_id: str, actor: str, summary: str) -> dict[str, Any]:
        """Write up and close the release's open post-mortem."""
        roles = self._person(actor)
        rules.require_role(actor, roles, POSTMORTEM_ROLES, "close a post-mortem")
        least = rules.written_chars(self.policy.overrides.reason_min_chars)
        if rules.written_length(summary) < least:
            raise BadInput(f"--summary must say what was learned in at least {rules.characters(least)}")
        with self.store.transaction() as s:
            self._load(s, release_id)
            pm = (
                s.execute(
                    select(Postmortem)
                    .where(Postmortem.release_id == release_id, Postmortem.status == "open")
                    .order_by(Postmortem.id)
                    .with_for_update()
                )
                .scalars()
                .first()
            )
            if pm is None:
                raise NotFound(f"release {release_id} has no open post-mortem")
            now = self.clock.now()
            pm.status, pm.closed_at, pm.closed_by, pm.summary = "done", now, actor, summary
            self._event_at(
                s,
                now,
                actor,
                "postmortem.closed",
                release_id,
                postmortem_id=pm.id,
                summary=summary,
                closed_at=now.isoformat(),
            )
            return postmortem_json(pm)

    def handover(self, release_id: str, to: str, actor: str, reason: str | None = None) -> ReleaseView:
        """Make ``to`` the person on call for the release, from Stage until it ends; audited.

        The person on call, the owner or an executive may hand over; ``to`` must hold the role
        ``oncall`` in shiprail.yaml now. Refused before Stage (the plan names the person then, and
        may still change) and once the release has ended.
        """
        roles = self._person(actor)
        with self.store.transaction() as s:
            release = self._load(s, release_id, lock=True)
            current = _on_call_now(s, release)
            self._check_handover_to(to, current)
            state = state_of(release)
            if state.status in TERMINAL:
                raise IllegalTransition(
                    f"release {release_id} is {state.describe()}: it has ended, and nobody is on call for it any more"
                )
            if release.frozen_at is None:
                # Until Stage freezes the plan, `release update` may name another verify.on_call: a
                # handover made before it would then outlive the plan that replaced its person.
                raise IllegalTransition(
                    f"release {release_id} is {state.describe()}: until it is staged, who is on call is its plan's "
                    f"verify.on_call ({current}); change it there and run `shiprail release update {release_id} "
                    f"{display_name(Path(release.plan_file))}`"
                )
            if actor not in (current, release.owner):
                rules.require_role(
                    actor,
                    roles,
                    HANDOVER_ROLES,
                    f"hand over who is on call for {release_id} (on call: {current}, owner: {release.owner})",
                )
            if to == current:
                raise BadInput(f"--to {to}: {to} is already on call for {release_id}; name who takes over")
            self._event(s, actor, HANDOVER_EVENT, release_id, **{"from": current}, to=to, reason=reason)
            return self._view(s, release)

    def _check_handover_to(self, to: str, current: str) -> None:
        """Refuse ``to`` unless shiprail.yaml names them with the role oncall; ``current``: who is on call now.

        The refusal names who else could take over: those with the role, but not ``current``, who
        would hand over to themselves.
        """
        people = self.policy.people
        others = [name for name in self.policy.holding(ON_CALL_ROLE) if name != current]
        if others:
            hint = f"hand over to someone who has it ({', '.join(others)})"
        else:
            hint = f"give that role to someone besides {current} first"
        if to not in people:
            raise BadInput(
                f"--to {to!r} is not a person in shiprail.yaml; add them under people with the role "
                f"{ON_CALL_ROLE}, or {hint}"
            )
        if ON_CALL_ROLE not in people[to].roles:
            held = ", ".join(people[to].roles) or "no role"
            raise BadInput(
                f"--to {to} cannot be on call: that needs the role {ON_CALL_ROLE} in shiprail.yaml, and "
                f"{to} has {held}; give {to} the role, or {hint}"
            )

    # ------------------------------------------------------------------------------ reading

    def on_call_now(self, release_id: str) -> str:
        """Who is on call for the release now: the last handover's person, else the plan's."""
        with self.store.transaction() as s:
            return _on_call_now(s, self._load(s, release_id))

    def for_plan_file(self, path: Path) -> str:
        """The id of the latest release of the plan at ``path`` that has not ended."""
        where = str(path.resolve())
        with self.store.transaction() as s:
            rows = s.execute(
                select(Release.id, Release.status).where(Release.plan_file == where).order_by(Release.created_at.desc())
            ).all()
        live = [rid for rid, status in rows if Status(status) not in TERMINAL]
        if live:
            return str(live[0])
        if rows:
            # Refused as an action on that ended release by its id is (exit 1): the file names releases, all over.
            raise IllegalTransition(
                f"every release of {path} has ended (latest: {rows[0][0]}, {rows[0][1]}); create a new release of "
                f"it: `shiprail release create {path}`"
            )
        raise NotFound(f"no release of {path}; create one with `shiprail release create {path}`")

    def get(self, release_id: str) -> ReleaseView:
        with self.store.transaction() as s:
            return self.view_in(s, release_id)

    def view_in(self, s: Session, release_id: str) -> ReleaseView:
        """``get`` within a session the caller holds (a snapshot read together with other records)."""
        return self._view(s, self._load(s, release_id))

    def overview(self, ended: int) -> tuple[list[ReleaseView], list[ReleaseView], int]:
        """The releases under way (full views: where each stands), the ``ended`` latest that ended
        (rows as ``list`` has them), and how many ended in all; newest first, from one snapshot.

        What serve's list page shows at every reload: read without a view of every release ever made.
        """
        terminal = [st.value for st in TERMINAL]
        newest = (Release.created_at.desc(), Release.id)
        with self.store.snapshot() as s:
            live = s.execute(select(Release).where(Release.status.not_in(terminal)).order_by(*newest)).scalars()
            under_way = [self._view(s, r) for r in live]
            last = s.execute(select(Release).where(Release.status.in_(terminal)).order_by(*newest).limit(ended))
            latest = [self._view(s, r, full=False) for r in last.scalars()]
            total = s.execute(select(func.count()).select_from(Release).where(Release.status.in_(terminal)))
            return under_way, latest, int(total.scalar_one())

    def list(
        self, status: str | None = None, *, service: str | None = None, limit: int | None = None
    ) -> list[ReleaseView]:
        """Releases newest first: only those in ``status``, of ``service``, the ``limit`` newest (None: all)."""
        with self.store.transaction() as s:
            query = select(Release).order_by(Release.created_at.desc(), Release.id)
            if status:
                query = query.where(Release.status == status)
            if service:
                query = query.where(Release.service == service)
            if limit is not None:
                query = query.limit(limit)
            return [self._view(s, r, full=False) for r in s.execute(query).scalars()]

    def _view(self, s: Session, release: Release, full: bool = True) -> ReleaseView:
        r = resolved_of(release)
        state = state_of(release)
        view = ReleaseView(
            id=release.id,
            service=release.service,
            version=release.version,
            baseline=release.baseline,
            owner=release.owner,
            risk=release.risk,
            status=release.status,
            state=state.describe(),
            step=release.step,
            weight=None if release.step is None else r.steps[release.step].weight,
            created_at=release.created_at,
            state_since=release.state_since,
            frozen_at=release.frozen_at,
            plan_file=release.plan_file,
            plan_hash=release.plan_hash,
            contract_hash=release.contract_hash,
            resolved_hash=resolved_hash_of(release),
            resolved=r,
        )
        if not full:
            return view
        rid = release.id
        # An approval or sign-off by anyone the plan has named its owner: the gates never count it.
        owners = self._former_owners(s, release) | {release.owner}
        view.approvals = [approval_json(a, view.resolved_hash) for a in of_release(s, Approval, rid)]
        view.gates = [gate_json(g) for g in of_release(s, GateEvaluation, rid)]
        # Planned, an approval counts only while its approver may still approve (the Stage gate
        # judges them then); once staged, the approvals counted are those Stage counted, and those
        # that had lapsed then stay lapsed (its evidence), whatever shiprail.yaml says since.
        # So too an approval by an author (who created the release, or changed what it runs): never
        # counted planned; once staged, those Stage did not count as authors (its evidence), and not
        # those a shiprail before that rule counted there.
        if release.status == Status.PLANNED.value:
            lapsed = self._lapsed([a["by"] for a in view.approvals])
            authors = set(self._authors(s, release))
        else:
            judged = last_evidence(view.gates, Action.STAGE.value, Gate.APPROVALS.value)
            lapsed, authors = set(judged.get("lapsed", ())), set(judged.get("authors", ()))
        for a in view.approvals:
            a["lapsed"] = a["by"] in lapsed
            a["by_owner"] = a["by"] in owners
            a["by_author"] = a["by"] in authors and not a["by_owner"]
        view.signoffs = [signoff_json(x) for x in of_release(s, Signoff, rid)]
        # Before the rollout starts, a sign-off counts only while its qa still holds the role; once
        # started, one the qa gate did not count there (an executive overrode it) stays lapsed.
        before_start = release.status in (Status.PLANNED.value, Status.STAGING.value)
        started = {} if before_start else last_evidence(view.gates, Action.START.value, Gate.QA.value)
        unsigned = started.get("unsigned", ())
        for x in view.signoffs:
            x["by_owner"] = x["by"] in owners
            x["lapsed"] = not self._holds_qa(x["by"]) if before_start else x["item"] in unsigned and not x["by_owner"]
        view.overrides = [override_json(o) for o in of_release(s, Override, rid)]
        view.postmortems = [postmortem_json(p) for p in of_release(s, Postmortem, rid)]
        view.progress = progress_to_json(load_progress(s, rid))
        last = latest_analysis(s, rid)
        view.last_analysis = analysis_json(last) if last else None
        view.rollbacks = [rollback_json(x) for x in of_release(s, RollbackLog, rid)]
        lease = s.get(Lease, rid)
        if lease is not None:
            from shiprail.controller.leases import now_in

            view.controller = {"holder": lease.holder, "lease_until": lease.expires_at.isoformat()}
            # By the clock the controllers time their leases by (PostgreSQL's), not this host's.
            view.lease_lapsed = lease.expires_at <= now_in(s, self.clock)
        # Over, the release's weight is nobody's to retry (a revert confirmed by hand past a dead router).
        view.router_trouble = None if state.status in TERMINAL else router_trouble(s, rid)
        if state.status is Status.ROLLING_BACK and (view.router_trouble or {}).get("weight") != 0:
            # A step's weight the router failed at before the rollback: nobody tries it any more
            # (weight 0 is tried at once), so "cannot apply 10%" would misstate what is stuck.
            view.router_trouble = None
        if release.status == Status.ROLLING_OUT.value:
            view.held = current_hold(s, release, now=self.clock.now())
        view.handovers = _handovers(s, rid)
        view.on_call = str(view.handovers[-1]["to"]) if view.handovers else r.on_call
        view.dry_runs = dry_run_breaches(s, rid) if r.contract.dry_runs() else []
        if release.status == Status.PAUSED.value:
            view.paused = _pause(
                s,
                rid,
                for_missing_data=bool(view.progress.get("paused_for_no_data")),
                provider_failing=bool(view.progress.get("provider_failing")),
            )
        return view


def _pause(s: Session, release_id: str, *, for_missing_data: bool, provider_failing: bool) -> dict[str, Any] | None:
    """The pause a paused release is in: who paused it (a person, or the controller for missing
    data, ``provider_failing`` when the metrics provider failed), when and why (``--reason``, or the
    controller's); None if no pause was recorded."""
    row = _last_transition(s, release_id)
    if row is None:
        return None
    p = audit.payload_of(row)
    if p.get("action") != Action.PAUSE.value:
        return None
    return {
        "by": row.actor,
        "at": row.at.isoformat(),
        "reason": p.get("reason"),
        "for_missing_data": for_missing_data,
        "provider_failing": provider_failing,
    }


def _handovers(s: Session, release_id: str) -> list[dict[str, Any]]:
    """The release's on-call handovers, oldest first: at, by, from, to, reason."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.release_id == release_id, AuditEvent.kind == HANDOVER_EVENT)
        .order_by(AuditEvent.seq)
    )
    out: list[dict[str, Any]] = []
    for row in s.execute(query).scalars():
        p = json.loads(row.payload) if isinstance(row.payload, str) else dict(row.payload)
        out.append(
            {"at": row.at.isoformat(), "by": row.actor, "from": p["from"], "to": p["to"], "reason": p.get("reason")}
        )
    return out


# What each action did to a release, in words: "alice staged it".
DONE: dict[Action, str] = {
    Action.STAGE: "staged",
    Action.START: "started the rollout of",
    Action.PROMOTE: "promoted",
    Action.COMPLETE: "completed",
    Action.PAUSE: "paused",
    Action.RESUME: "resumed",
    Action.ROLLBACK: "rolled back",
    Action.FINISH_ROLLBACK: "finished the rollback of",
}


def ended_next(status: Status | str, plan_file: str) -> str:
    """What a person does next about a release that has ended (``status`` terminal): a new release.

    A rolled-back release is never started again (Argo's ``retry``): its plan makes a new release,
    ``checkout-2.4.0-2``, which is approved and staged afresh.
    """
    if Status(status) is Status.ROLLED_BACK:
        return f"to try again, create a new release of its plan: `shiprail release create {plan_file}`"
    return "to change what runs now, create a new release: `shiprail release create PLAN_FILE`"


def _last_transition(s: Session, release_id: str) -> AuditEvent | None:
    """The release's latest ``release.transitioned`` event; None before its first change of state."""
    return s.execute(
        select(AuditEvent)
        .where(AuditEvent.release_id == release_id, AuditEvent.kind == TRANSITIONED_EVENT)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).scalar_one_or_none()


def _last_change(s: Session, release: Release) -> str:
    """What last changed the release's state, in words: who did what, when, from and to."""
    row = _last_transition(s, release.id)
    if row is None:
        return f"it has been {state_of(release).describe()} since it was created at {_utc(release.created_at)}"
    p = json.loads(row.payload) if isinstance(row.payload, str) else dict(row.payload)
    return f"{row.actor} {DONE[Action(p['action'])]} it at {_utc(row.at)} ({p['from']} → {p['to']})"


def _on_call_now(s: Session, release: Release) -> str:
    """Who is on call for the release: the last handover's person, else the plan's ``verify.on_call``
    (or its service's default)."""
    handed = _handovers(s, release.id)
    return str(handed[-1]["to"]) if handed else resolved_of(release).on_call


def _probes_gate(s: Session, release: Release, names: Sequence[str]) -> GateResult:
    """Every probe passed in the latest analysis of Verify."""
    if not names:
        return GateResult(Gate.PROBES, True, "no probes in the plan")
    row = latest_analysis(s, release.id)
    got = {r["trigger"]: r for r in json.loads(row.results)} if row and row.status == release.status else {}
    # What refuses the gate (``shiprail.domain.refusals``): every probe not run or not passing.
    failing = {"failing": [n for n in names if n not in got or got[n]["verdict"] != "pass"]}
    missing = [n for n in names if n not in got]
    if missing:
        return GateResult(Gate.PROBES, False, f"{missing[0]} has not run in Verify yet", failing)
    failed = [got[n] for n in names if got[n]["verdict"] != "pass"]
    if failed:
        return GateResult(Gate.PROBES, False, f"{failed[0]['trigger']} failed: {failed[0]['reason']}", failing)
    return GateResult(Gate.PROBES, True, f"{len(names)} probe(s) passed at {_utc(row.at) if row else ''}")


def _stuck_announced(s: Session, release_id: str) -> bool:
    found = s.execute(
        select(AuditEvent.seq).where(AuditEvent.release_id == release_id, AuditEvent.kind == "rollback.stuck").limit(1)
    ).first()
    return found is not None


def _check_service_free(s: Session, release: Release) -> None:
    """``IllegalTransition`` when another release of the service holds its router.

    Two releases of one service rolling out at once would each find the other's weight, record
    it as drift and set their own, for ever: neither would bake, and the canary's traffic would
    flip between them. Not a gate an override could pass: one release rolls out at a time.
    """
    # Every writer takes the chain head: two starts of one service cannot both pass this check.
    audit.lock_head(s)
    holding = [status.value for status in ON_THE_ROUTER]
    busy = or_(
        Release.status.in_(holding), and_(Release.status == Status.PAUSED.value, Release.paused_from.in_(holding))
    )
    other = s.execute(
        select(Release).where(Release.service == release.service, Release.id != release.id, busy).limit(1)
    ).scalar_one_or_none()
    if other is None:
        return
    if other.status == Status.ROLLING_BACK.value:
        # Already reverting: it ends when its router confirms weight 0, which only a controller
        # applies; a rollback of it is refused, so that is not the way out to name.
        then = (
            "it ends once a controller (`shiprail controller`) has its router confirm weight 0; "
            f"`shiprail release show {other.id}` says what holds it"
        )
    else:
        then = f"wait for it to end, or roll it back (`shiprail release rollback {other.id}`)"
    raise IllegalTransition(
        f"release {other.id} of {release.service} is {state_of(other).describe()}: one release of a service "
        f"rolls out at a time; {then}"
    )


def _analysis_gate(s: Session, release: Release, weight: float) -> GateResult:
    """The latest contract analysis of the release where it stands now, at the step's ``weight``: passed, or not.

    An analysis of the weight the router still held (a new one it has not confirmed yet) judges
    that weight, not the step's: a step whose weight never took is not shown to pass.
    """
    # What refuses the gate (``shiprail.domain.refusals``): the triggers that did not pass in the
    # analysis judged; none when no analysis counts yet (none at this step, or since a resume, or at
    # the step's confirmed weight).
    none_counts: dict[str, Any] = {"failing": []}
    row = latest_analysis(s, release.id)
    if row is None or row.status != release.status or row.step != release.step:
        return GateResult(Gate.ANALYSIS, False, "no analysis of the contract at this step yet", none_counts)
    progress = load_progress(s, release.id)
    if progress.bake_from is not None and row.at < progress.bake_from:
        # Resumed since: what the canary did while paused has not been judged passing yet.
        why = f"no analysis since the release resumed at {_utc(progress.bake_from)}"
        return GateResult(Gate.ANALYSIS, False, why, analysis_json(row) | none_counts)
    applied = progress.applied_weight
    if applied != weight:
        held = "no confirmed weight" if applied is None else f"{applied:g}%"
        why = f"the router has not confirmed {weight:g}% for this step yet (it holds {held})"
        return GateResult(Gate.ANALYSIS, False, why, analysis_json(row) | none_counts)
    if row.weight != weight:
        judged = "no weight" if row.weight is None else f"{row.weight:g}%"
        why = f"no analysis at {weight:g}% yet: the latest ({_utc(row.at)}) judged {judged}"
        return GateResult(Gate.ANALYSIS, False, why, analysis_json(row) | none_counts)
    if row.verdict != "pass":
        # A dry run's verdict never made the analysis's: it refuses nothing, so its failing (or
        # passing again) must not change what refuses the gate, nor the override that covers it.
        # Nor does a skipped trigger (a comparison with a baseline that serves nothing): it neither
        # fails nor holds the release (domain.contract).
        failing = [
            r["trigger"]
            for r in json.loads(row.results)
            if r["verdict"] not in ("pass", "skipped") and not r.get("dry_run")
        ]
        return GateResult(
            Gate.ANALYSIS,
            False,
            f"the latest analysis ({_utc(row.at)}) was {row.verdict}",
            analysis_json(row) | {"failing": failing},
        )
    return GateResult(Gate.ANALYSIS, True, f"every trigger passed at {_utc(row.at)}", analysis_json(row))


def _utc(at: datetime) -> str:
    """A time in a gate's reason, as the records write times: ``2026-11-28 04:47:15 UTC``."""
    return f"{(at.astimezone(UTC) if at.tzinfo else at):%Y-%m-%d %H:%M:%S} UTC"


def _try_first(release_id: str, action: Action) -> str:
    """How a person has ``action``'s gates evaluated, so that what fails can be overridden."""
    if action is Action.COMPLETE:
        return "only the controller tries to complete a release, once its validation window has passed"
    return f"run `shiprail release {action.value} {release_id}` first and override what it refuses"


def _not_covered(
    release_id: str,
    state: ReleaseState,
    gate: str,
    now: GateResult,
    culprits: list[Any] | None,
    named: str | None,
    seen: Sequence[Refusal],
) -> str:
    """Why an override does not cover what refuses ``gate`` now (``domain.refusals.covers`` said so)."""
    ref = reference(gate, culprits)
    if named is not None:
        what = next((r.reason for r in seen if reference(gate, r.refused_by) == named), None)
        was = f"the refusal you override ({named}{f': {what}' if what else ''})"
    else:
        others = list(
            dict.fromkeys(
                r.reason
                for r in seen
                if r.refused_by is not None and (culprits is None or not within(culprits, r.refused_by))
            )
        )
        was = f"what refused it since it became {state.describe()} ({'; '.join(others)})"
    return (
        f"gate {gate} of release {release_id} fails now for {now.reason}, not for {was}: an override covers the "
        f"refusal its author saw, so this one needs an override of its own; nothing was overridden. Look again "
        f"(`shiprail release show {release_id}`) and override it with --gate {ref}"
    )


def _store_evaluation(
    s: Session, release_id: str, action: Action, ev: Evaluation, actor: str, at: datetime
) -> GateEvaluation:
    row = GateEvaluation(
        release_id=release_id,
        action=action.value,
        gate=ev.gate.value,
        verdict=ev.verdict,
        reason=ev.reason,
        evidence=canonical_json(dict(ev.evidence)),
        actor=actor,
        at=at,
    )
    s.add(row)
    return row


def manual_steps(r: ResolvedRelease) -> frozenset[int]:
    """The steps (by index) a person promotes: ``promote: manual``."""
    return frozenset(i for i, step in enumerate(r.steps) if step.promote == "manual")


def _gate_failed(release_id: str, outcome: Outcome, override_roles: Sequence[str]) -> GateFailed:
    first = next(e for e in outcome.evaluations if e.verdict == "fail")
    names = ", ".join(g.value for g in outcome.failed)
    # --at: the state refused, so that the override is refused if the release has moved on meanwhile;
    # --gate: the gates refused, so that it is refused if another gate fails there by then (a freeze
    # began, a new test run failed and someone else's attempt was refused on it).
    at = shlex.quote(outcome.before.describe())
    # Each gate with the refusal it makes (``freeze@1f2e3d4c``): the override covers that refusal,
    # not another the gate makes by the time it runs (another freeze, another person on call).
    evidence = {e.gate: e.evidence for e in outcome.evaluations}
    named = "".join(f" --gate {reference(g, refused_by(g, evidence[g]))}" for g in outcome.failed)
    return GateFailed(
        f"release {release_id} cannot {outcome.action.value}: gate {first.gate.value} failed ({first.reason}); "
        f"fix it and try again, or someone with the role {' or '.join(override_roles)} may pass it with "
        f"`shiprail release override {release_id} --at {at}{named} --reason ...` (failed: {names})",
        [g.value for g in outcome.failed],
    )


def _judged_already(release: Release, judged: str, what: str) -> str:
    """Why ``what`` (an approval, a QA sign-off) of ``release`` can no longer be revoked: its gate was ``judged``."""
    state = state_of(release)
    then = (
        ended_next(state.status, release.plan_file)
        if state.status in TERMINAL
        else f"to stop the release, roll it back (`shiprail release rollback {release.id}`)"
    )
    return (
        f"release {release.id} is {state.describe()}: {judged}, so {what} can no longer be revoked; nothing was "
        f"changed; {then}"
    )


def _checklist_item(checklist: Sequence[str], item: str, release_id: str) -> str:
    if not checklist:
        raise NotFound(f"release {release_id} has no QA checklist")
    # is_digits: str.isdigit() is also true of "²", which int() refuses (a traceback).
    if is_digits(item) and 1 <= int(item) <= len(checklist):
        return checklist[int(item) - 1]
    if item in checklist:
        return item
    numbered = "; ".join(f"{i}. {text}" for i, text in enumerate(checklist, 1))
    raise NotFound(f"{item!r} is not an item of the QA checklist of {release_id}; give its number or text: {numbered}")
