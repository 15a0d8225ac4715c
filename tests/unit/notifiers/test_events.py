"""Which audit events are news for a communication plan: every kind and action, with real payloads."""

from __future__ import annotations

from typing import Any

import pytest

from shiprail.notifiers.events import EVENTS, NEWS_KINDS, event_of


def transitioned(action: str, frm: str, to: str, **extra: Any) -> dict[str, Any]:
    return {"action": action, "from": frm, "to": to, "weight": None, **extra}


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (
            "approval.awaited",
            {"gate": "approvals", "required": 2, "approvers": [], "needed": 2},
            "awaiting_approval",
        ),
        ("release.approved", {"plan_hash": "49c3"}, "approved"),
        ("release.transitioned", transitioned("stage", "planned", "staging"), "staging"),
        ("release.transitioned", transitioned("start", "staging", "rolling_out (step 1)", weight=1.0), "started"),
        (
            "release.transitioned",
            transitioned("promote", "rolling_out (step 1)", "rolling_out (step 2)", weight=10.0, reason="baked 3s"),
            "step",
        ),
        ("release.transitioned", transitioned("promote", "rolling_out (step 4)", "verifying"), "verifying"),
        ("release.transitioned", transitioned("pause", "rolling_out (step 2)", "paused (from rolling_out)"), "paused"),
        ("release.transitioned", transitioned("pause", "verifying", "paused (from verifying)"), "paused"),
        ("release.transitioned", transitioned("resume", "paused (from rolling_out)", "rolling_out (step 2)"), None),
        (
            "release.transitioned",
            transitioned("rollback", "rolling_out (step 1)", "rolling_back", reason="trigger slow fired"),
            "rolled_back",
        ),
        (
            "release.transitioned",
            transitioned("finish_rollback", "rolling_back", "rolled_back", reason="the router confirmed weight 0"),
            "rolled_back",
        ),
        ("release.transitioned", transitioned("complete", "verifying", "complete"), "completed"),
        ("override.granted", {"action": "start", "gates": ["tests"], "reason": "r", "override_id": 1}, "override"),
        ("release.created", {"owner": "alice"}, None),
        ("gate.evaluated", {"action": "stage", "gate": "approvals", "verdict": "pass"}, None),
        ("contract.frozen", {"plan_hash": "x", "contract_hash": "y"}, None),
        ("rollback.decided", {"cause": "trigger", "rollback_id": 1}, None),
        ("rollback.confirmed", {"met": True, "rollback_id": 1}, None),
        ("rollback.stuck", {"rollback_id": 1, "unconfirmed_s": 125.0, "error": "down"}, "revert_stuck"),
        ("rollback.recovered", {"rollback_id": 1, "unconfirmed_s": 600.0}, "revert_recovered"),
        (
            "release.held",
            {"action": "promote", "gate": "freeze", "reason": "freeze 'holidays' until 2027-01-04 09:00 UTC"},
            "held",
        ),
        ("on_call.handed_over", {"from": "bob", "to": "erin", "reason": "night shift"}, "handover"),
        ("dry_run.breached", {"trigger": "error-regression", "step": 1, "weight": 10.0}, "dry_run"),
        ("router.failed", {"weight": 0.0, "attempts": 4, "error": "down"}, None),
        ("router.stale", {"weight": 10.0, "intent_id": 3}, None),
        ("router.settled", {"weight": 0.0, "found": 10.0, "reapplied": True}, None),
        ("controller.error", {"error": "RouterError: x"}, None),
        ("verify.started", {"on_call": "bob"}, None),
        ("analysis.completed", {"step": 0, "triggers": []}, None),
        ("router.intent", {"intent_id": 1, "weight": 1.0}, None),
        ("router.applied", {"intent_id": 1, "weight": 1.0}, None),
        ("controller.attached", {"holder": "h"}, None),
        ("postmortem.opened", {"postmortem_id": 1, "override_id": 1}, None),
        ("qa.signed_off", {"item": "x"}, None),
        ("notification.sent", {"delivery_id": 1, "event": "started"}, None),
        ("notification.failed", {"delivery_id": 1, "event": "started", "error": "down"}, None),
    ],
)
def test_event_of(kind: str, payload: dict[str, Any], expected: str | None) -> None:
    assert event_of(kind, payload) == expected


def test_a_transition_without_a_known_action_is_no_news() -> None:
    assert event_of("release.transitioned", {}) is None
    assert event_of("release.transitioned", {"action": "promote", "to": "complete"}) is None


def test_every_event_a_plan_may_name_has_a_source_and_only_news_kinds_map() -> None:
    produced = {
        event_of("approval.awaited", {}),
        event_of("release.approved", {}),
        event_of("override.granted", {}),
        event_of("rollback.stuck", {}),
        event_of("rollback.recovered", {}),
        event_of("release.held", {}),
        event_of("on_call.handed_over", {}),
        event_of("dry_run.breached", {}),
        *(
            event_of("release.transitioned", {"action": a, "to": to})
            for a, to in [
                ("stage", "staging"),
                ("start", "rolling_out (step 1)"),
                ("promote", "rolling_out (step 2)"),
                ("promote", "verifying"),
                ("pause", "paused (from verifying)"),
                ("rollback", "rolling_back"),
                ("complete", "complete"),
            ]
        ),
    }
    assert produced == set(EVENTS)
    assert {
        "approval.awaited",
        "release.approved",
        "release.transitioned",
        "override.granted",
        "rollback.stuck",
        "rollback.recovered",
        "release.held",
        "on_call.handed_over",
        "dry_run.breached",
    } == NEWS_KINDS
