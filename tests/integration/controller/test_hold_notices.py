"""A promotion held by a gate the controller cannot wait out is news, once per hold (``held``), and
so is a handover (``handover``).

The controller of tests/integration/controller on a simulated clock, with a notifier whose channels
are a fake sender: what each audience of the example plan is told, and how many times.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import shiprail.controller
from shiprail.cli import release as release_cli
from shiprail.cli import watch
from shiprail.cli.main import main
from shiprail.controller import Controller
from shiprail.domain.refusals import reference
from shiprail.notifiers import ChannelConfig
from shiprail.notifiers.messages import Message, slack_text
from shiprail.notifiers.notifier import Notifier
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.store import audit
from tests.integration.controller.test_controller import INTERVAL, FakeRouter, controller, started, svc
from tests.integration.controller.test_freeze_hold import MAINTENANCE, tick_until

__all__ = ["started", "svc"]


class Outbox:
    """A notifier's channels: keeps every message instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def __call__(self, channel: ChannelConfig, message: Message) -> None:
        self.sent.append(message)

    def told(self, event: str) -> list[tuple[str, str, str]]:
        return [(m.audience, m.channel, slack_text(m).split("\n")[0]) for m in self.sent if m.event == event]


def notifier(svc: Releases, outbox: Outbox) -> Notifier:
    return Notifier(svc.store, svc.clock, svc.policy.channels, send=outbox, env={}, max_age_s=None)


def held(svc: Releases, rid: str) -> list[dict[str, Any]]:
    with svc.store.transaction() as s:
        return [json.loads(r.payload) for r in audit.rows(s) if r.release_id == rid and r.kind == "release.held"]


def test_a_step_held_by_a_freeze_is_announced_once_with_the_freeze_and_its_end(svc: Releases, started: str) -> None:
    svc.policy.freezes.append(MAINTENANCE)
    outbox = Outbox()
    notify = notifier(svc, outbox)
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    t0 = svc.clock.now()
    tick_until(svc, ctl, t0 + timedelta(minutes=40))
    notify.tick()
    assert (svc.get(started).step, router.calls) == (0, [1])
    assert held(svc, started) == [
        {
            "action": "promote",
            "gate": "freeze",
            "reason": "freeze 'maintenance' until 2026-01-01 05:00 UTC",
            "freeze": "maintenance",
            "until": "2026-01-01T05:00:00+00:00",
            # The refusal an override of it names: this freeze window, no other.
            "refusal": reference("freeze", [{"name": "maintenance", "until": "2026-01-01T05:00:00+00:00"}]),
            "state": "rolling_out (step 1)",
            "weight": 1.0,
        }
    ]
    told = [
        (
            "engineering",
            "releases-slack",
            "[shiprail] checkout 2.4.0 is held at step 1 (1%): freeze 'maintenance' until 2026-01-01 05:00 UTC; "
            "the controller promotes it when the freeze ends",
        )
    ]
    assert outbox.told("held") == told
    # Passes through the freeze, a controller started again (it asks for the promotion once more)
    # and shiprail.yaml read again: the same hold, told once.
    tick_until(svc, ctl, t0 + timedelta(hours=2))
    ctl.close()
    again = controller(svc, router)
    tick_until(svc, again, t0 + timedelta(hours=3))
    again._holds.clear()  # what reading a changed shiprail.yaml does
    tick_until(svc, again, t0 + timedelta(hours=4, minutes=50))
    notify.tick()
    assert len(held(svc, started)) == 1
    assert outbox.told("held") == told
    # The freeze ends: the step is promoted, and the next step is not held.
    tick_until(svc, again, t0 + timedelta(hours=5))
    notify.tick()
    assert (svc.get(started).step, router.calls) == (1, [1, 10])
    assert len(held(svc, started)) == 1
    assert [t for _, _, t in outbox.told("step")] == [
        "[shiprail] checkout 2.4.0 moved to step 2 at 10%: baked 30m at 1% with every trigger passing"
    ]


def test_a_freeze_that_ends_later_than_it_did_is_a_new_hold(svc: Releases, started: str) -> None:
    svc.policy.freezes.append(MAINTENANCE)
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=40))
    svc.policy.freezes[-1] = MAINTENANCE.model_copy(update={"end": datetime(2026, 1, 1, 8)})
    ctl._holds.clear()
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=30))
    assert [(h["freeze"], h["until"]) for h in held(svc, started)] == [
        ("maintenance", "2026-01-01T05:00:00+00:00"),
        ("maintenance", "2026-01-01T08:00:00+00:00"),
    ]


def test_a_release_held_from_verify_by_the_on_call_gate_is_announced_once(svc: Releases, started: str) -> None:
    policy = Path("shiprail.yaml")
    policy.write_text(policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    outbox = Outbox()
    notify = notifier(now, outbox)
    ctl: Controller = controller(now, FakeRouter())
    for _ in range(60):  # 60 analyses at 100%: the refusal is recorded once, and so is the hold
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    notify.tick()
    view = now.get(started)
    assert (view.status, view.weight) == ("rolling_out", 100)
    assert sum(g["gate"] == "on_call" and g["verdict"] == "fail" for g in view.gates) == 1
    reason = (
        "bob, on call for Verify, needs the role oncall in shiprail.yaml and has approver; give bob the role, "
        "or hand over to someone given the role oncall with `shiprail release handover`"
    )
    assert held(now, started) == [
        {
            "action": "promote",
            "gate": "on_call",
            "reason": reason,
            "on_call": "bob",
            "refusal": reference("on_call", ["bob"]),
            "state": "rolling_out (step 4)",
            "weight": 100.0,
        }
    ]
    assert outbox.told("held") == [
        ("engineering", "releases-slack", f"[shiprail] checkout 2.4.0 is held at 100%, before Verify: {reason}")
    ]


def test_a_handover_tells_the_on_call_audience_who_is_on_call_now(svc: Releases, started: str) -> None:
    policy = Path("shiprail.yaml")
    policy.write_text(policy.read_text().replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    outbox = Outbox()
    notify = notifier(now, outbox)
    now.handover(started, "erin", "bob", "night shift")
    now.handover(started, "bob", "dana")
    notify.tick()
    notify.tick()  # queued once
    assert outbox.told("handover") == [
        (
            "on-call",
            "oncall-email",
            "[shiprail] erin is now on call for checkout 2.4.0, taking over from bob; handed over by bob: night shift",
        ),
        (
            "on-call",
            "oncall-email",
            "[shiprail] bob is now on call for checkout 2.4.0, taking over from erin; handed over by dana",
        ),
    ]
    first = next(m for m in outbox.sent if m.event == "handover")
    assert (first.kind, first.actor, first.state, dict(first.payload)) == (
        "on_call.handed_over",
        "bob",
        "rolling_out (step 1)",
        {"from": "bob", "to": "erin", "reason": "night shift"},
    )


def test_shiprail_controller_prints_what_holds_the_release(capsys: pytest.CaptureFixture[str]) -> None:
    from shiprail.cli.controller import _print_event

    reason = "freeze 'maintenance' until 2026-01-01 05:00 UTC"
    _print_event("checkout-2.4.0", "release.held", {"gate": "freeze", "reason": reason, "weight": 1.0})
    assert capsys.readouterr().out.split(" ", 1)[1] == f"checkout-2.4.0 release.held {reason}\n"


def test_start_wait_stops_at_an_on_call_hold_and_says_what_lets_it_into_verify(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`release start --wait` rode out a release held before Verify by its on-call gate, which only a
    handover (or shiprail.yaml fixed) lets on: without --timeout a CI job waited for ever."""
    policy = Path("shiprail.yaml")
    text = policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]")
    policy.write_text(text.replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    router = FakeRouter()
    monkeypatch.setattr(shiprail.controller, "Controller", lambda svc, **kw: controller(svc, router, **kw))
    monkeypatch.setattr(Notifier, "run", lambda self, stop: stop.wait())  # its sleeps would move the clock
    monkeypatch.setattr(release_cli, "releases", lambda db, project=None, **kw: now)
    monkeypatch.setattr(watch, "time", SimpleNamespace(sleep=lambda s: svc.clock.advance(600)))  # type: ignore[attr-defined]
    t0 = svc.clock.now()
    capsys.readouterr()
    code = main(["release", "start", started, "--wait", "--timeout", str(24 * 3600), "--json"])
    out, err = capsys.readouterr()
    view = json.loads(out)
    assert (code, view["status"], view["weight"], view["held"]["gate"]) == (1, "rolling_out", 100, "on_call")
    assert svc.clock.now() - t0 < timedelta(hours=7, minutes=40)  # its steps take 7h30m; not for ever
    reason = (
        "bob, on call for Verify, needs the role oncall in shiprail.yaml and has approver; give bob the role, "
        "or hand over to someone who has it (erin) with `shiprail release handover`"
    )
    assert err.splitlines()[-1] == (
        f"error: stopped following {started}: it is held at 100% before Verify: {reason}; until then its contract "
        "is analysed (and a breach rolls it back), and once it may enter Verify it does, only while a `shiprail "
        f"controller` runs (or `shiprail release start {started} --wait` again)"
    )
    # Handed over to someone who may answer for Verify, --wait follows it on.
    now.handover(started, "erin", "bob", "bob is not on the on-call rota this week")
    code = main(["release", "start", started, "--wait", "--timeout", str(3600), "--json"])
    assert (code, json.loads(capsys.readouterr().out)["status"]) == (1, "verifying")
