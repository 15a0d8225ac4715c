"""A release's stored records as JSON-ready dicts: one shape for every reader.

``release show --json`` (``shiprail.releases``) and the release record behind retrospectives,
packages and notes (``shiprail.export.record``) both read these rows; they describe them alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shiprail.domain.refusals import reference, refused_by
from shiprail.store.models import Approval, CheckRun, GateEvaluation, Override, Postmortem, Signoff


def of_release(session: Session, model: Any, release_id: str) -> list[Any]:
    """Every row of ``model`` (a table with ``release_id``) for the release, oldest first."""
    return list(session.execute(select(model).where(model.release_id == release_id).order_by(model.id)).scalars())


def iso(at: datetime | None) -> str | None:
    """ISO 8601, or None."""
    return at.isoformat() if at else None


def approval_json(a: Approval, resolved_hash: str) -> dict[str, Any]:
    """An approval; ``current`` when it approved the release as it runs now (its ``resolved_hash``).

    ``resolved_hash`` is None for an approval stored before approvals were tied to the resolved
    release that could not be told to be of the release as it is now (migration 0010).
    """
    return {
        "by": a.principal,
        "at": iso(a.at),
        "plan_hash": a.plan_hash,
        "resolved_hash": a.resolved_hash,
        "current": a.resolved_hash == resolved_hash,
    }


def signoff_json(x: Signoff) -> dict[str, Any]:
    return {"item": x.item, "by": x.principal, "at": iso(x.at)}


def check_run_json(c: CheckRun) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "name": c.name,
        "passed": c.passed,
        "summary": c.summary,
        "evidence": json.loads(c.evidence),
        "at": iso(c.at),
    }


def gate_json(g: GateEvaluation) -> dict[str, Any]:
    """A gate evaluation; a refusal (``fail`` or ``overridden``) whose gate tells what refused it
    apart also has ``refusal``, the reference an override of it names (``shiprail.domain.refusals``)."""
    evidence = json.loads(g.evidence)
    refusal = refusal_of(g.gate, g.verdict, evidence)
    return {
        "id": g.id,
        "action": g.action,
        "gate": g.gate,
        "verdict": g.verdict,
        "reason": g.reason,
        "evidence": evidence,
        "by": g.actor,
        "at": iso(g.at),
    } | ({} if refusal is None else {"refusal": refusal})


def refusal_of(gate: str, verdict: str, evidence: Mapping[str, Any]) -> str | None:
    """The reference of a gate evaluation's refusal, read from its evidence; None for a pass, or for a
    refusal its gate does not tell apart (``shiprail.domain.refusals``)."""
    culprits = None if verdict == "pass" else refused_by(gate, evidence)
    return None if culprits is None else reference(gate, culprits)


def override_json(o: Override) -> dict[str, Any]:
    """An override; ``refused_by``: what refused each gate it passed (gate -> what), None for an
    override stored before refusals were told apart (it passed its gates by name)."""
    return {
        "id": o.id,
        "action": o.action,
        "gates": json.loads(o.gates),
        "refused_by": None if o.refused_by is None else json.loads(o.refused_by),
        "by": o.principal,
        "reason": o.reason,
        "at": iso(o.at),
    }


def postmortem_json(pm: Postmortem) -> dict[str, Any]:
    return {
        "id": pm.id,
        "release_id": pm.release_id,
        "service": pm.service,
        "override_id": pm.override_id,
        "status": pm.status,
        "opened_at": iso(pm.opened_at),
        "closed_at": iso(pm.closed_at),
        "closed_by": pm.closed_by,
        "summary": pm.summary,
    }
