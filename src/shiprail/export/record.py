"""Everything the store holds about one release, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from shiprail.domain.rollout import progress_to_json
from shiprail.errors import NotFound, ShiprailError
from shiprail.schema.resolved import ResolvedRelease, resolved_hash
from shiprail.schema.source import SourceDoc, parse_yaml
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
from shiprail.store.rollouts import analysis_json, load_progress, rollback_json
from shiprail.store.rows import (
    approval_json,
    check_run_json,
    gate_json,
    of_release,
    override_json,
    postmortem_json,
    signoff_json,
)


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
    resolved_hash: str
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
    # The resolved release as stored (what ``resolved_hash`` is the hash of); None: ``resolved`` dumped.
    resolved_text: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the release is over (complete or rolled back)."""
        return self.status in ("complete", "rolled_back")

    def plan_scope(self) -> dict[str, Any]:
        """The plan's ``scope`` as written (its ``changes`` and ``user_facing`` are not in the resolved plan)."""
        doc = self._plan_doc
        scope = doc.data.get("scope") if doc is not None and isinstance(doc.data, dict) else None
        return scope if isinstance(scope, dict) else {}

    @cached_property
    def _plan_doc(self) -> SourceDoc | None:
        # Read as validation read it (YAML 1.2 numbers and booleans): '- 1:30' is the text 1:30, not 90.
        # Once per record: the notes, the package and the retrospective each ask for its scope.
        try:
            return parse_yaml(self.plan_text, self.plan_file)
        except ShiprailError:
            return None

    def changes(self) -> list[str]:
        """The plan's list of changes, one line each, as written (an unquoted ``- 1.10`` stays 1.10)."""
        items = self.plan_scope().get("changes")
        if not isinstance(items, list):
            return []
        doc = self._plan_doc
        written = doc.numbers if doc is not None else {}
        return [written.get(("scope", "changes", i), str(c)) for i, c in enumerate(items)]

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
        resolved_hash=resolved_hash(release.resolved),
        resolved=ResolvedRelease.model_validate_json(release.resolved),
        events=list(audit.rows(session, rid)),
        approvals=[approval_json(a, resolved_hash(release.resolved)) for a in of_release(session, Approval, rid)],
        signoffs=[signoff_json(x) for x in of_release(session, Signoff, rid)],
        check_runs=[check_run_json(c) for c in of_release(session, CheckRun, rid)],
        gates=[gate_json(g) for g in of_release(session, GateEvaluation, rid)],
        overrides=[override_json(o) for o in of_release(session, Override, rid)],
        postmortems=[postmortem_json(p) for p in of_release(session, Postmortem, rid)],
        rollbacks=[rollback_json(x) for x in of_release(session, RollbackLog, rid)],
        analyses=[{"id": a.id, **analysis_json(a)} for a in of_release(session, Analysis, rid)],
        progress=progress_to_json(load_progress(session, rid)),
        head_seq=head_seq,
        head_hash=head_hash,
        resolved_text=release.resolved,
    )
