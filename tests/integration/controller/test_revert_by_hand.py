"""A revert no router will ever confirm (its nginx host gone, the service moved to HAProxy) is
confirmed by hand: an executive's override of ``revert_confirmed``, accountable and marked as such.

Only once the revert has been unconfirmed past the limit at which the controller announces it stuck
(``revert_stuck``); before that the controller keeps trying and the override is refused. Everyone who
reads the rollback log afterwards (release show, the package, the retrospective, the notifications)
is told a person confirmed it, not the router.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shiprail.cli import release as release_cli
from shiprail.cli import report
from shiprail.cli.main import main
from shiprail.clock import SimulatedClock
from shiprail.controller import Controller
from shiprail.domain.engine import ReleaseState
from shiprail.domain.states import Action, Status
from shiprail.errors import IllegalTransition, OverrideRefused, PermissionDenied
from shiprail.export import package
from shiprail.export.verify import verify_package
from shiprail.notifiers.events import event_of
from shiprail.notifiers.messages import Message, headline
from shiprail.project import check_plan_file
from shiprail.releases import Releases
from shiprail.routers import RouterError
from shiprail.store.models import Retrospective
from tests.integration.controller.test_controller import (
    PLAN,
    REASON,
    Crash,
    FakeProvider,
    FakeRouter,
    chain_ok,
    controller,
    healthy,
    kinds,
    payloads,
    started,
    svc,
    transitions,
)
from tests.support.overrides import override

__all__ = ["started", "svc"]

WHY = "nginx-7 was decommissioned; I checked by hand that checkout 2.4.0 takes no traffic"


class Gone(FakeRouter):
    """The router of a host that no longer exists: every call fails, for ever."""

    def set_weight(self, weight: float) -> None:
        if weight == 0:
            raise OSError("connect to nginx-7:8080: no route to host")
        super().set_weight(weight)


@pytest.fixture
def cli(svc: Releases, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*args)`` runs ``shiprail`` in-process against the fixture's store and clock."""
    monkeypatch.setattr(release_cli, "releases", lambda db, project=None, **kw: svc)
    monkeypatch.setattr(report, "releases", lambda db, project=None: svc)
    monkeypatch.setattr(report, "open_store", lambda db, start=None, *, create=True: svc.store)
    monkeypatch.delenv("SHIPRAIL_AUDIT_KEY", raising=False)
    capsys.readouterr()

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def stuck_for(svc: Releases, ctl: Controller, seconds: float) -> None:
    """Drive the controller against the dead router for ``seconds`` of simulated time."""
    end = svc.clock.now() + timedelta(seconds=seconds)
    while svc.clock.now() < end:
        wake = ctl.tick()
        assert wake is not None
        svc.clock.sleep_until(min(wake, end))  # type: ignore[attr-defined]


def refused_by_hand(svc: Releases, cli: Any, rid: str) -> str:
    """Dana's confirmation by hand of ``rid``'s revert, refused (exit 1, nothing stored): what it said."""
    before, overrides = kinds(svc, rid), svc.get(rid).overrides
    code, out, err = cli("release", "override", rid, "--as", "dana", "--at", "rolling_back", "--reason", WHY)
    assert (code, out) == (1, "")
    view = svc.get(rid)
    assert (view.status, view.overrides, kinds(svc, rid)) == ("rolling_back", overrides, before)
    assert view.rollbacks[0]["revert_confirmed_at"] is None
    return " ".join(err.split())


@pytest.fixture
def reverting(svc: Releases, started: str) -> Iterator[tuple[str, Controller]]:
    """The example release rolled back by bob at step 1, behind a router that never answers again."""
    ctl = controller(svc, Gone())
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    yield started, ctl
    ctl.close()


def test_a_revert_is_not_confirmed_by_hand_before_the_controller_calls_it_stuck(
    svc: Releases, reverting: tuple[str, Controller], cli: Any
) -> None:
    rid, ctl = reverting
    stuck_for(svc, ctl, 90)
    assert refused_by_hand(svc, cli, rid) == (
        f"error: release {rid}'s revert has been unconfirmed for 1m30s only since a controller first asked the router "
        "for weight 0, and a controller (`shiprail controller`) keeps asking: it may be confirmed by hand once "
        "unconfirmed for 2m since that first attempt (the limit at which the controller announces it stuck), in 30s; "
        "nothing was overridden"
    )


def test_a_revert_no_controller_has_tried_is_not_confirmed_by_hand_and_the_limit_counts_from_the_first_try(
    svc: Releases, started: str, cli: Any
) -> None:
    """Rolled back while no controller ran: nobody asked the router for weight 0, so the executive's
    word would be the only evidence (no failed attempt, no metrics after), however long it waited."""
    ctl = controller(svc, Gone())
    ctl.tick()  # 1% applied
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    svc.clock.advance(600)  # type: ignore[attr-defined]
    assert refused_by_hand(svc, cli, started) == (
        f"error: release {started}'s revert was never tried: no controller has asked the router for weight 0 yet; "
        "start one (`shiprail controller`, or `shiprail serve`, which runs one inside) and confirm it by hand only "
        "if the router has not confirmed weight 0 2m after the controller's first attempt; nothing was overridden"
    )
    assert svc.get(started).rollbacks[0]["revert_started_at"] is None
    # A controller starts 10 minutes late: stuck at its first failure (the canary kept traffic since
    # the decision), but the router has had 1m30s of its attempts, not 11m30s, to confirm.
    first_try = svc.clock.now()
    stuck_for(svc, ctl, 90)
    assert payloads(svc, started, "rollback.stuck")[0]["unconfirmed_s"] == 600
    assert svc.get(started).rollbacks[0]["revert_started_at"] == first_try.isoformat()
    assert refused_by_hand(svc, cli, started) == (
        f"error: release {started}'s revert has been unconfirmed for 1m30s only since a controller first asked the "
        "router for weight 0, and a controller (`shiprail controller`) keeps asking: it may be confirmed by hand "
        "once unconfirmed for 2m since that first attempt (the limit at which the controller announces it stuck), "
        "in 30s; nothing was overridden"
    )
    stuck_for(svc, ctl, 30)
    code, out, err = cli("release", "override", started, "--as", "dana", "--at", "rolling_back", "--reason", WHY)
    assert (code, out.startswith(f"overridden: {started} is now rolled_back; post-mortem #")) == (0, True), err
    [log] = svc.get(started).rollbacks
    assert (log["detected_to_confirmed_s"], log["confirmation"]["by_hand"]) == (720, True)
    ctl.close()


def test_a_revert_whose_router_cannot_even_be_built_is_tried_and_confirmed_by_hand(
    svc: Releases, started: str, cli: Any
) -> None:
    """Rolled back, then the controller restarted without the release's router plugin (uninstalled in
    an upgrade): every pass fails building the router. That is the controller's attempt, on record
    (its router.intent for weight 0, ``revert_started_at``), so the executive may confirm it by hand
    2m on, as rollback.stuck tells them to; it was refused as "never tried" for ever."""
    first = controller(svc, FakeRouter())
    first.tick()  # 1% applied
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    first.close()

    def routers(r: Any) -> FakeRouter:
        raise RouterError("there is no router of type 'envoy'")

    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    provider = FakeProvider(clock, healthy)
    ctl = Controller(svc, routers=routers, providers=lambda r: provider)  # type: ignore[arg-type,return-value]
    first_try = svc.clock.now()
    stuck_for(svc, ctl, 150)
    assert [p["error"] for p in payloads(svc, started, "rollback.stuck")] == [
        "RouterError: there is no router of type 'envoy'"
    ]
    [intent] = [p for p in payloads(svc, started, "router.intent") if p["weight"] == 0]
    assert intent["revert_started_at"] == first_try.isoformat()
    assert svc.get(started).rollbacks[0]["revert_started_at"] == first_try.isoformat()
    code, out, err = cli("release", "override", started, "--as", "dana", "--at", "rolling_back", "--reason", WHY)
    assert (code, out.startswith(f"overridden: {started} is now rolled_back; post-mortem #")) == (0, True), err
    [log] = svc.get(started).rollbacks
    assert (log["detected_to_confirmed_s"], log["confirmation"]["by_hand"]) == (150, True)
    ctl.close()


def test_the_owner_may_not_confirm_the_revert_by_hand(svc: Releases, reverting: tuple[str, Controller]) -> None:
    rid, ctl = reverting
    stuck_for(svc, ctl, 180)
    svc.policy.people["alice"].roles.append("executive")  # alice owns it: an executive, but no judge of it
    with pytest.raises(PermissionDenied, match=r"^alice owns this release and may not override its gates"):
        svc.override(rid, "alice", WHY, seen=ReleaseState(Status.ROLLING_BACK))
    assert svc.get(rid).status == "rolling_back"


def test_an_executive_confirms_a_stuck_revert_by_hand_and_everyone_is_told(
    svc: Releases, reverting: tuple[str, Controller], cli: Any, tmp_path: Path
) -> None:
    rid, ctl = reverting
    stuck_for(svc, ctl, 360)  # past the contract's revert.max_duration (5m) too
    assert payloads(svc, rid, "rollback.stuck")
    # Another release of checkout cannot start while this one holds the router.
    waiting = svc.create(check_plan_file(PLAN), "alice").id
    override(svc, waiting, "dana", REASON)  # its Stage gates
    svc.close_postmortem(waiting, "dana", "Holiday rota needs two approvers.")
    with pytest.raises(IllegalTransition, match=f"release {rid} of checkout is rolling_back"):
        svc.act(waiting, Action.START, "alice")
    code, out, err = cli("release", "override", rid, "--as", "dana", "--at", "rolling_back", "--reason", WHY)
    assert code == 0, err
    assert out.startswith(f"overridden: {rid} is now rolled_back; post-mortem #")
    view = svc.get(rid)
    assert view.status == "rolled_back"
    assert transitions(svc, rid)[-2:] == ["rollback -> rolling_back", "finish_rollback -> rolled_back"]
    [ov] = [o for o in view.overrides if o["action"] == "finish_rollback"]
    assert (ov["by"], ov["gates"], ov["reason"]) == ("dana", ["revert_confirmed"], WHY)
    assert view.postmortems[-1]["status"] == "open" and view.postmortems[-1]["override_id"] == ov["id"]
    [log] = view.rollbacks
    assert log["revert_confirmed_at"] == svc.clock.now().isoformat()
    assert log["detected_to_confirmed_s"] == 360
    assert (log["max_duration_s"], log["max_duration_met"]) == (300.0, False)
    assert log["confirmation"] == {
        "by_hand": True,
        "confirmed": True,
        "confirmed_by": "dana",
        "override_id": ov["id"],
        "reason": WHY,
        "summary": f"not read back from the router: confirmed by hand by dana (override #{ov['id']}): {WHY}",
    }
    assert view.router_trouble is None  # over: nobody retries its weight
    [confirmed] = payloads(svc, rid, "rollback.confirmed")
    assert confirmed == {
        "rollback_id": log["id"],
        "revert_started_at": log["revert_started_at"],
        "confirmation": log["confirmation"],
        "detected_to_confirmed_s": 360.0,
        "max_duration_s": 300.0,
        "met": False,
        "by_hand": True,
        "override_id": ov["id"],
    }
    [recovered] = payloads(svc, rid, "rollback.recovered")
    assert recovered["by_hand"] is True
    assert recovered["reason"] == (
        f"confirmed by hand by dana (override #{ov['id']}) 6m after the rollback was decided, the router never "
        f"having confirmed weight 0: {WHY}"
    )
    # The audience told the revert was stuck hears how it ended.
    said = Message(
        delivery_id=1,
        release_id=rid,
        service="checkout",
        version="2.4.0",
        baseline="2.3.1",
        summary="",
        event=event_of("rollback.recovered", recovered) or "",
        audience="sre",
        channel="slack",
        seq=1,
        kind="rollback.recovered",
        actor="dana",
        at=svc.clock.now(),
        state="rolled_back",
        payload=recovered,
    )
    assert headline(said).startswith("checkout 2.4.0's stuck rollback was confirmed BY HAND, not by the router: ")
    assert chain_ok(svc)
    # The controller lets it go: no more calls, no more events.
    after = kinds(svc, rid)
    assert ctl.tick() is None
    svc.clock.advance(600)  # type: ignore[attr-defined]
    assert ctl.tick() is None
    assert kinds(svc, rid) == after

    # release show: a person, not the router.
    code, out, _ = cli("release", "show", rid)
    assert code == 0
    assert f"BY HAND dana confirmed it (override #{ov['id']}), not the router: {WHY}" in " ".join(out.split())
    # The retrospective and the package say so too, and the package verifies.
    with svc.store.transaction() as s:
        body = s.execute(select(Retrospective.body).where(Retrospective.release_id == rid)).scalar_one()
    hand = f"dana confirmed it by hand (override #{ov['id']}), not the router: “{WHY}”"
    assert f"The router never confirmed the revert: {hand}, 6m after detection." in body
    assert f"the router never confirmed that all traffic was back on 2.3.1: {hand}, at " in body
    assert "The revert was confirmed" not in body
    out_dir = tmp_path / "pkg"
    package.write_package(svc.store, svc.clock.now(), rid, out_dir)
    rollback_md = (out_dir / "rollback.md").read_text()
    assert f"| Confirmed by | {hand} |" in rollback_md
    assert "| Revert confirmed | 2026-01-01 00:06:00 (by hand) |" in rollback_md
    assert json.loads((out_dir / "rollback.json").read_text())["rollbacks"][0]["confirmation"]["by_hand"] is True
    assert verify_package(out_dir).ok

    # The service's router is free: the release of checkout that waited for it starts.
    svc.close_postmortem(rid, "dana", "nginx-7's router entry removed from services/checkout.yaml.")
    override(svc, waiting, "dana", REASON)
    assert svc.get(waiting).status == "rolling_out"


def test_a_revert_the_router_confirms_first_is_not_confirmed_by_hand(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router comes back just as the executive confirms by hand: whichever is first wins, and the
    override finds the revert confirmed (or the release moved on) and records nothing."""
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    router.failures = 10**9
    stuck_for(svc, ctl, 180)
    router.failures = 0

    def crash(*args: object) -> bool:
        raise Crash  # the controller recorded the router's confirmation, and stops before finishing

    monkeypatch.setattr(ctl, "_move", crash)
    with pytest.raises(Crash):
        stuck_for(svc, ctl, 60)
    before = kinds(svc, started)
    rolling_back = ReleaseState(Status.ROLLING_BACK)
    with pytest.raises(OverrideRefused) as refused:
        svc.override(started, "dana", WHY, seen=rolling_back)
    assert refused.value.message == (
        f"release {started}'s revert is confirmed by the router now; nothing was overridden: the controller ends "
        f"the rollback at its next pass (`shiprail release show {started}`)"
    )
    assert kinds(svc, started) == before
    monkeypatch.undo()
    controller(svc, router).run(until_done=True)
    with pytest.raises(OverrideRefused, match=rf"^release {started} is rolled_back now, not rolling_back as when"):
        svc.override(started, "dana", WHY, seen=rolling_back)
    view = svc.get(started)
    assert view.status == "rolled_back" and view.rollbacks[0]["confirmation"] is None
    assert [o["action"] for o in view.overrides] == ["stage", "start"]
    assert payloads(svc, started, "rollback.confirmed")[0].get("by_hand") is None
