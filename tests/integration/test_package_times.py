"""The times rows keep beside their events, in a release package (SQLite and PostgreSQL).

When a release was created, entered its state and froze its contract, when a post-mortem was
opened and closed, when a rollback was decided and its revert began: each row is written with the
clock read its audit event records (its ``at``, and stated in its payload), so ``release
verify-package`` compares them exactly, and a row rewritten behind the chain's back is named.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shiprail.clock import SimulatedClock
from shiprail.releases import Releases
from shiprail.store import audit
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
from tests.integration.test_retro_export import _export, events, rolled_back
from tests.integration.test_retro_export import cli as cli  # a fixture, on this file's svc
from tests.integration.test_retro_export import probe_target as probe_target  # a fixture
from tests.integration.test_retro_export import svc as svc  # a fixture, with its clock ticking (below)

SUMMARY = "Holiday rota needs two approvers."


class TickingClock(SimulatedClock):
    """A simulated clock that moves on by a millisecond at every read, as a wall clock does between
    two reads (seconds apart under lock waits): a row and its event that read it apart differ."""

    def now(self) -> datetime:
        return self.advance(timedelta(milliseconds=1))


@pytest.fixture(autouse=True)
def ticking(svc: Releases) -> None:
    """test_retro_export's release service (SQLite and PostgreSQL), its clock ticking at every read."""
    svc.clock = TickingClock()


def ended(svc: Releases) -> str:
    """A release rolled back by its contract, its override's post-mortem closed."""
    rid = rolled_back(svc)
    svc.close_postmortem(rid, "dana", SUMMARY)
    return rid


# Each row time (column), its table, and the event that states it under the column's name.
CASES = {
    "created_at": (Release, "release.created"),
    "state_since": (Release, "release.transitioned"),
    "frozen_at": (Release, "contract.frozen"),
    "opened_at": (Postmortem, "postmortem.opened"),
    "closed_at": (Postmortem, "postmortem.closed"),
    "decided_at": (RollbackLog, "rollback.decided"),
    "revert_started_at": (RollbackLog, "router.intent"),
}


def test_an_untouched_release_package_verifies_with_each_row_time_its_events_time(
    svc: Releases, cli: Any, tmp_path: Path
) -> None:
    """Each row time is the instant its event records, though the clock moved at every read: the
    package holds, on its own and against the store."""
    rid = ended(svc)
    stated = {}
    for e in events(svc, rid):
        payload = audit.payload_of(e)
        for key, (_, kind) in CASES.items():
            if e.kind == kind and key in payload:
                assert datetime.fromisoformat(payload[key]) == e.at, (e.kind, key)
                stated[key] = e.at
    with svc.store.transaction() as s:
        release, pm, log = s.get(Release, rid), s.get(Postmortem, 1), s.get(RollbackLog, 1)
        assert release is not None and pm is not None and log is not None
        rows = {"created_at": release.created_at, "state_since": release.state_since, "frozen_at": release.frozen_at}
        rows |= {"opened_at": pm.opened_at, "closed_at": pm.closed_at}
        rows |= {"decided_at": log.decided_at, "revert_started_at": log.revert_started_at}
    assert stated == rows
    # The records the gates read, each stored with the clock read its event states and is at; an
    # analysis with the time it read its window up to (its event is appended once its queries are back).
    for model, kind, key in GATE_RECORDS:
        said = [audit.payload_of(e)[key] for e in events(svc, rid) if e.kind == kind]
        assert said and all(datetime.fromisoformat(x) == e.at for x, e in zip(said, _of(svc, rid, kind), strict=True))
        with svc.store.transaction() as s:
            kept = [r.at for r in s.execute(sa.select(model).where(model.release_id == rid)).scalars()]
        assert sorted(datetime.fromisoformat(x) for x in said) == sorted(kept), kind
    with svc.store.transaction() as s:
        rows_of = s.execute(sa.select(Analysis).where(Analysis.release_id == rid)).scalars()
        analyses = {a.id: (a.at, a.status) for a in rows_of}
    said = [audit.payload_of(e) for e in _of(svc, rid, "analysis.completed")]
    assert len(said) == len(analyses) > 0
    assert {p["analysis_id"]: (datetime.fromisoformat(p["analysed_at"]), p["status"]) for p in said} == analyses
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    for flags in ((), ("--against-store",)):
        code, text, err = cli("release", "verify-package", str(out), *flags)
        assert (code, err) == (0, ""), text + err


# The records the gates read, and the event that states each one's time, under that key.
GATE_RECORDS = (
    (Approval, "release.approved", "approved_at"),
    (Signoff, "qa.signed_off", "signed_off_at"),
    (CheckRun, "check.recorded", "recorded_at"),
    (GateEvaluation, "gate.evaluated", "evaluated_at"),
    (Override, "override.granted", "granted_at"),
)


def _of(svc: Releases, rid: str, kind: str) -> list[audit.EventRow]:
    return [e for e in events(svc, rid) if e.kind == kind]


@pytest.mark.parametrize("case", list(CASES))
def test_a_row_time_rewritten_outside_the_chain_exports_a_package_that_does_not_verify(
    svc: Releases, cli: Any, tmp_path: Path, case: str
) -> None:
    """A row time moved five seconds behind the chain's back (when the revert began, which the
    retrospective's timeline tells; when the release was created) exported into a package that held."""
    rid = ended(svc)
    (model, kind), column = CASES[case], case
    recorded = [e for e in events(svc, rid) if e.kind == kind][-1]
    with svc.store.transaction() as s:
        row = s.execute(sa.select(model).where(model.release_id == rid if model is not Release else model.id == rid))
        target = row.scalars().first()
        assert target is not None
        was = getattr(target, column)
        setattr(target, column, was + timedelta(seconds=5))
        moved = (was + timedelta(seconds=5)).isoformat()
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    code, text, err = cli("release", "verify-package", str(out), "--against-store")
    assert code == 1, text + err
    if model is Release:
        expected = (
            f"release.json's {column} is {moved}, but the audit events record {was.isoformat()} "
            f"(seq {recorded.seq}, {kind})"
        )
    else:
        name, what = ("gates.json", "post-mortem") if model is Postmortem else ("rollback.json", "rollback")
        expected = (
            f"{name}: the {what} with id 1 has {column} {moved}, but the audit events record {column} {was.isoformat()}"
        )
    assert (
        f"error: the package {out} does not hold: {expected}: the release's record was changed outside the chain"
        in " ".join((text + err).split())
    )
    assert "also:" not in text + err  # once, though two events state when the revert began
    with svc.store.transaction() as s:  # the chain itself holds: only the package shows it
        assert audit.verify(audit.rows(s), head_seq=audit.head(s)[0], head_hash=audit.head(s)[1]).ok


def test_a_package_of_events_that_state_no_row_time_still_verifies(
    svc: Releases, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events recorded before they stated their rows' times, a post-mortem's service, a rollback's
    weight before, evidence and refusals, and an analysis's id and state, as an older shiprail wrote
    them (each a millisecond after its rows), leave those fields uncompared: the package of a release
    recorded then still holds."""
    append = audit.append
    # What each kind of event did not state then: the row times, a post-mortem's service, a rollback's weight before.
    unstated = {kind: {column} for column, (_, kind) in CASES.items()} | {
        "rollback.confirmed": {"revert_started_at", "confirmation"}
    }
    unstated["postmortem.opened"].add("service")
    unstated["rollback.decided"].add("weight_before")
    unstated["router.intent"].add("rollback_id")
    # Nor the times of the records the gates read, an evidence's digest, a refusal, an analysis's row.
    unstated |= {kind: {key} for _, kind, key in GATE_RECORDS}
    unstated["check.recorded"].add("evidence_sha256")
    unstated["gate.evaluated"] |= {"evidence_sha256", "refusal"}
    unstated["analysis.completed"] = {"analysis_id", "status", "analysed_at"}

    def older(session: Any, *, at: datetime, payload: Any, **rest: Any) -> Any:
        kept = {k: v for k, v in payload.items() if k not in unstated.get(rest["kind"], set())}
        return append(session, at=at + timedelta(milliseconds=1), payload=kept, **rest)

    monkeypatch.setattr(audit, "append", older)
    rid = ended(svc)
    monkeypatch.setattr(audit, "append", append)
    said = [(e.kind, audit.payload_of(e)) for e in events(svc, rid)]
    assert not [p for kind, p in said if unstated.get(kind, set()) & p.keys()]
    assert {kind for kind, _ in said} >= unstated.keys()
    out = tmp_path / "pkg"
    _export(cli, rid, out)
    for flags in ((), ("--against-store",)):
        code, text, err = cli("release", "verify-package", str(out), *flags)
        assert (code, err) == (0, ""), text + err
