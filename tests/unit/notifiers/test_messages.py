"""What each channel says about an event: pure text built from a ``Message``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shiprail.notifiers import EmailChannel
from shiprail.notifiers.channels import email_message, slack_document
from shiprail.notifiers.messages import Message, email_body, headline, slack_text, subject, webhook_body
from shiprail.notifiers.outbox import backoff, targets
from shiprail.schema.plan import Communication

AT = datetime(2026, 3, 2, 14, 5, 9, 123456, tzinfo=UTC)


def message(event: str = "rolled_back", payload: dict[str, Any] | None = None, **kw: Any) -> Message:
    base = Message(
        delivery_id=7,
        release_id="checkout-2.4.0",
        service="checkout",
        version="2.4.0",
        baseline="2.3.1",
        summary="New payment retry loop",
        event=event,
        audience="support",
        channel="status-page",
        seq=42,
        kind="release.transitioned",
        actor="shiprail:controller",
        at=AT,
        state="rolling_back",
        payload=payload
        if payload is not None
        else {
            "action": "rollback",
            "from": "rolling_out (step 2)",
            "to": "rolling_back",
            "reason": "trigger errors fired: 0.08 above the limit 0.01",
            "weight": None,
        },
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("event", "payload", "actor", "expected"),
    [
        ("approved", {"plan_hash": "x"}, "carol", "checkout 2.4.0 was approved by carol"),
        (
            "awaiting_approval",
            {"gate": "approvals", "required": 2, "approvers": ["bob"], "needed": 1},
            "carol",
            "checkout 2.4.0 is waiting for approval: gate approvals of release checkout-2.4.0 needs 1 more approval "
            "(1 of 2 given); approve it with `shiprail release approve checkout-2.4.0`",
        ),
        (
            "staging",
            {"action": "stage", "to": "staging"},
            "alice",
            "checkout 2.4.0 entered Stage by alice: its rollback contract is frozen",
        ),
        (
            "started",
            {"action": "start", "to": "rolling_out (step 1)", "weight": 1.0},
            "alice",
            "checkout 2.4.0 started its rollout at 1% by alice",
        ),
        (
            "step",
            {"action": "promote", "to": "rolling_out (step 3)", "weight": 50.0, "reason": "baked 4h"},
            "shiprail:controller",
            "checkout 2.4.0 moved to step 3 at 50%: baked 4h",
        ),
        (
            "verifying",
            {"action": "promote", "to": "verifying", "weight": None},
            "shiprail:controller",
            "checkout 2.4.0 finished its rollout and entered Verify",
        ),
        (
            "paused",
            {"action": "pause", "to": "paused (from rolling_out)", "reason": "canary: no data"},
            "shiprail:controller",
            "checkout 2.4.0 paused: canary: no data",
        ),
        ("paused", {"action": "pause", "to": "paused (from verifying)"}, "bob", "checkout 2.4.0 paused by bob"),
        (
            "rolled_back",
            {"action": "rollback", "to": "rolling_back", "reason": "trigger errors fired: 0.08 above the limit 0.01"},
            "shiprail:controller",
            "checkout 2.4.0 is rolling back: trigger errors fired: 0.08 above the limit 0.01",
        ),
        (
            "rolled_back",
            {"action": "finish_rollback", "to": "rolled_back", "reason": "the router confirmed weight 0"},
            "shiprail:controller",
            "checkout 2.4.0 rolled back: the router confirmed weight 0",
        ),
        (
            "completed",
            {"action": "complete", "to": "complete", "reason": "the validation window passed"},
            "shiprail:controller",
            "checkout 2.4.0 is complete: the validation window passed",
        ),
        (
            "override",
            {"action": "start", "gates": ["tests", "load_test"], "reason": "Bob reviewed the diff twice"},
            "dana",
            "dana overrode the failed gates tests, load_test of start for checkout 2.4.0: Bob reviewed the diff twice",
        ),
        (
            "override",
            {"action": "stage", "gates": ["approvals"], "reason": "Carol is out sick"},
            "dana",
            "dana overrode the failed gate approvals of stage for checkout 2.4.0: Carol is out sick",
        ),
        (
            "held",
            {
                "action": "promote",
                "gate": "freeze",
                "reason": "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin",
                "freeze": "holidays",
                "until": "2027-01-04T08:00:00+00:00",
                "state": "rolling_out (step 2)",
                "weight": 10.0,
            },
            "shiprail:controller",
            "checkout 2.4.0 is held at step 2 (10%): freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin; "
            "the controller promotes it when the freeze ends",
        ),
        (
            "held",
            {
                "action": "promote",
                "gate": "on_call",
                "reason": "bob, on call for Verify, is not a person in shiprail.yaml",
                "on_call": "bob",
                "state": "rolling_out (step 4)",
                "weight": 100.0,
            },
            "shiprail:controller",
            "checkout 2.4.0 is held at 100%, before Verify: bob, on call for Verify, is not a person in shiprail.yaml",
        ),
        (
            "handover",
            {"from": "bob", "to": "erin", "reason": "night shift"},
            "bob",
            "erin is now on call for checkout 2.4.0, taking over from bob; handed over by bob: night shift",
        ),
        (
            "handover",
            {"from": "erin", "to": "bob", "reason": None},
            "dana",
            "bob is now on call for checkout 2.4.0, taking over from erin; handed over by dana",
        ),
    ],
)
def test_headline_per_event(event: str, payload: dict[str, Any], actor: str, expected: str) -> None:
    assert headline(message(event, payload, actor=actor)) == expected


def test_slack_text_says_what_and_where_the_release_stands() -> None:
    assert slack_text(message()) == (
        "[shiprail] checkout 2.4.0 is rolling back: trigger errors fired: 0.08 above the limit 0.01\n"
        "release checkout-2.4.0 · now rolling_back · 2026-03-02 14:05:09 UTC · audit #42 · for support"
    )


def test_a_reason_over_several_lines_stays_in_the_slack_headline_and_out_of_its_context() -> None:
    m = message(payload={"action": "pause", "reason": "canary looks off\nsee <!channel> runbook"}, event="paused")
    m = replace(m, actor="dana")
    assert slack_document(m)["blocks"] == [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*checkout 2.4.0 paused by dana: canary looks off\nsee &lt;!channel&gt; runbook*",
            },
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "release checkout-2.4.0 · now rolling_back · 2026-03-02 14:05:09 UTC · audit #42 "
                    "· for support",
                }
            ],
        },
    ]


def test_email_subject_and_body() -> None:
    m = message()
    assert subject(m) == "[shiprail] checkout-2.4.0 rolled_back"
    body = email_body(m)
    assert body.startswith("checkout 2.4.0 is rolling back: trigger errors fired: 0.08 above the limit 0.01\n\n")
    for line in (
        "Release:   checkout-2.4.0",
        "Version:   2.4.0 (baseline 2.3.1)",
        "Change:    New payment retry loop",
        "State now: rolling_back",
        "When:      2026-03-02 14:05:09 UTC",
        "By:        shiprail:controller",
        "Audit:     event #42 (release.transitioned)",
        "You receive this as support in the release's communication plan (channel status-page).",
    ):
        assert line in body.splitlines()


def test_the_email_keeps_one_message_id_per_delivery() -> None:
    channel = EmailChannel(type="email", to=["oncall@example.com", "sre@example.com"], sender="rel@example.com")
    mail = email_message(channel, message())
    assert mail["Subject"] == "[shiprail] checkout-2.4.0 rolled_back"
    assert mail["To"] == "oncall@example.com, sre@example.com"
    assert mail["From"] == "rel@example.com"
    assert mail["Message-ID"] == email_message(channel, message())["Message-ID"] == "<shiprail.7.42@checkout-2.4.0>"
    assert mail.get_content_type() == "text/plain"


def test_webhook_body() -> None:
    body = webhook_body(message(state="rolling_out (step 2)"))
    assert body["release_id"] == "checkout-2.4.0"
    assert (body["event"], body["audience"], body["service"], body["version"]) == (
        "rolled_back",
        "support",
        "checkout",
        "2.4.0",
    )
    assert (body["status"], body["state"]) == ("rolling_out", "rolling_out (step 2)")
    assert body["summary"] == "New payment retry loop"
    assert body["text"].startswith("checkout 2.4.0 is rolling back")
    assert body["at"] == "2026-03-02T14:05:09.123456+00:00"
    assert (body["seq"], body["delivery_id"], body["kind"]) == (42, 7, "release.transitioned")
    assert body["detail"]["reason"] == "trigger errors fired: 0.08 above the limit 0.01"


def test_targets_each_audience_and_channel_once_for_the_event() -> None:
    plan = [
        Communication(audience="engineering", notify=["slack", "mail"], on=["started", "rolled_back"]),
        Communication(audience="support", notify=["status"], on=["rolled_back"]),
        Communication(audience="engineering", notify=["slack"], on=["rolled_back", "completed"]),
    ]
    assert targets(plan, "rolled_back") == [("engineering", "slack"), ("engineering", "mail"), ("support", "status")]
    assert targets(plan, "started") == [("engineering", "slack"), ("engineering", "mail")]
    assert targets(plan, "paused") == []


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 10, 300) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


HELD_BY_FREEZE = {
    "action": "promote",
    "gate": "freeze",
    "reason": "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin",
    "freeze": "holidays",
    "until": "2027-01-04T08:00:00+00:00",
    "state": "rolling_out (step 2)",
    "weight": 10.0,
}


def test_a_hold_by_a_freeze_in_an_email_and_a_webhook() -> None:
    m = message("held", HELD_BY_FREEZE, kind="release.held", state="rolling_out (step 2)", audience="engineering")
    assert subject(m) == "[shiprail] checkout-2.4.0 held"
    assert email_body(m) == (
        "checkout 2.4.0 is held at step 2 (10%): freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin; "
        "the controller promotes it when the freeze ends\n"
        "\n"
        "Release:   checkout-2.4.0\n"
        "Service:   checkout\n"
        "Version:   2.4.0 (baseline 2.3.1)\n"
        "Change:    New payment retry loop\n"
        "Event:     held\n"
        "State now: rolling_out (step 2)\n"
        "When:      2026-03-02 14:05:09 UTC\n"
        "By:        shiprail:controller\n"
        "Audit:     event #42 (release.held)\n"
        "\n"
        "You receive this as engineering in the release's communication plan (channel status-page).\n"
        "See it with: shiprail release show checkout-2.4.0\n"
    )
    body = webhook_body(m)
    assert (body["event"], body["kind"], body["status"]) == ("held", "release.held", "rolling_out")
    assert body["detail"] == HELD_BY_FREEZE
    assert body["text"] == (
        "checkout 2.4.0 is held at step 2 (10%): freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin; "
        "the controller promotes it when the freeze ends"
    )


def test_a_dry_run_breach_says_which_trigger_would_have_rolled_back_and_where() -> None:
    payload = {
        "trigger": "error-regression",
        "reason": "canary worse than baseline: canary 0.300% vs baseline 0.100%",
        "step": 1,
        "weight": 10.0,
        "status": "rolling_out",
    }
    told = [
        headline(message("dry_run", payload | extra, state=state))
        for state, extra in (("rolling_out (step 2)", {}), ("verifying", {"step": 3, "weight": 100.0}))
    ]
    assert told == [
        "checkout 2.4.0: dry-run trigger error-regression would have rolled it back at step 2 (10%): canary worse "
        "than baseline: canary 0.300% vs baseline 0.100%",
        "checkout 2.4.0: dry-run trigger error-regression would have rolled it back in Verify: canary worse than "
        "baseline: canary 0.300% vs baseline 0.100%",
    ]
