"""Everything the store holds about one release, read in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from shiprail.domain.rollout import progress_to_json
from shiprail.errors import NotFound
from shiprail.schema.resolved import ResolvedRelease
from shiprail.store import audit
from shiprail.store.audit import EventRow
from shiprail.store.models import (
    Analysis,
    Approval,
    CheckRun,
    GateEvaluation,
    Override,
    Postmortem,
    Release,
    RollbackLog,
    Signoff,
)
from shiprail.store.rollouts import load_progress, rollback_json


def iso(at: datetime | None) -> str | None:
    """ISO 8601, or None."""
    return at.isoformat() if at else None


@dataclass(frozen=True, eq=False)
class ReleaseRecord:
    """One release and every record of it: the input of retrospectives, packages and notes.

    Compared and hashed by identity, so derivations can be cached per record.
    """

    id: str
    service: str
    version: str
    baseline: str
    owner: str
    risk: str
    status: str
    step: int | None
    paused_from: str | None
    created_at: datetime
    state_since: datetime
    frozen_at: datetime | None
    plan_file: str
    plan_text: str
    plan_hash: str
    contract_hash: str
    resolved: ResolvedRelease
    events: list[EventRow] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    signoffs: list[dict[str, Any]] = field(default_factory=list)
    check_runs: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    postmortems: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    analyses: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    # The audit chain's head when the record was read: (seq, hash).
    head_seq: int = 0
    head_hash: str = audit.GENESIS

    @property
    def ended(self) -> bool:
        """Whether the release is over (complete or rolled back)."""
        return self.status in ("complete", "rolled_back")

    def plan_scope(self) -> dict[str, Any]:
        """The plan's ``scope`` as written (its ``changes`` and ``user_facing`` are not in the resolved plan)."""
        try:
            doc = yaml.safe_load(self.plan_text)
        except yaml.YAMLError:
            return {}
        scope = doc.get("scope") if isinstance(doc, dict) else None
        return scope if isinstance(scope, dict) else {}

    def changes(self) -> list[str]:
        """The plan's list of changes, one line each."""
        items = self.plan_scope().get("changes")
        return [str(c) for c in items] if isinstance(items, list) else []

    def user_facing(self) -> bool | None:
        """Whether the plan says users notice the change."""
        value = self.plan_scope().get("user_facing")
        return value if isinstance(value, bool) else None


def load_record(session: Session, release_id: str) -> ReleaseRecord:
    """Read the release ``release_id`` and all its records; ``NotFound`` when there is none."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release {release_id!r}; `shiprail release list` shows them")
    rid = release.id

    def rows(model: Any) -> list[Any]:
        return list(session.execute(select(model).where(model.release_id == rid).order_by(model.id)).scalars())

    head_seq, head_hash = audit.head(session)
    return ReleaseRecord(
        id=rid,
        service=release.service,
        version=release.version,
        baseline=release.baseline,
        owner=release.owner,
        risk=release.risk,
        status=release.status,
        step=release.step,
        paused_from=release.paused_from,
        created_at=release.created_at,
        state_since=release.state_since,
        frozen_at=release.frozen_at,
        plan_file=release.plan_file,
        plan_text=release.plan_text,
        plan_hash=release.plan_hash,
        contract_hash=release.contract_hash,
        resolved=ResolvedRelease.model_validate_json(release.resolved),
        events=list(audit.rows(session, rid)),
        approvals=[
            {"by": a.principal, "at": iso(a.at), "plan_hash": a.plan_hash, "current": a.plan_hash == release.plan_hash}
            for a in rows(Approval)
        ],
        signoffs=[{"item": x.item, "by": x.principal, "at": iso(x.at)} for x in rows(Signoff)],
        check_runs=[
            {
                "kind": c.kind,
                "name": c.name,
                "passed": c.passed,
                "summary": c.summary,
                "evidence": json.loads(c.evidence),
                "at": iso(c.at),
            }
            for c in rows(CheckRun)
        ],
        gates=[
            {
                "id": g.id,
                "action": g.action,
                "gate": g.gate,
                "verdict": g.verdict,
                "reason": g.reason,
                "evidence": json.loads(g.evidence),
                "by": g.actor,
                "at": iso(g.at),
            }
            for g in rows(GateEvaluation)
        ],
        overrides=[
            {
                "id": o.id,
                "action": o.action,
                "gates": json.loads(o.gates),
                "by": o.principal,
                "reason": o.reason,
                "at": iso(o.at),
            }
            for o in rows(Override)
        ],
        postmortems=[
            {
                "id": p.id,
                "override_id": p.override_id,
                "status": p.status,
                "opened_at": iso(p.opened_at),
                "closed_at": iso(p.closed_at),
                "closed_by": p.closed_by,
                "summary": p.summary,
            }
            for p in rows(Postmortem)
        ],
        rollbacks=[rollback_json(x) for x in rows(RollbackLog)],
        analyses=[
            {
                "id": a.id,
                "at": iso(a.at),
                "status": a.status,
                "step": a.step,
                "weight": a.weight,
                "verdict": a.verdict,
                "results": json.loads(a.results),
            }
            for a in rows(Analysis)
        ],
        progress=progress_to_json(load_progress(session, rid)),
        head_seq=head_seq,
        head_hash=head_hash,
    )
