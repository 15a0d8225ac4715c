"""The controller in a deployment freeze: it does not promote into one, it holds the step, still watching."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from shiprail.clock import SimulatedClock
from shiprail.controller import Controller
from shiprail.domain.refusals import reference
from shiprail.domain.states import Action
from shiprail.errors import OverrideRefused
from shiprail.project import PolicyWatch
from shiprail.releases import Releases
from shiprail.schema.policy import Freeze
from shiprail.store.models import GateEvaluation
from tests.integration.controller.test_controller import (  # the fixtures and fakes of the controller's tests
    FakeRouter,
    TurnsBad,
    controller,
    started,
    svc,
)
from tests.support.overrides import override

__all__ = ["started", "svc"]

# The simulated clock starts at 2026-01-01 00:00 UTC: the 1% step has baked its 30m at 00:30.
MAINTENANCE = Freeze(name="maintenance", start=datetime(2026, 1, 1, 0, 20), end=datetime(2026, 1, 1, 5))
REASON = "The fix must reach everyone before the maintenance is over"


def freeze_verdicts(svc: Releases, rid: str) -> list[tuple[str, str, str]]:
    with svc.store.transaction() as s:
        rows = s.execute(
            select(GateEvaluation).where(GateEvaluation.release_id == rid, GateEvaluation.gate == "freeze")
        ).scalars()
        return [(r.action, r.verdict, r.reason) for r in rows]


def tick_until(svc: Releases, ctl: Controller, until: datetime) -> None:
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    while clock.now() < until:
        clock.advance(600)
        ctl.tick()


def test_the_controller_holds_a_baked_step_through_a_freeze_and_promotes_after_it(svc: Releases, started: str) -> None:
    svc.policy.freezes.append(MAINTENANCE)
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    t0 = svc.clock.now()
    tick_until(svc, ctl, t0 + timedelta(minutes=30))
    assert (svc.get(started).step, router.calls) == (0, [1])
    held = [("promote", "fail", "freeze 'maintenance' until 2026-01-01 05:00 UTC")]
    assert freeze_verdicts(svc, started) == [*[("start", "pass", "no deployment freeze is on")] * 2, *held]
    analyses = svc.get(started).progress
    # Still watched through the freeze: an analysis every 10 minutes; the promotion is not asked again.
    tick_until(svc, ctl, t0 + timedelta(hours=4, minutes=50))
    assert (svc.get(started).step, router.calls) == (0, [1])
    assert freeze_verdicts(svc, started)[2:] == held
    assert svc.get(started).progress["last_analysis"] > analyses["last_analysis"]
    tick_until(svc, ctl, t0 + timedelta(hours=5))
    assert (svc.get(started).step, router.calls) == (1, [1, 10])
    assert freeze_verdicts(svc, started)[3:] == [("promote", "pass", "no deployment freeze is on")]


def test_a_freeze_never_holds_a_rollback(svc: Releases, started: str) -> None:
    svc.policy.freezes.append(MAINTENANCE)
    later_bad = TurnsBad()
    router = FakeRouter()
    ctl = controller(svc, router, later_bad)
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(hours=1))
    later_bad.bad = True
    ctl.run(until_done=True)
    assert svc.get(started).status == "rolled_back"
    assert router.calls == [1, 0]
    assert svc.clock.now() < datetime.fromisoformat("2026-01-01T05:00:00+00:00")


def test_an_executive_passes_a_freeze_the_controller_holds_a_step_for(svc: Releases, started: str) -> None:
    svc.policy.freezes.append(MAINTENANCE)
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=40))
    override(svc, started, "dana", REASON)
    ctl.tick()
    view = svc.get(started)
    assert (view.step, router.calls) == (1, [1, 10])
    assert [(o["by"], o["gates"]) for o in view.overrides][-1] == ("dana", ["freeze"])
    assert view.postmortems[-1]["status"] == "open"
    # The override passed one promotion: the next step, baked inside the freeze, is held again.
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T04:00:00+00:00"))
    assert (svc.get(started).step, router.calls) == (1, [1, 10])
    assert [v for _, v, _ in freeze_verdicts(svc, started)[-2:]] == ["overridden", "fail"]


def test_after_a_pause_and_a_resume_an_override_passes_the_freeze_that_still_holds_the_step(
    svc: Releases, started: str
) -> None:
    # The controller asked once and holds the step: a pause and a resume change nothing of that, so
    # the refused promotion is still what an executive sees and passes, with no fresh promote first.
    svc.policy.freezes.append(MAINTENANCE)
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=40))
    svc.act(started, Action.PAUSE, "alice")
    svc.clock.advance(600)
    svc.act(started, Action.RESUME, "alice")
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=20))
    assert [v for _, v, _ in freeze_verdicts(svc, started)[2:]] == ["fail"]  # still held, not asked again
    assert svc.override(started, "dana", REASON).allowed
    ctl.tick()
    view = svc.get(started)
    assert (view.step, router.calls) == (1, [1, 10])
    assert [(o["by"], o["gates"]) for o in view.overrides][-1] == ("dana", ["freeze"])


def test_an_override_meant_for_a_freeze_that_ended_meanwhile_passes_no_gate_nobody_saw_fail(
    svc: Releases, started: str
) -> None:
    # Held in the freeze, paused; the freeze ends and the release is resumed: freeze passes now, and
    # the analysis gate fails (no analysis since the resume). The refusal the executive saw named
    # only freeze: an override without --gate must not pass the analysis nobody was refused on.
    svc.policy.freezes.append(MAINTENANCE)
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=40))
    svc.act(started, Action.PAUSE, "alice")
    svc.clock.sleep_until(datetime.fromisoformat("2026-01-01T05:10:00+00:00"))
    svc.act(started, Action.RESUME, "alice")
    before = len(svc.get(started).gates)
    with pytest.raises(OverrideRefused) as refused:
        svc.override(started, "dana", REASON)
    assert str(refused.value) == (
        f"gate analysis fails now, but no promote of release {started} was refused on it since it became "
        "rolling_out (step 1) (refused on: freeze): run `shiprail release promote checkout-2.4.0` first and "
        "override what it refuses; or name the gates to pass with --gate (failing now: analysis)"
    )
    view = svc.get(started)
    assert (view.step, len(view.gates), [o["gates"] for o in view.overrides]) == (
        0,
        before,
        [["approvals"], ["qa", "tests", "load_test"]],
    )
    ctl.tick()  # the controller analyses it again, and promotes it by itself
    assert (svc.get(started).step, router.calls) == (1, [1, 10])


def test_a_freeze_written_into_shiprail_yaml_counts_from_the_controllers_next_pass(
    svc: Releases, started: str, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An emergency freeze is an edit of shiprail.yaml while the controller runs: it must not wait
    # for a restart. A broken edit is said once and changes nothing.
    svc.policy_watch = PolicyWatch(project)
    policy = project / "shiprail.yaml"
    before = policy.read_text()
    router = FakeRouter()
    ctl = controller(svc, router)
    caplog.set_level(logging.WARNING, logger="shiprail.controller.reconciler")
    ctl.tick()
    policy.write_text(before + "freezes:\n  - {name: incident, start: 2026-01-01T00:10, end: 2026-01-01T02:00\n")
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=20))
    assert svc.policy.freezes == []
    policy.write_text(before + "freezes:\n  - {name: incident, start: 2026-01-01T00:10, end: 2026-01-01T02:00}\n")
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=30))
    assert (svc.get(started).step, router.calls) == (0, [1])
    assert freeze_verdicts(svc, started)[-1] == ("promote", "fail", "freeze 'incident' until 2026-01-01 02:00 UTC")
    messages = [r.getMessage() for r in caplog.records if "shiprail.yaml" in r.getMessage()]
    assert len(messages) == 2
    assert messages[0].startswith("shiprail.yaml changed but does not load (")
    assert messages[0].endswith("; keeping the policy loaded before")
    assert messages[1] == "shiprail.yaml changed: its people, roles, overrides and freezes count from this pass"
    policy.write_text(before)  # the freeze lifted early: the held step goes on at the next pass
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=10))
    assert (svc.get(started).step, router.calls) == (1, [1, 10])


def test_a_change_of_channels_in_shiprail_yaml_is_said_to_wait_for_a_restart(
    svc: Releases, started: str, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Channels (and their secrets) are read when the process starts: a reload that takes the rest
    # of an edit must not let the operator believe the new webhook is in use.
    svc.policy_watch = PolicyWatch(project)
    policy = project / "shiprail.yaml"
    before = policy.read_text()
    ctl = controller(svc, FakeRouter())
    caplog.set_level(logging.WARNING, logger="shiprail.controller.reconciler")
    ctl.tick()
    policy.write_text(before.replace("127.0.0.1:8088/hooks/shiprail", "127.0.0.1:9099/hooks"))
    ctl.tick()
    policy.write_text(policy.read_text().replace("  carol:", "  erin:  {roles: [oncall]}\n  carol:"))
    ctl.tick()
    messages = [r.getMessage() for r in caplog.records if "shiprail.yaml" in r.getMessage()]
    assert messages == [
        "shiprail.yaml changed: its people, roles, overrides and freezes count from this pass",
        "shiprail.yaml's channels changed too: notifications keep the channels this process started with until "
        "it is restarted",
        "shiprail.yaml changed: its people, roles, overrides and freezes count from this pass",
    ]


def test_release_show_says_what_holds_the_step_while_it_holds_it(svc: Releases, started: str) -> None:
    # A step held for hours said nothing in `release show` or the status page: it looked stuck.
    from shiprail import describe

    svc.policy.freezes.append(MAINTENANCE)
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    t0 = svc.clock.now()
    assert svc.get(started).held is None
    tick_until(svc, ctl, t0 + timedelta(hours=2))
    view = svc.get(started)
    assert view.held == {
        "gate": "freeze",
        "reason": "freeze 'maintenance' until 2026-01-01 05:00 UTC",
        "freeze": "maintenance",
        "until": "2026-01-01T05:00:00+00:00",
        "refusal": reference("freeze", [{"name": "maintenance", "until": "2026-01-01T05:00:00+00:00"}]),
        "at": "2026-01-01T00:30:00+00:00",
    }
    assert view.to_json()["held"] == view.held
    # With the refusal's reference, as the gate table shows it: the --gate an override of it names.
    assert describe.held(view) == (
        f"held since 2026-01-01 00:30:00Z: freeze 'maintenance' until 2026-01-01 05:00 UTC ({view.held['refusal']})"
    )
    tick_until(svc, ctl, t0 + timedelta(hours=5))
    assert (svc.get(started).step, svc.get(started).held) == (1, None)
