"""A release record built in memory: events hash-chained like the store's, tables filled by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shiprail.export.record import ReleaseRecord
from shiprail.project import check_plan_file
from shiprail.schema.resolved import ResolvedRelease, canonical_json
from shiprail.store import audit
from shiprail.store.audit import EventRow

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RID = "checkout-2.4.0"
CTRL = "shiprail:controller"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Chain:
    """Appends events the way ``shiprail.store.audit.append`` does."""

    def __init__(self) -> None:
        self.rows: list[EventRow] = []

    def add(self, minutes: float, actor: str, kind: str, **payload: Any) -> None:
        prev = self.rows[-1].hash if self.rows else audit.GENESIS
        seq = len(self.rows) + 1
        body = canonical_json(payload)
        digest = audit.compute_hash(prev, seq, at(minutes), actor, kind, RID, body)
        self.rows.append(EventRow(seq, at(minutes), actor, kind, RID, body, prev, digest))


def moved(chain: Chain, minutes: float, actor: str, action: str, frm: str, to: str, weight: float | None) -> None:
    chain.add(minutes, actor, "release.transitioned", action=action, **{"from": frm}, to=to, weight=weight)


def analysis(chain: Chain, minutes: float, verdict: str, step: int | None, weight: float, baked: float) -> None:
    triggers = [{"trigger": "errors", "verdict": verdict, "reason": f"errors {verdict}", "value": 0.001}]
    chain.add(
        minutes, CTRL, "analysis.completed", verdict=verdict, step=step, weight=weight, baked_s=baked, triggers=triggers
    )


@pytest.fixture(scope="session")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> ResolvedRelease:
    """The example plan of ``shiprail init``, resolved."""
    from shiprail.cli.init import write_project

    root: Path = tmp_path_factory.mktemp("project")
    write_project(root)
    return check_plan_file(root / "releases" / "checkout-2.4.0.yaml").resolved


@pytest.fixture(scope="session")
def plan_text(resolved: ResolvedRelease, tmp_path_factory: pytest.TempPathFactory) -> str:
    from shiprail.cli.init import write_project

    root: Path = tmp_path_factory.mktemp("plan")
    write_project(root)
    return (root / "releases" / "checkout-2.4.0.yaml").read_text(encoding="utf-8")


def gate(chain: Chain, minutes: float, actor: str, action: str, name: str, verdict: str, reason: str) -> dict[str, Any]:
    chain.add(minutes, actor, "gate.evaluated", action=action, gate=name, verdict=verdict, reason=reason)
    return {
        "id": len(chain.rows),
        "action": action,
        "gate": name,
        "verdict": verdict,
        "reason": reason,
        "evidence": {},
        "by": actor,
        "at": at(minutes).isoformat(),
    }


@pytest.fixture
def rolled_back(resolved: ResolvedRelease, plan_text: str) -> ReleaseRecord:
    """Staged, 1% baked and promoted, paused at 10% by bob and resumed, then rolled back by a trigger."""
    c = Chain()
    c.add(
        0,
        "alice",
        "release.created",
        service="checkout",
        version="2.4.0",
        baseline="2.3.1",
        risk="high",
        plan_file="releases/checkout-2.4.0.yaml",
    )
    c.add(0, "bob", "release.approved", plan_hash="ab" * 32)
    gates = [gate(c, 1, "alice", "stage", "approvals", "fail", "1 of 2 required approvals given")]
    c.add(2, "carol", "release.approved", plan_hash="ab" * 32, resolved_hash="ef" * 32)
    gates.append(gate(c, 3, "alice", "stage", "approvals", "pass", "2 of 2 approvals"))
    moved(c, 3, "alice", "stage", "planned", "staging", None)
    c.add(3, "alice", "contract.frozen", contract_hash="cd" * 32)
    gates.append(gate(c, 4, "alice", "start", "tests", "pass", "1 test command passed"))
    moved(c, 4, "alice", "start", "staging", "rolling_out (step 1)", 1.0)
    c.add(5, CTRL, "router.intent", weight=1.0, intent_id=1)
    c.add(5, CTRL, "router.applied", weight=1.0, intent_id=1, attempts=1, seconds=0.1, found_applied=False)
    for m, baked in ((15, 600), (25, 1200), (35, 1800)):
        analysis(c, m, "pass", 0, 1.0, baked)
    gates.append(gate(c, 35, CTRL, "promote", "bake", "pass", "1% baked 30m"))
    gates.append(gate(c, 35, CTRL, "promote", "analysis", "pass", "every trigger passed"))
    moved(c, 35, CTRL, "promote", "rolling_out (step 1)", "rolling_out (step 2)", 10.0)
    c.add(35, CTRL, "router.applied", weight=10.0, intent_id=2, attempts=3, seconds=2.0, found_applied=False)
    analysis(c, 45, "pass", 1, 10.0, 600)
    moved(c, 50, "bob", "pause", "rolling_out (step 2)", "paused (from rolling_out)", 10.0)
    analysis(c, 55, "inconclusive", 1, 10.0, 600)
    moved(c, 60, "bob", "resume", "paused (from rolling_out)", "rolling_out (step 2)", 10.0)
    analysis(c, 65, "fail", 1, 10.0, 600)
    moved(c, 65, CTRL, "rollback", "rolling_out (step 2)", "rolling_back", None)
    c.add(
        65,
        CTRL,
        "rollback.decided",
        cause="trigger",
        reason="trigger errors fired: 0.08 above the limit 0.01",
        value=0.08,
        threshold=0.01,
        rollback_id=1,
    )
    c.add(66, CTRL, "router.applied", weight=0.0, intent_id=3, attempts=1, seconds=0.2, found_applied=False)
    c.add(66, CTRL, "rollback.confirmed", rollback_id=1, detected_to_confirmed_s=60.0, max_duration_s=300.0, met=True)
    gates.append(gate(c, 66, CTRL, "finish_rollback", "revert_confirmed", "pass", "the router confirmed weight 0"))
    moved(c, 66, CTRL, "finish_rollback", "rolling_back", "rolled_back", None)
    analyses = [
        {
            "id": 1,
            "at": at(35).isoformat(),
            "status": "rolling_out",
            "step": 0,
            "weight": 1.0,
            "verdict": "pass",
            "results": [
                {
                    "trigger": "errors",
                    "verdict": "pass",
                    "value": 0.001,
                    "threshold": 0.01,
                    "baseline": None,
                    "canary_samples": 900,
                    "baseline_samples": None,
                    "reason": "ok",
                }
            ],
        },
        {
            "id": 2,
            "at": at(65).isoformat(),
            "status": "rolling_out",
            "step": 1,
            "weight": 10.0,
            "verdict": "fail",
            "results": [
                {
                    "trigger": "errors",
                    "verdict": "fail",
                    "value": 0.08,
                    "threshold": 0.01,
                    "baseline": None,
                    "canary_samples": 500,
                    "baseline_samples": None,
                    "reason": "0.08 above the limit 0.01",
                }
            ],
        },
    ]
    rollback = {
        "id": 1,
        "cause": "trigger",
        "trigger": "errors",
        "reason": "trigger errors fired: 0.08 above the limit 0.01",
        "value": 0.08,
        "threshold": 0.01,
        "initiated_by": CTRL,
        "weight_before": 10.0,
        "detected_at": at(65).isoformat(),
        "decided_at": at(65).isoformat(),
        "revert_started_at": at(65).isoformat(),
        "revert_confirmed_at": at(66).isoformat(),
        "detected_to_confirmed_s": 60.0,
        "max_duration_s": 300.0,
        "max_duration_met": True,
        "metrics_after": [],
        "confirmation": None,
    }
    return ReleaseRecord(
        id=RID,
        service="checkout",
        version="2.4.0",
        baseline="2.3.1",
        owner="alice",
        risk="high",
        status="rolled_back",
        step=None,
        paused_from=None,
        created_at=T0,
        state_since=at(66),
        frozen_at=at(3),
        plan_file="/somewhere/releases/checkout-2.4.0.yaml",
        plan_text=plan_text,
        plan_hash="ab" * 32,
        contract_hash="cd" * 32,
        resolved_hash="ef" * 32,
        resolved=resolved,
        events=c.rows,
        gates=gates,
        rollbacks=[rollback],
        analyses=analyses,
        head_seq=c.rows[-1].seq,
        head_hash=c.rows[-1].hash,
    )


Factory = Callable[..., ReleaseRecord]


@pytest.fixture
def with_status(rolled_back: ReleaseRecord) -> Factory:
    def make(**changes: Any) -> ReleaseRecord:
        return replace(rolled_back, **changes)

    return make
