"""A step with ``promote: manual``: the controller bakes and watches it, then waits for a person.

As Spinnaker's Manual Judgment and Argo Rollouts' indefinite pause: the controller never promotes
the step itself, says once that it waits (``held``), keeps the rollback contract armed meanwhile,
and a person's ``release promote`` (with the step baked and its analysis passing) moves it on.
"""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

import shiprail.controller
from shiprail import describe
from shiprail.cli import watch
from shiprail.domain.states import Action
from shiprail.errors import GateFailed, OverrideRefused
from shiprail.notifiers.notifier import Notifier
from shiprail.project import check_plan_file
from shiprail.releases import Releases
from shiprail.store import audit
from shiprail.store.models import GateEvaluation
from tests.integration.controller.test_controller import PLAN, REASON, FakeRouter, TurnsBad, controller, svc
from tests.integration.controller.test_freeze_hold import tick_until
from tests.integration.controller.test_revert_by_hand import cli
from tests.support.overrides import override

__all__ = ["cli", "svc"]

WAITS = "step 2 (10%) waits for a person to promote it (promote: manual): `shiprail release promote checkout-2.4.0`"


@pytest.fixture
def started(svc: Releases) -> str:
    """The example release with its 10% step promoted by a person, through Stage, at its first step."""
    PLAN.write_text(PLAN.read_text().replace("- {weight: 10, bake: 2h}", "- {weight: 10, bake: 2h, promote: manual}"))
    rid = svc.create(check_plan_file(PLAN), "alice").id
    for _ in range(2):
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", "Fixed in the pipeline.")
    return rid


def held_events(svc: Releases, rid: str) -> list[dict[str, object]]:
    with svc.store.transaction() as s:
        return [json.loads(r.payload) for r in audit.rows(s) if r.release_id == rid and r.kind == "release.held"]


def judgments(svc: Releases, rid: str) -> list[tuple[str, str]]:
    with svc.store.transaction() as s:
        rows = s.execute(
            select(GateEvaluation).where(GateEvaluation.release_id == rid, GateEvaluation.gate == "judgment")
        ).scalars()
        return [(r.verdict, r.reason) for r in rows]


def test_the_controller_waits_for_a_person_at_a_manual_step_and_the_person_moves_it_on(
    svc: Releases, started: str
) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    t0 = svc.clock.now()
    tick_until(svc, ctl, t0 + timedelta(hours=6))  # 30m at 1%, then 2h at 10% baked long ago
    view = svc.get(started)
    assert (view.step, router.calls) == (1, [1, 10])
    assert view.resolved.steps[1].promote == "manual"
    # Said once, however many analyses passed since (and shown where people look).
    [held] = held_events(svc, started)
    assert (held["gate"], held["reason"], held["state"]) == ("judgment", WAITS, "rolling_out (step 2)")
    assert view.held is not None and view.held["reason"] == WAITS
    assert describe.held(view) == f"held since 2026-01-01 02:30:00Z: {WAITS}"
    assert judgments(svc, started) == [("fail", WAITS)]  # asked once, not at every analysis
    # A person promotes: the judgment passes with their name, and the controller carries on.
    svc.act(started, Action.PROMOTE, "alice")
    assert svc.get(started).step == 2 and svc.get(started).held is None
    assert judgments(svc, started)[1:] == [("pass", "alice promoted step 2 (10%), which waits for a person")]
    tick_until(svc, ctl, t0 + timedelta(hours=12))
    assert router.calls == [1, 10, 50, 100]


def test_rollback_stays_armed_while_a_manual_step_waits(svc: Releases, started: str) -> None:
    behaviour = TurnsBad()
    router = FakeRouter()
    ctl = controller(svc, router, behaviour)
    ctl.tick()
    t0 = svc.clock.now()
    tick_until(svc, ctl, t0 + timedelta(hours=4))
    assert svc.get(started).held is not None
    behaviour.bad = True
    tick_until(svc, ctl, t0 + timedelta(hours=4, minutes=20))
    assert (svc.get(started).status, router.calls[-1]) == ("rolled_back", 0)


def test_a_manual_step_is_not_promoted_before_it_has_baked_even_by_a_person(svc: Releases, started: str) -> None:
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(minutes=50))  # at 10% for 20 minutes
    assert svc.get(started).step == 1
    with pytest.raises(GateFailed, match=r"gate bake failed \(10% has 1h40m of its 2h bake left\)"):
        svc.act(started, Action.PROMOTE, "alice")


def test_a_plan_without_manual_steps_stores_its_steps_as_before() -> None:
    # The hash approvals approve is of the stored JSON: a step the controller promotes serialises
    # without `promote`, so releases stored by an earlier shiprail keep their hash on `release update`.
    from shiprail.schema.plan import Step

    assert Step(weight=10, bake=60).model_dump() == {"weight": 10.0, "bake": "1m"}
    manual = Step(weight=10, bake=60, promote="manual")
    assert manual.model_dump() == {"weight": 10.0, "bake": "1m", "promote": "manual"}


def test_a_manual_step_paused_and_resumed_still_says_it_waits_for_a_person(svc: Releases, started: str) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    t0 = svc.clock.now()
    tick_until(svc, ctl, t0 + timedelta(hours=4))
    held_at = svc.get(started).held
    assert held_at is not None and held_at["reason"] == WAITS
    svc.act(started, Action.PAUSE, "alice", reason="looking at a dashboard")
    svc.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    svc.act(started, Action.RESUME, "alice")
    tick_until(svc, ctl, t0 + timedelta(hours=5))
    view = svc.get(started)
    # Still at the step, waiting for a person, and saying so where people look (the controller,
    # holding, does not ask again): not a step that looks as if it should move on by itself.
    assert (view.status, view.step, router.calls) == ("rolling_out", 1, [1, 10])
    assert view.held == held_at
    assert len(held_events(svc, started)) == 1


def test_an_override_at_a_manual_step_says_a_promote_is_what_moves_it_on(svc: Releases, started: str) -> None:
    # An executive reading "held: … waits for a person" who reaches for `release override` was told
    # there was nothing to override, and not what to do.
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, svc.clock.now() + timedelta(hours=4))
    with pytest.raises(OverrideRefused) as refused:
        svc.override(started, "dana", "the dashboards look fine to me")
    assert str(refused.value) == (
        "step 2 (10%) waits for a person to promote it (promote: manual), and it needs no override: no gate of "
        "its promotion fails for you; promote it with `shiprail release promote checkout-2.4.0`"
    )
    assert svc.get(started).step == 1


def test_a_manual_step_a_freeze_held_says_it_waits_for_a_person_once_the_freeze_ends(
    svc: Releases, started: str
) -> None:
    # A person's promote refused by a freeze was the latest attempt at the step: after the freeze
    # ended, release show (its JSON, the status pages) still said "held … freeze 'maintenance' until
    # 04:00", a hold long over, while the step waited for a person to promote it.
    from datetime import datetime

    from shiprail.schema.policy import Freeze

    svc.policy.freezes.append(Freeze(name="maintenance", start=datetime(2026, 1, 1, 2), end=datetime(2026, 1, 1, 4)))
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    t0 = svc.clock.now()
    tick_until(svc, ctl, t0 + timedelta(hours=2, minutes=40))  # step 2 baked at 02:30, in the freeze
    with pytest.raises(GateFailed, match=r"gate freeze failed \(freeze 'maintenance' until 2026-01-01 04:00 UTC\)"):
        svc.act(started, Action.PROMOTE, "alice")
    during = svc.get(started).held
    assert during is not None and during["reason"] == "freeze 'maintenance' until 2026-01-01 04:00 UTC"
    assert during["at"] == "2026-01-01T02:40:00+00:00"
    svc.clock.advance(timedelta(minutes=80))  # type: ignore[attr-defined]  # 04:00: the freeze is over
    after = svc.get(started)
    assert (after.step, after.held) == (1, {"gate": "judgment", "reason": WAITS, "at": "2026-01-01T02:30:00+00:00"})
    assert after.to_json()["held"] == after.held
    assert describe.held(after) == f"held since 2026-01-01 02:30:00Z: {WAITS}"
    tick_until(svc, ctl, t0 + timedelta(hours=5))  # the controller does not promote it either
    assert svc.get(started).step == 1 and svc.get(started).held == after.held


def test_start_wait_stops_at_a_manual_step_and_says_how_to_promote_it(
    svc: Releases, started: str, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`release start --wait` kept driving a baked manual step, where nothing happens until a person
    promotes it: a CI job waited for ever (or until --timeout, exit 1, as if the release had failed)."""
    router = FakeRouter()
    monkeypatch.setattr(shiprail.controller, "Controller", lambda svc, **kw: controller(svc, router, **kw))
    monkeypatch.setattr(Notifier, "run", lambda self, stop: stop.wait())  # its sleeps would move the clock
    # Each look of --wait is 10 simulated minutes later (the controller's own sleeps are simulated already).
    monkeypatch.setattr(watch, "time", SimpleNamespace(sleep=lambda s: svc.clock.advance(600)))  # type: ignore[attr-defined]
    t0 = svc.clock.now()
    code, out, err = cli("release", "start", started, "--wait", "--timeout", str(24 * 3600), "--json")
    assert code == 0, err
    view = json.loads(out)
    assert (view["status"], view["step"], view["held"]["gate"], router.calls) == ("rolling_out", 1, "judgment", [1, 10])
    assert svc.clock.now() - t0 == timedelta(hours=2, minutes=30)  # 30m at 1%, 2h at 10%: not a day
    lines = err.splitlines()
    assert [line[9:] for line in lines if " held: " in line] == [f"held: {WAITS}"]
    assert lines[-1] == (
        f"stopped following {started}: it is held at step 2 (10%) awaiting promotion (promote: manual): promote it "
        f"with `shiprail release promote {started}`; until then its contract is analysed (and a breach rolls it "
        "back), and once promoted it moves on, only while a `shiprail controller` runs (or `shiprail release start "
        f"{started} --wait` again)"
    )
    # Run again on the held release, it returns at once, saying the same; promoted, it follows the rest.
    at = svc.clock.now()
    code, _, again = cli("release", "start", started, "--wait")
    assert (code, again.splitlines()[-1], svc.clock.now()) == (0, lines[-1], at)
    assert len(held_events(svc, started)) == 1  # not said again
    svc.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]  # alice looks at the dashboards
    svc.act(started, Action.PROMOTE, "alice")
    code, _, err = cli("release", "start", started, "--wait", "--timeout", str(48 * 3600), "--json")
    assert (code, svc.get(started).status, router.calls) == (0, "complete", [1, 10, 50, 100]), err
