"""An override covers the refusal its author saw: the gate and what refused it, not the gate's name.

A freeze named ``maintenance`` that an executive was shown does not let an override pass another
freeze begun since under the same gate (``black-friday``), nor does a refusal of one person on call
let it pass another after a handover: the release holds, and the refusal says a new override is
needed, naming the refusal to override (``--gate freeze@…``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shiprail import describe
from shiprail.domain.engine import ReleaseState
from shiprail.domain.refusals import reference
from shiprail.domain.states import Action, Status
from shiprail.errors import BadInput, GateFailed, OverrideRefused
from shiprail.project import open_project
from shiprail.releases import Releases
from shiprail.schema.policy import Freeze
from shiprail.store import audit
from shiprail.store.models import Override
from tests.integration.controller.test_controller import INTERVAL, FakeRouter, controller, started, svc
from tests.integration.controller.test_freeze_hold import REASON, tick_until

__all__ = ["started", "svc"]

# The simulated clock starts at 2026-01-01 00:00 UTC: the 1% step has baked its 30m at 00:30, in
# maintenance; black-friday begins at 01:00, while maintenance still holds the step.
MAINTENANCE = Freeze(name="maintenance", start=datetime(2026, 1, 1, 0, 20), end=datetime(2026, 1, 1, 2))
BLACK_FRIDAY = Freeze(name="black-friday", start=datetime(2026, 1, 1, 1), end=datetime(2026, 1, 1, 6))
STEP_1 = ReleaseState(Status.ROLLING_OUT, step=0)


def suggested_gates(refusal: GateFailed) -> list[str]:
    """The ``--gate`` values of the override a refusal suggests."""
    return re.findall(r"--gate (\S+)", refusal.message)


def overrides(svc: Releases) -> int:
    with svc.store.transaction() as s:
        return int(s.execute(select(func.count()).select_from(Override)).scalar_one())


def events(svc: Releases, rid: str, kind: str) -> list[dict[str, object]]:
    with svc.store.transaction() as s:
        return [json.loads(r.payload) for r in audit.rows(s) if r.release_id == rid and r.kind == kind]


def test_an_override_of_one_freeze_does_not_pass_another_begun_since_under_the_same_gate(
    svc: Releases, started: str
) -> None:
    svc.policy.freezes.extend([MAINTENANCE, BLACK_FRIDAY])
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T00:40:00+00:00"))  # held at 00:30 by maintenance
    with pytest.raises(GateFailed) as seen:
        svc.act(started, Action.PROMOTE, "alice")
    maintenance = reference("freeze", [{"name": "maintenance", "until": "2026-01-01T02:00:00+00:00"}])
    assert suggested_gates(seen.value) == [maintenance]
    assert f"--at 'rolling_out (step 1)' --gate {maintenance} --reason ..." in seen.value.message
    [refusal] = [e for e in events(svc, started, "gate.evaluated") if e["verdict"] == "fail"][-1:]
    assert refusal["refused_by"] == [{"name": "maintenance", "until": "2026-01-01T02:00:00+00:00"}]
    # Where people look: each refusal with its reference, and the hold with the one it holds for.
    view = svc.get(started)
    assert [g.get("refusal") for g in view.gates if g["gate"] == "freeze"][-2:] == [maintenance, maintenance]
    assert view.held is not None and view.held["refusal"] == maintenance
    with pytest.raises(BadInput, match=r"name two refusals of gate freeze; name the one you override"):
        svc.override(started, "dana", REASON, [maintenance, "freeze@00000000"], seen=STEP_1)
    # 01:30: black-friday has begun too (it ends last, so the gate names it). Nobody has shown the
    # executive that: the override they were suggested, or one of the gate by name, or one of
    # what refused the promotion, passes nothing.
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T01:30:00+00:00"))
    before = overrides(svc)
    for gates in ([maintenance], ["freeze"], []):
        with pytest.raises(OverrideRefused) as refused:
            svc.override(started, "dana", REASON, gates, seen=STEP_1)
        now = refused.value.message
        assert now.startswith(
            f"gate freeze of release {started} fails now for freeze 'black-friday' until 2026-01-01 06:00 UTC, not "
        )
        assert (
            "an override covers the refusal its author saw, so this one needs an override of its own; nothing was "
            f"overridden. Look again (`shiprail release show {started}`) and override it with --gate freeze@" in now
        )
    assert refused.value.message.split(", not ", 1)[1].startswith(
        "for what refused it since it became rolling_out (step 1) (freeze 'maintenance' until 2026-01-01 02:00 UTC)"
    )
    view = svc.get(started)
    assert (view.step, overrides(svc), view.postmortems[-1]["status"]) == (0, before, "done")
    # Shown the new refusal, the executive passes it: the override records both windows it passed.
    with pytest.raises(GateFailed) as shown:
        svc.act(started, Action.PROMOTE, "alice")
    [both] = suggested_gates(shown.value)
    assert both != maintenance
    assert svc.override(started, "dana", REASON, [both], seen=STEP_1).allowed
    windows = [
        {"name": "black-friday", "until": "2026-01-01T06:00:00+00:00"},
        {"name": "maintenance", "until": "2026-01-01T02:00:00+00:00"},
    ]
    view = svc.get(started)
    assert (view.step, view.overrides[-1]["gates"], view.overrides[-1]["refused_by"]) == (
        1,
        ["freeze"],
        {"freeze": windows},
    )
    granted = events(svc, started, "override.granted")[-1]
    assert (granted["gates"], granted["refused_by"]) == (["freeze"], {"freeze": windows})


def test_a_reference_copied_in_another_case_names_the_same_refusal(svc: Releases, started: str) -> None:
    # Copied from a terminal or chat the digest may come back upper-cased: it was refused as another refusal.
    svc.policy.freezes.append(MAINTENANCE)
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T00:40:00+00:00"))
    with pytest.raises(GateFailed) as shown:
        svc.act(started, Action.PROMOTE, "alice")
    [maintenance] = suggested_gates(shown.value)
    name, digest = maintenance.split("@")
    assert svc.override(started, "dana", REASON, [f"{name}@{digest.upper()}"], seen=STEP_1).allowed
    view = svc.get(started)
    assert (view.step, view.overrides[-1]["gates"], view.overrides[-1]["refused_by"]) == (
        1,
        ["freeze"],
        {"freeze": [{"name": "maintenance", "until": "2026-01-01T02:00:00+00:00"}]},
    )


def test_an_override_of_two_freezes_covers_the_one_still_on_once_the_other_has_ended(
    svc: Releases, started: str
) -> None:
    """The executive was shown maintenance and black-friday refusing the promotion; by the time the
    override runs maintenance has ended: black-friday refused then too, so the override passes it."""
    svc.policy.freezes.extend([MAINTENANCE, BLACK_FRIDAY])
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T01:30:00+00:00"))
    with pytest.raises(GateFailed) as shown:
        svc.act(started, Action.PROMOTE, "alice")
    [both] = suggested_gates(shown.value)
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T02:30:00+00:00"))  # maintenance is over
    assert svc.override(started, "dana", REASON, [both], seen=STEP_1).allowed
    view = svc.get(started)
    assert (view.step, view.overrides[-1]["refused_by"]) == (
        1,
        {"freeze": [{"name": "black-friday", "until": "2026-01-01T06:00:00+00:00"}]},
    )


def test_an_override_of_one_person_on_call_does_not_pass_another_after_a_handover(svc: Releases, started: str) -> None:
    policy = Path("shiprail.yaml")
    text = policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]")
    policy.write_text(text.replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    ctl = controller(now, FakeRouter())
    for _ in range(60):  # to 100%, held before Verify: bob may not be on call
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    with pytest.raises(GateFailed) as seen:
        now.act(started, Action.PROMOTE, "alice")
    bob = reference("on_call", ["bob"])
    assert suggested_gates(seen.value) == [bob]
    assert (describe.held(now.get(started)) or "").endswith(f" ({bob})")  # release show's held line
    # Handed over to erin, who then leaves the rota: the gate refuses for erin now.
    now.handover(started, "erin", "dana", "bob moved to the platform team")
    policy.write_text(text.replace("people:\n", "people:\n  erin: {roles: []}\n"))
    later = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    at = ReleaseState(Status.ROLLING_OUT, step=3)
    for gates in ([bob], ["on_call"], []):
        with pytest.raises(OverrideRefused) as refused:
            later.override(started, "dana", "bob covers the window; the rota is being fixed", gates, seen=at)
        assert refused.value.message.startswith(
            f"gate on_call of release {started} fails now for erin, on call for Verify, needs the role oncall in "
            "shiprail.yaml and has no role;"
        )
        assert refused.value.message.endswith(f"override it with --gate {reference('on_call', ['erin'])}")
    view = later.get(started)
    assert (view.status, view.step) == ("rolling_out", 3)
    assert all("on_call" not in o["gates"] for o in view.overrides)
    # The person the executive was shown: passed, and recorded as such.
    assert later.override(
        started, "dana", "erin covers the window tonight", [reference("on_call", ["erin"])], seen=at
    ).allowed
    assert later.get(started).overrides[-1]["refused_by"] == {"on_call": ["erin"]}


def test_an_override_stored_before_refusals_were_told_apart_reads_as_passed_by_name(
    svc: Releases, started: str
) -> None:
    svc.policy.freezes.append(MAINTENANCE)
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    tick_until(svc, ctl, datetime.fromisoformat("2026-01-01T00:40:00+00:00"))
    assert svc.override(started, "dana", REASON).allowed
    with svc.store.transaction() as s:
        for row in s.execute(select(Override)).scalars():
            row.refused_by = None  # as migration 0011 leaves the overrides stored before it
    view = svc.get(started)
    assert [o["refused_by"] for o in view.overrides] == [None, None, None]
    assert [o["gates"] for o in view.overrides][-1] == ["freeze"]


def test_a_dry_run_trigger_flapping_is_not_part_of_the_analysis_refusal(svc: Releases, started: str) -> None:
    """A dry-run trigger acts on nothing (docs/rollout.md): one that fails in one analysis and
    passes in the next does not make the analysis gate's refusal another, so the override an
    executive was suggested still covers it."""
    from shiprail.store.models import Analysis

    ctl = controller(svc, FakeRouter())
    ctl.tick()  # the router confirms the 1% step

    def analysis(dry_run_verdict: str) -> None:
        rows = [
            {"trigger": "errors", "verdict": "inconclusive"},
            {"trigger": "errors-v2", "verdict": dry_run_verdict, "dry_run": True},
        ]
        with svc.store.transaction() as s:
            s.add(
                Analysis(
                    release_id=started,
                    at=svc.clock.now(),
                    status="rolling_out",
                    step=0,
                    weight=1.0,
                    verdict="inconclusive",
                    results=json.dumps(rows),
                )
            )

    analysis("fail")
    with pytest.raises(GateFailed) as seen:
        svc.act(started, Action.PROMOTE, "alice")
    suggested = suggested_gates(seen.value)
    assert reference("analysis", ["errors"]) in suggested
    svc.clock.advance(INTERVAL)
    analysis("pass")  # the dry run passes now; the armed trigger is as inconclusive as it was
    assert svc.override(started, "dana", REASON, suggested, seen=STEP_1).allowed
    assert svc.get(started).overrides[-1]["refused_by"]["analysis"] == ["errors"]
