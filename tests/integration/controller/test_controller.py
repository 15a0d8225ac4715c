"""The controller on a real store (SQLite and PostgreSQL) and a simulated clock.

Router and provider are fakes here (the real ones are exercised in tests/e2e); a 31-hour release
runs in well under a second. What is pinned: each weight applied exactly once, bake only under
passing analyses, rollback on the first failing analysis with its log, no-data pause and resume,
router retries, never a rollback reported done before the router confirms weight 0, and a
controller killed between acting and recording that resumes without acting twice.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy import text as sql
from sqlalchemy.exc import DataError

from shiprail import __version__, defaults
from shiprail.clock import SimulatedClock
from shiprail.controller import Controller, leases
from shiprail.controller.health import VERDICTS, ControllerHealth
from shiprail.controller.leases import acquire, held_by
from shiprail.domain.contract import Sample
from shiprail.domain.refusals import reference
from shiprail.domain.states import Action
from shiprail.errors import BadInput, GateFailed, IllegalTransition, OverrideRefused, SchemaChanged
from shiprail.project import PolicyWatch, check_plan_file, open_project
from shiprail.providers.push import record_signal
from shiprail.releases import Releases
from shiprail.routers import RouterError
from shiprail.schema.resolved import ResolvedRelease
from shiprail.schema.service import Metric
from shiprail.store import audit
from shiprail.store.db import SCHEMA_HEAD, Store
from shiprail.store.models import Lease, RouterIntent
from shiprail.store.rollouts import latest_analysis
from tests.support import samples
from tests.support.overrides import override
from tests.support.plans import without_regression_triggers
from tests.support.sample_service import SampleService
from tests.support.stores import connection_cutter

PLAN = Path("releases/checkout-2.4.0.yaml")
REASON = "Carol is out sick; Bob reviewed the whole diff twice"
INTERVAL = 10  # minutes between analyses
# 30m + 2h + 4h of bake, one passing analysis at 100% (a step with no bake), then 24h of Verify.
FULL = timedelta(minutes=30 + 120 + 240 + INTERVAL) + timedelta(hours=24)


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs."""


class FakeRouter:
    def __init__(self) -> None:
        self.weight = 0.0
        self.calls: list[float] = []
        self.failures = 0  # the next N set_weight calls fail
        self.crash_after: float | None = None  # die right after applying this weight

    def set_weight(self, weight: float) -> None:
        if self.failures:
            self.failures -= 1
            raise RouterError("admin socket refused the connection")
        self.calls.append(weight)
        self.weight = weight
        if self.crash_after == weight:
            self.crash_after = None
            raise Crash

    def current_weight(self) -> float:
        return self.weight


Behaviour = Callable[[str, str, datetime], Sample]


class FakeProvider:
    def __init__(self, clock: SimulatedClock, behaviour: Behaviour) -> None:
        self.clock = clock
        self.behaviour = behaviour

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        return self.behaviour(name, version, self.clock.now())


def healthy(name: str, version: str, now: datetime) -> Sample:
    return samples.healthy(name)


class TurnsBad:
    """Healthy until ``bad`` is set; then half the canary's requests fail."""

    def __init__(self) -> None:
        self.bad = False

    def __call__(self, name: str, version: str, now: datetime) -> Sample:
        if self.bad and name == "error_rate" and version == "2.4.0":
            return Sample(0.5, 1000)
        return healthy(name, version, now)


@pytest.fixture
def svc(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> Releases:
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    # The example plan's probes belong to issue #6's Verify; this test runs without them. An
    # analysis every 10 minutes keeps a 31-hour release to a few hundred store round trips.
    text = text[: text.index("  probes:")].replace("rollout:\n", f"rollout:\n  analysis_interval: {INTERVAL}m\n")
    PLAN.write_text(text)
    return Releases(store, SimulatedClock(), open_project(project).policy)


@pytest.fixture
def started(svc: Releases) -> str:
    """The example release, through its Stage gates by override, at its first step."""
    return start_example(svc)


def start_example(svc: Releases) -> str:
    """Create the example release and take it through its Stage gates by override, to its first step."""
    rid = svc.create(check_plan_file(PLAN), "alice").id
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Load tests now run in the pipeline.")
    return rid


def controller(svc: Releases, router: FakeRouter, behaviour: Behaviour = healthy, **kw: object) -> Controller:
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    provider = FakeProvider(clock, behaviour)

    def routers(r: ResolvedRelease) -> FakeRouter:
        return router

    def providers(r: ResolvedRelease) -> FakeProvider:
        return provider

    return Controller(svc, routers=routers, providers=providers, **kw)  # type: ignore[arg-type]


def kinds(svc: Releases, rid: str) -> list[str]:
    with svc.store.transaction() as s:
        return [r.kind for r in audit.rows(s) if r.release_id == rid]


def chain_ok(svc: Releases) -> bool:
    with svc.store.transaction() as s:
        seq, digest = audit.head(s)
        return audit.verify(audit.rows(s), head_seq=seq, head_hash=digest).ok


def transitions(svc: Releases, rid: str) -> list[str]:
    with svc.store.transaction() as s:
        return [
            f"{json.loads(r.payload)['action']} -> {json.loads(r.payload)['to']}"
            for r in audit.rows(s)
            if r.release_id == rid and r.kind == "release.transitioned"
        ]


def test_a_healthy_release_goes_through_every_weight_once_and_completes(svc: Releases, started: str) -> None:
    router = FakeRouter()
    t0 = svc.clock.now()
    controller(svc, router).run(until_done=True)
    view = svc.get(started)
    assert view.status == "complete"
    assert router.calls == [1, 10, 50, 100]
    # Each bake and the window end on an analysis: no time is skipped or added.
    assert svc.clock.now() - t0 == FULL
    assert transitions(svc, started)[-5:] == [
        "promote -> rolling_out (step 2)",
        "promote -> rolling_out (step 3)",
        "promote -> rolling_out (step 4)",
        "promote -> verifying",
        "complete -> complete",
    ]
    assert kinds(svc, started).count("analysis.completed") == FULL // timedelta(minutes=INTERVAL)
    assert view.rollbacks == []
    assert chain_ok(svc)


def test_an_error_canary_rolls_back_at_the_first_failing_analysis(svc: Releases, started: str) -> None:
    def errors(name: str, version: str, now: datetime) -> Sample:
        if name == "error_rate" and version == "2.4.0":
            return Sample(0.08, 500)
        return healthy(name, version, now)

    router = FakeRouter()
    t0 = svc.clock.now()
    controller(svc, router, errors).run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert router.calls == [1, 0]
    [log] = view.rollbacks
    assert (log["cause"], log["trigger"], log["value"], log["threshold"]) == ("trigger", "errors", 0.08, 0.01)
    assert log["reason"] == "trigger errors fired: 0.08 above the limit 0.01"
    assert log["initiated_by"] == "shiprail:controller"
    assert log["detected_at"] == (t0 + timedelta(minutes=INTERVAL)).isoformat()
    assert log["revert_confirmed_at"] is not None
    assert (log["max_duration_s"], log["max_duration_met"]) == (300, True)
    assert [m["trigger"] for m in log["metrics_after"]] == ["errors", "slow", "error-regression", "latency-regression"]
    assert log["metrics_after"][0]["canary"]["value"] == 0.08
    assert chain_ok(svc)


def test_latency_against_the_baseline_and_complaints_roll_back(svc: Releases, started: str) -> None:
    def slow(name: str, version: str, now: datetime) -> Sample:
        if name == "latency_p99":
            return Sample(0.9 if version == "2.4.0" else 0.3, 1000)
        return healthy(name, version, now)

    router = FakeRouter()
    controller(svc, router, slow).run(until_done=True)
    [log] = svc.get(started).rollbacks
    assert (log["trigger"], log["value"], log["threshold"]) == ("slow", 0.9, 0.6)


def test_complaints_posted_during_a_step_roll_back(svc: Releases, started: str) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()  # 1% applied
    assert router.calls == [1]
    svc.clock.advance(5)
    for _ in range(4):  # the contract allows 3
        record_signal(svc.store, svc.clock, service="checkout", name="customer_complaint", actor="support")
    ctl.run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert (view.rollbacks[0]["trigger"], view.rollbacks[0]["value"]) == ("complaints", 4.0)


def test_missing_data_pauses_then_resumes_and_never_bakes(svc: Releases, started: str) -> None:
    t0 = svc.clock.now()
    gap = (t0 + timedelta(minutes=10), t0 + timedelta(minutes=40))

    def outage(name: str, version: str, now: datetime) -> Sample:
        if gap[0] < now <= gap[1]:
            return Sample.failed("Prometheus: connection refused")
        return healthy(name, version, now)

    router = FakeRouter()
    controller(svc, router, outage).run(until_done=True)
    assert svc.get(started).status == "complete"
    steps = transitions(svc, started)
    assert steps[2:5] == ["pause -> paused (from rolling_out)", "resume -> rolling_out (step 1)", steps[4]]
    # Blind at 20, 30 and 40 minutes (paused after the third); the look at 50 finds data and
    # resumes but, made while paused, bakes nothing: the 30-minute bake ends 40 minutes late.
    assert svc.clock.now() - t0 == FULL + timedelta(minutes=40)
    assert router.calls == [1, 10, 50, 100]


def test_router_errors_are_retried_and_reported(svc: Releases, started: str) -> None:
    router = FakeRouter()
    router.failures = 2
    ctl = controller(svc, router)
    ctl.tick()
    assert router.weight == 1
    # The failed attempts of a pass are summed up in its outcome, one entry per distinct error.
    assert kinds(svc, started)[-2:] == ["router.intent", "router.applied"]
    [applied] = payloads(svc, started, "router.applied")
    assert applied["attempts"] == 3
    t0 = svc.clock.now() - timedelta(seconds=0.75)  # the backoffs after each failure: 0.25 s, 0.5 s
    assert applied["errors"] == [
        {
            "error": "admin socket refused the connection",
            "count": 2,
            "first_at": t0.isoformat(),
            "last_at": (t0 + timedelta(seconds=0.25)).isoformat(),
        }
    ]


OUTAGE = timedelta(hours=1)


def test_a_rollback_behind_a_dead_router_backs_off_and_sums_up_its_failures(svc: Releases, started: str) -> None:
    """An hour of a router that refuses every call, during a rollback: what the audit trail gets."""
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    decided = svc.clock.now()
    before = len(kinds(svc, started))
    router.failures = 10**9
    while svc.clock.now() < decided + OUTAGE:
        wake = ctl.tick()
        assert wake is not None
        svc.clock.sleep_until(wake)
    during = kinds(svc, started)[before:]
    failed = payloads(svc, started, "router.failed")
    passes = [datetime.fromisoformat(p["errors"][0]["first_at"]) for p in failed]
    # Each pass is ROUTER_ATTEMPTS calls 0.25 + 0.5 + 1 s apart; then 5, 10, 20, 40 s, capped at 60 s
    # for a rollback: 61 passes in the hour, one summary event each.
    gaps = [round((b - a).total_seconds(), 2) for a, b in itertools.pairwise(passes)]
    assert gaps[:6] == [6.75, 11.75, 21.75, 41.75, 61.75, 61.75]
    assert set(gaps[4:]) == {61.75}
    assert len(failed) == 61
    assert [p["failed_passes"] for p in failed] == list(range(1, 62))
    assert failed[-1]["attempts_total"] == 61 * 4
    assert failed[-1]["errors"][0]["count"] == 4
    assert failed[-1]["retry_at"] == (passes[-1] + timedelta(seconds=61.75)).isoformat()
    # One intent for the whole outage, and the rollback announced as stuck once, at the first failed
    # attempt past REVERT_STUCK_SECONDS (120 s): the first of the pass that starts at 143.75 s.
    assert during.count("router.intent") == 1
    assert during.count("router.error") == 0
    [stuck] = payloads(svc, started, "rollback.stuck")
    assert (stuck["unconfirmed_s"], stuck["threshold_s"]) == (143.75, 120.0)
    assert stuck["error"] == "admin socket refused the connection"
    assert sorted(set(during)) == ["rollback.stuck", "router.failed", "router.intent"]
    assert len(during) == 63  # was 3,204: an intent, 4 router.error and a router.failed every 6.75 s

    router.failures = 0
    ctl.run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert router.calls == [1, 0]
    [recovered] = payloads(svc, started, "rollback.recovered")
    [log] = view.rollbacks
    assert recovered["unconfirmed_s"] == log["detected_to_confirmed_s"]
    assert chain_ok(svc)


def test_a_revert_whose_router_calls_hang_is_announced_stuck_past_the_threshold_not_after_the_pass(
    svc: Releases, started: str
) -> None:
    """Each call times out after 60 s (an nginx reload that never ends): the pass's four attempts take
    four minutes, and the stuck revert is announced once past REVERT_STUCK_SECONDS, not at their end."""
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)

    class Hangs(FakeRouter):
        def set_weight(self, weight: float) -> None:
            if weight == 0:
                clock.advance(60)
                raise RouterError("nginx -s reload ran longer than 60s")
            super().set_weight(weight)

    ctl = controller(svc, Hangs())
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    ctl.tick()
    [stuck] = payloads(svc, started, "rollback.stuck")
    # Attempts end 60, 120.25, 180.75 and 241.75 s after the rollback was decided.
    assert (stuck["unconfirmed_s"], stuck["threshold_s"]) == (120.25, 120.0)
    assert kinds(svc, started).index("rollback.stuck") < kinds(svc, started).index("router.failed")


def test_a_controller_that_takes_over_a_failing_weight_keeps_its_backoff(svc: Releases, started: str) -> None:
    """The backoff lives in the store: a restarted controller neither retries at once nor starts at 5 s."""
    router = FakeRouter()
    first = controller(svc, router)
    first.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    router.failures = 10**9
    wake = first.tick()
    for _ in range(3):  # 4 failed passes in all; the 5th is due 40 s after the 4th
        assert wake is not None
        svc.clock.sleep_until(wake)
        wake = first.tick()
    [*_, last] = payloads(svc, started, "router.failed")
    assert last["failed_passes"] == 4
    due = datetime.fromisoformat(last["retry_at"])
    assert due - svc.clock.now() == timedelta(seconds=40)
    # The first controller dies; once its lease has run out, a new one takes the release over.
    svc.clock.advance(defaults.LEASE_SECONDS + 1)
    second = controller(svc, router)
    assert second.tick() == due
    assert len(payloads(svc, started, "router.failed")) == 4  # no call before the backoff is over
    svc.clock.sleep_until(due)
    second.tick()
    [*_, fifth] = payloads(svc, started, "router.failed")
    assert fifth["failed_passes"] == 5
    assert fifth["attempts_total"] == 5 * defaults.ROUTER_ATTEMPTS
    assert datetime.fromisoformat(fifth["retry_at"]) - svc.clock.now() == timedelta(seconds=60)  # a rollback's cap
    router.failures = 0
    svc.clock.sleep_until(datetime.fromisoformat(fifth["retry_at"]))
    second.run(until_done=True)
    assert svc.get(started).status == "rolled_back"
    assert router.calls == [1, 0]


def test_a_rollback_is_never_reported_done_before_the_router_confirms(svc: Releases, started: str) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    router.failures = 100
    for _ in range(5):
        ctl.tick()
        svc.clock.advance(10)
    assert svc.get(started).status == "rolling_back"
    assert router.weight == 1
    assert "router.failed" in kinds(svc, started)
    # The view says what the router keeps failing at, since when, and why.
    failed = payloads(svc, started, "router.failed")
    trouble = svc.get(started).router_trouble
    assert trouble is not None
    assert (trouble["weight"], trouble["attempts"], trouble["error"]) == (
        0,
        failed[-1]["attempts_total"],
        failed[-1]["error"],
    )
    assert trouble["since"] == svc.get(started).rollbacks[0]["revert_started_at"]
    router.failures = 0
    ctl.run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert view.router_trouble is None
    [log] = view.rollbacks
    assert (log["cause"], log["initiated_by"], log["reason"]) == ("manual", "bob", "pager: checkout 5xx")
    # Revert confirmed only after the router healed: 5 ticks of 10 s later, plus the backoffs.
    assert log["detected_to_confirmed_s"] > 50


def test_a_rollback_after_the_router_dropped_to_0_is_confirmed_by_the_router(svc: Releases, started: str) -> None:
    """HAProxy restarted at its config's 0 % (a drift to 0 recorded) and cannot take 1 % again yet
    when a person rolls back: the revert is still asked of the router and read back, and logged."""
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    router.weight = 0.0
    router.failures = 100
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()
    assert svc.get(started).progress["applied_weight"] == 0
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    router.failures = 0
    svc.clock.advance(60)
    ctl.tick()
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert router.calls == [1, 0]
    [log] = view.rollbacks
    assert log["revert_started_at"] == log["revert_confirmed_at"] == svc.clock.now().isoformat()
    assert log["detected_to_confirmed_s"] == 60
    assert [m["trigger"] for m in log["metrics_after"]] == ["errors", "slow", "error-regression", "latency-regression"]


def test_an_override_cannot_declare_a_rollback_done_while_the_canary_takes_traffic(svc: Releases, started: str) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: checkout 5xx")
    router.failures = 100
    ctl.tick()
    before = svc.get(started)
    with pytest.raises(OverrideRefused, match=r"keeps asking: it may be confirmed by hand"):
        override(svc, started, "dana", "the router is down; we reverted it by hand")
    view = svc.get(started)
    assert (view.status, view.overrides, view.postmortems) == ("rolling_back", before.overrides, before.postmortems)
    # The controller still owns the revert and finishes it once the router heals.
    router.failures = 0
    ctl.run(until_done=True)
    assert (svc.get(started).status, router.weight) == ("rolled_back", 0)


@pytest.mark.parametrize("down_s", [20, INTERVAL * 60 + 20, 6 * 3600])
def test_a_controller_killed_between_acting_and_recording_resumes_without_acting_twice(
    svc: Releases, started: str, down_s: int
) -> None:
    router = FakeRouter()
    router.crash_after = 10
    with pytest.raises(Crash):
        controller(svc, router).run(until_done=True)
    assert router.calls == [1, 10]
    assert svc.get(started).progress["applied_weight"] == 1  # the outcome was never recorded
    # The dead controller's lease runs out; a new one takes over, at once or after an analysis of
    # the old weight fell due (a cron-run `controller --once`, a long outage): either way the
    # router holding the pending intent's weight is that intent applied, not a drift.
    svc.clock.advance(down_s)
    controller(svc, router).run(until_done=True)
    assert svc.get(started).status == "complete"
    assert router.calls == [1, 10, 50, 100]
    with svc.store.transaction() as s:
        rows = [r for r in audit.rows(s) if r.release_id == started]
        applied = [json.loads(r.payload) for r in rows if r.kind == "router.applied"]
        pending = s.execute(select(RouterIntent).where(RouterIntent.status == "pending")).scalars().all()
    assert [(a["weight"], a["found_applied"]) for a in applied] == [(1, False), (10, True), (50, False), (100, False)]
    assert "router.drifted" not in [r.kind for r in rows]
    assert pending == []
    assert chain_ok(svc)


def test_two_controllers_never_drive_one_release(svc: Releases, started: str) -> None:
    first, second = FakeRouter(), FakeRouter()
    a, b = controller(svc, first), controller(svc, second)
    a.tick()
    b.tick()
    assert (first.calls, second.calls) == ([1], [])


def test_a_lease_locked_by_its_live_holder_is_skipped_not_waited_for(svc: Releases, started: str) -> None:
    now = svc.clock.now()
    assert acquire(svc.store, started, "h:A", now, 10.0)
    assert not acquire(svc.store, started, "h:B", now + timedelta(seconds=5), 10.0)
    later = now + timedelta(seconds=11)  # A's lease has run out: still A's until someone takes it
    if svc.store.dialect == "postgresql":
        answers: list[bool] = []
        with svc.store.transaction() as s:
            assert held_by(s, started, "h:A")  # A writes an outcome, holding the lease row
            claim = threading.Thread(target=lambda: answers.append(acquire(svc.store, started, "h:B", later, 10.0)))
            claim.start()
            claim.join(timeout=10)
            # FOR UPDATE alone would wait here for A's transaction, then take the lease from it.
            assert not claim.is_alive() and answers == [False]
    assert acquire(svc.store, started, "h:B", later, 10.0)  # A's transaction over: the lease is free
    assert holders(svc) == {started: "h:B"}


def test_a_dead_holders_router_call_fences_the_release_until_its_deadline(svc: Releases, started: str) -> None:
    # A controller on this host, killed while its router call ran: its process is gone, so its
    # lease would be taken over at once; but the call (a command router's script) may still land.
    dead = subprocess.Popen(["true"])
    dead.wait()
    holder = f"{leases._scope()}:{dead.pid}:deadbeef"
    now = svc.clock.now()
    assert acquire(svc.store, started, holder, now, 15.0)
    assert leases.fence(svc.store, started, holder, now + timedelta(seconds=40))
    assert not acquire(svc.store, started, "h:B", now + timedelta(seconds=1), 15.0)  # gone, but fenced
    assert not acquire(svc.store, started, "h:B", now + timedelta(seconds=39), 15.0)  # expired, still fenced
    assert acquire(svc.store, started, "h:B", now + timedelta(seconds=41), 15.0)
    with svc.store.transaction() as s:
        lease = s.get(Lease, started)
        assert lease is not None and (lease.holder, lease.calls_until) == ("h:B", None)
    assert not leases.fence(svc.store, started, holder, now)  # no longer its lease to mark


def test_a_router_call_marks_the_lease_while_it_runs_and_clears_it_after(svc: Releases, started: str) -> None:
    marks: list[datetime | None] = []

    class Watched(FakeRouter):
        def set_weight(self, weight: float) -> None:
            with svc.store.transaction() as s:
                lease = s.get(Lease, started)
                marks.append(None if lease is None else lease.calls_until)
            super().set_weight(weight)

    ctl = controller(svc, Watched())
    called_at = svc.clock.now()
    ctl.tick()
    bound = defaults.ROUTER_CALL_TIMEOUT_SECONDS + defaults.LEASE_CALL_MARGIN_SECONDS
    assert marks == [called_at + timedelta(seconds=bound)]
    with svc.store.transaction() as s:
        lease = s.get(Lease, started)
        assert lease is not None and lease.calls_until is None


def test_reading_the_routers_weight_does_not_mark_the_lease(svc: Releases, started: str) -> None:
    # A read changes nothing were it to outlive a killed controller: marking the lease for it held
    # the release from every other controller until the read's deadline (40 s), past the lease
    # (15 s), and cost every analysis's drift check two more write transactions.
    marks: list[tuple[str, datetime | None]] = []

    class Watched(FakeRouter):
        def mark(self, call: str) -> None:
            with svc.store.transaction() as s:
                lease = s.get(Lease, started)
                marks.append((call, None if lease is None else lease.calls_until))

        def set_weight(self, weight: float) -> None:
            self.mark("set")
            super().set_weight(weight)

        def current_weight(self) -> float:
            self.mark("read")
            return super().current_weight()

    ctl = controller(svc, Watched())
    called_at = svc.clock.now()
    ctl.tick()  # sets 1 % and reads it back
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()  # an analysis, whose drift check reads the weight
    bound = defaults.ROUTER_CALL_TIMEOUT_SECONDS + defaults.LEASE_CALL_MARGIN_SECONDS
    assert marks == [("set", called_at + timedelta(seconds=bound)), ("read", None), ("read", None)]


def start_another(svc: Releases) -> str:
    """A release of one more service (a copy of checkout's) at its first step, as ``started``: one
    release of a service rolls out at a time."""
    name = f"checkout{len(list(Path('services').glob('checkout*.yaml')))}"
    service = Path("services/checkout.yaml").read_text()
    Path(f"services/{name}.yaml").write_text(service.replace("name: checkout\n", f"name: {name}\n", 1))
    plan = Path(f"releases/{name}-2.4.0.yaml")
    plan.write_text(PLAN.read_text().replace("service: checkout\n", f"service: {name}\n", 1))
    rid = svc.create(check_plan_file(plan), "alice").id
    for why in ("Holiday rota needs two approvers.", "Load tests now run in the pipeline."):
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", why)
    return rid


def test_one_release_of_a_service_rolls_out_at_a_time(svc: Releases, started: str) -> None:
    # A second release of checkout (the plan edited and created again) would fight the first over
    # the router: each finding the other's weight as drift, neither ever baking.
    controller(svc, FakeRouter()).tick()
    second = svc.create(check_plan_file(PLAN), "alice").id
    override(svc, second, "dana", REASON)  # its Stage gates
    svc.close_postmortem(second, "dana", "Holiday rota needs two approvers.")
    busy = (
        f"release {started} of checkout is rolling_out (step 1): one release of a service rolls out at a time; "
        f"wait for it to end, or roll it back (`shiprail release rollback {started}`)"
    )
    before = len(kinds(svc, second))
    for attempt in (lambda: svc.act(second, Action.START, "alice"), lambda: override(svc, second, "dana", REASON)):
        with pytest.raises(IllegalTransition) as refused:
            attempt()
        assert refused.value.message == busy
    # Bad input is said first (exit 2), not the busy router (exit 1): a typo fixed after the other
    # release ends would be one more refusal.
    with pytest.raises(BadInput) as bad:
        svc.override(second, "dana", REASON, ["tsets"])
    assert bad.value.message == "--gate 'tsets' is not a gate; the gates of start are tests, qa, load_test, freeze"
    with pytest.raises(BadInput) as bad:
        svc.override(second, "dana", "ship it")
    assert bad.value.message.startswith("--reason must explain the override in at least 15 characters")
    assert svc.get(second).status == "staging" and len(kinds(svc, second)) == before
    svc.act(started, Action.PAUSE, "bob")  # paused mid-rollout: it still holds the router
    with pytest.raises(IllegalTransition):
        svc.act(second, Action.START, "alice")
    svc.act(started, Action.ROLLBACK, "bob")
    # Reverting, it still holds the router; a rollback of it is refused, so the refusal says what ends it.
    with pytest.raises(IllegalTransition) as refused:
        svc.act(second, Action.START, "alice")
    assert refused.value.message == (
        f"release {started} of checkout is rolling_back: one release of a service rolls out at a time; "
        "it ends once a controller (`shiprail controller`) has its router confirm weight 0; "
        f"`shiprail release show {started}` says what holds it"
    )
    controller(svc, FakeRouter()).run(until_done=True)  # the revert confirmed: the router is free
    assert svc.get(started).status == "rolled_back"
    override(svc, second, "dana", REASON)  # its failed Start gates, as before
    assert svc.get(second).status == "rolling_out"


def holders(svc: Releases) -> dict[str, str]:
    with svc.store.transaction() as s:
        return {lease.release_id: lease.holder for lease in s.query(Lease).all()}


def test_controllers_share_the_releases_and_take_them_all_back_when_one_stops(svc: Releases, started: str) -> None:
    # Scaled mode: the first controller claimed every release; a second one joining gets half at
    # the first's next pass instead of standing by (measured before: 40 releases, 40 and 0).
    rids = sorted([started, *(start_another(svc) for _ in range(3))])
    first, second = FakeRouter(), FakeRouter()
    a, b = controller(svc, first, holder="h:A"), controller(svc, second, holder="h:B")
    a.tick()
    assert set(holders(svc).values()) == {"h:A"} and len(first.calls) == 4
    b.tick()  # B announces itself; A still holds everything
    assert set(holders(svc).values()) == {"h:A"} and second.calls == []
    a.tick()  # A keeps its fair share, 2 of 4, and lets the others go
    b.tick()  # B takes them, resuming where the store says they are: no weight is applied again
    assert sorted(holders(svc).items()) == [(rids[0], "h:A"), (rids[1], "h:A"), (rids[2], "h:B"), (rids[3], "h:B")]
    assert (len(first.calls), second.calls) == (4, [])
    for rid in rids[2:]:
        assert [p["holder"] for p in payloads(svc, rid, "controller.attached")] == ["h:A", "h:B"]
    for _ in range(3):  # stable: nobody hands anything back and forth
        a.tick()
        b.tick()
    assert sorted(set(holders(svc).values())) == ["h:A", "h:B"] and len(a._held) == len(b._held) == 2

    b.close()  # B stops cleanly: it leaves the running controllers and lets its leases go
    a.tick()
    assert set(holders(svc).values()) == {"h:A"} and len(a._held) == 4


def test_a_replica_killed_on_the_same_host_leaves_its_share_at_once(svc: Releases, started: str) -> None:
    # kill -9 of one of two replicas on one host, each at its fair share of 4 releases: the
    # survivor knows the dead PID at once and took its leases only as the dead one's releases
    # ended, or once its row in the controllers table lapsed, 15 s later (measured: 9.8, 12.2 and
    # 15.0 s after the kill for three releases), since the dead one still counted as running.
    rids = sorted([started, *(start_another(svc) for _ in range(3))])
    b_process = subprocess.Popen(["sleep", "60"])  # B's process, as A sees it
    b_holder = f"{leases._scope()}:{b_process.pid}:deadbeef"
    a, b = controller(svc, FakeRouter(), holder="h:A"), controller(svc, FakeRouter(), holder=b_holder)
    a.tick()
    b.tick()
    a.tick()
    b.tick()
    assert sorted(set(holders(svc).values())) == sorted(["h:A", b_holder]) and len(a._held) == 2
    b_process.kill()  # B is gone without closing; the clock does not move
    b_process.wait()
    a.tick()
    assert holders(svc) == dict.fromkeys(rids, "h:A") and len(a._held) == 4
    with svc.store.transaction() as s:
        assert [holder for holder, _, _ in leases.running(s, svc.clock.now())] == ["h:A"]


def test_a_controller_that_cannot_write_the_controllers_table_drives_unshared(
    svc: Releases, started: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An upgraded database whose app role was not granted the new table: as before it existed.
    with svc.store.transaction() as s:
        s.execute(sql("DROP TABLE controllers"))
    router = FakeRouter()
    ctl = controller(svc, router)
    with caplog.at_level(logging.WARNING, "shiprail.controller"):
        ctl.tick()
        ctl.tick()
    assert router.calls == [1]
    assert caplog.text.count("cannot record this controller in the controllers table") == 1
    ctl.close()


def test_a_running_controller_stops_once_a_newer_shiprail_migrates_the_store(svc: Releases, started: str) -> None:
    # A rolling upgrade: the new shiprail migrates the shared store while this one still runs.
    # Before, it went on driving releases on a schema it would refuse to open.
    router = FakeRouter()
    ctl = controller(svc, router, holder="h:old")
    ctl.tick()
    assert router.calls == [1] and holders(svc) == {started: "h:old"}
    with svc.store.engine.begin() as conn:
        conn.execute(sql("UPDATE alembic_version SET version_num = '0099'"))
    analyses = kinds(svc, started).count("analysis.completed")
    svc.clock.advance(INTERVAL * 60)
    stop = threading.Event()
    raised: list[str] = []

    def run() -> None:
        try:
            ctl.run(stop)
        except SchemaChanged as exc:
            raised.append(exc.message)

    loop = threading.Thread(target=run)
    loop.start()
    loop.join(10)
    stop.set()  # before, it never stopped by itself
    loop.join()
    assert raised == [
        (
            f"the database {svc.store.display_url} is now at schema revision 0099, not {SCHEMA_HEAD}, the newest this "
            f"shiprail ({__version__}) knows: another shiprail migrated it while this one ran; stopped (run the "
            "shiprail that migrated it, on every machine that shares the database)"
        )
    ]
    assert router.calls == [1]
    assert kinds(svc, started).count("analysis.completed") == analyses
    with svc.store.transaction() as s:  # its lease let go at once: the new controllers take over
        assert s.get(Lease, started).expires_at <= svc.clock.now()  # type: ignore[union-attr]
        assert leases.running(s, svc.clock.now()) == []


def test_each_pass_is_reported_to_the_health_probe(svc: Releases, started: str) -> None:
    ctl = controller(svc, FakeRouter())
    ctl.health = ControllerHealth(svc.clock, ctl.holder, stale_after_s=15)
    ctl.tick()
    ctl.tick()
    value = ctl.health.registry.get_sample_value
    assert (value("shiprail_controller_passes_total"), value("shiprail_controller_releases")) == (2, 1)
    assert ctl.health.status()[0] is True


def test_promote_before_the_bake_needs_an_executive_override(svc: Releases, started: str) -> None:
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    svc.clock.advance(600)
    ctl.tick()  # one passing analysis: 10 minutes of 30 baked
    with pytest.raises(GateFailed, match=re.escape("gate bake failed (1% has 20m of its 30m bake left)")):
        svc.act(started, Action.PROMOTE, "alice")
    override(svc, started, "dana", "Hotfix for the outage; bake waived by the CTO")
    ctl.tick()
    view = svc.get(started)
    assert (view.weight, router.calls) == (10, [1, 10])
    assert view.postmortems[-1]["status"] == "open"


def test_a_manual_pause_holds_the_step_but_keeps_the_contract_armed(svc: Releases, started: str) -> None:
    later_bad = TurnsBad()
    router = FakeRouter()
    ctl = controller(svc, router, later_bad)
    ctl.tick()
    svc.act(started, Action.PAUSE, "bob", reason="checking a dashboard")
    for _ in range(40):
        svc.clock.advance(600)
        ctl.tick()
    assert svc.get(started).status == "paused"
    assert svc.get(started).progress["baked_s"] == 0
    later_bad.bad = True
    ctl.run(until_done=True)
    assert svc.get(started).status == "rolled_back"


def test_a_step_whose_weight_never_took_cannot_be_promoted_by_hand(svc: Releases, started: str) -> None:
    # The last step (100 %) bakes nothing, so its bake gate always passes; while the router refuses
    # 100 %, the analyses at that step judge the 50 % it still holds and must not pass its gate.
    class Refuses100(FakeRouter):
        refuse = True

        def set_weight(self, weight: float) -> None:
            if weight == 100 and self.refuse:
                raise RouterError("the load balancer refused 100%")
            super().set_weight(weight)

    router = Refuses100()
    ctl = controller(svc, router)
    for _ in range((30 + 120 + 240) // INTERVAL + 3):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    ctl.tick()
    view = svc.get(started)
    assert (view.state, view.progress["applied_weight"], view.last_analysis is not None) == (
        "rolling_out (step 4)",
        50,
        True,
    )
    assert view.last_analysis is not None and view.last_analysis["step"] == 3
    with pytest.raises(
        GateFailed, match=re.escape("the router has not confirmed 100% for this step yet (it holds 50%)")
    ):
        svc.act(started, Action.PROMOTE, "alice")
    assert svc.get(started).state == "rolling_out (step 4)"
    router.refuse = False
    ctl.run(until_done=True)
    assert svc.get(started).status == "complete"
    assert router.calls == [1, 10, 50, 100]


# ---------------------------------------------------------------------------- review findings


def test_a_resumed_release_needs_a_fresh_analysis_and_stays_armed(svc: Releases, started: str) -> None:
    later_bad = TurnsBad()
    router = FakeRouter()
    ctl = controller(svc, router, later_bad)
    ctl.tick()
    for _ in range(2):
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    svc.clock.advance(INTERVAL * 60)  # 30 minutes in: the step is due to promote
    svc.act(started, Action.PAUSE, "bob")
    svc.act(started, Action.RESUME, "bob")
    later_bad.bad = True
    ctl.run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert router.calls == [1, 0]


def test_after_a_resume_promote_needs_an_analysis_made_since(svc: Releases, started: str) -> None:
    ctl = controller(svc, FakeRouter())
    ctl.tick()
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()  # one passing analysis at 1 %
    svc.act(started, Action.PAUSE, "bob")
    svc.clock.advance(120)  # a complaint could have come in meanwhile; nobody has looked
    svc.act(started, Action.RESUME, "bob")
    with pytest.raises(GateFailed, match=re.escape("(failed: bake, analysis)")):
        svc.act(started, Action.PROMOTE, "alice")
    gates = {(g["action"], g["gate"]): g for g in svc.get(started).to_json()["gates"]}
    assert gates["promote", "analysis"]["verdict"] == "fail"
    assert gates["promote", "analysis"]["reason"].startswith("no analysis since the release resumed at ")
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()  # a fresh analysis: only the bake is left
    with pytest.raises(GateFailed, match=re.escape("(failed: bake)")):
        svc.act(started, Action.PROMOTE, "alice")


def test_the_verify_window_gate_counts_watched_time_not_the_wall_clock(svc: Releases, started: str) -> None:
    ctl = controller(svc, FakeRouter())
    while svc.get(started).status != "verifying":
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    ctl.tick()
    svc.act(started, Action.PAUSE, "bob")
    svc.clock.advance(25 * 3600)  # a day passes, paused: nobody watched it
    svc.act(started, Action.RESUME, "bob")
    with pytest.raises(GateFailed):
        svc.act(started, Action.COMPLETE, "shiprail:controller")
    gates = {(g["action"], g["gate"]): g for g in svc.get(started).to_json()["gates"]}
    window = gates["complete", "verify_window"]
    assert window["verdict"] == "fail"
    assert window["reason"].startswith("the validation window has 23h")


def test_a_resume_keeps_a_recorded_failure_and_the_rollback_happens(svc: Releases, started: str) -> None:
    later_bad = TurnsBad()
    router = FakeRouter()
    ctl = controller(svc, router, later_bad)
    ctl.tick()
    svc.act(started, Action.PAUSE, "bob")
    later_bad.bad = True
    svc.clock.advance(INTERVAL * 60)
    # The controller stores the failing analysis, then dies before rolling back.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Controller, "_move", lambda *a, **k: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            ctl.tick()
    assert svc.get(started).progress["last_verdict"] == "fail"
    later_bad.bad = False  # the complaint leaves the window; a resume must not forget it
    svc.act(started, Action.RESUME, "bob")
    svc.clock.advance(20)
    controller(svc, router).run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert router.calls == [1, 0]


def test_detection_is_when_the_analysis_saw_the_failure_not_when_its_queries_began(svc: Releases, started: str) -> None:
    """A provider slow to answer (each query takes 20 s here): its minutes are not the revert's."""
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    asked: list[datetime] = []

    def slow_errors(name: str, version: str, now: datetime) -> Sample:
        asked.append(now)
        clock.advance(20)
        if name == "error_rate" and version == "2.4.0":
            return Sample(0.08, 500)
        return healthy(name, version, now)

    controller(svc, FakeRouter(), slow_errors).run(until_done=True)
    view = svc.get(started)
    [log] = view.rollbacks
    began = datetime.fromisoformat(view.last_analysis["at"])  # type: ignore[index]
    detected = datetime.fromisoformat(log["detected_at"])
    queries = [t for t in asked if began <= t < detected]  # the failing analysis's own queries
    assert len(queries) >= 2  # canary and baseline at least
    assert detected == began + timedelta(seconds=20 * len(queries))  # once the last one answered


def crashed_before_rolling_back(svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRouter, str]:
    """A controller that stored a failing analysis of ``started`` (errors at 8 %) and died before
    rolling it back; its router, and when that analysis was stored."""

    def errors(name: str, version: str, now: datetime) -> Sample:
        if name == "error_rate" and version == "2.4.0":
            return Sample(0.08, 500)
        return healthy(name, version, now)

    act = Releases.act

    def crash_on_rollback(self: Releases, release_id: str, action: Action, *a: object, **kw: object) -> object:
        if action is Action.ROLLBACK:
            raise Crash
        return act(self, release_id, action, *a, **kw)  # type: ignore[arg-type]

    router = FakeRouter()
    with monkeypatch.context() as patched:
        patched.setattr(Releases, "act", crash_on_rollback)
        with pytest.raises(Crash):
            controller(svc, router, errors).run(until_done=True)
    assert svc.get(started).last_analysis["verdict"] == "fail"  # type: ignore[index]
    return router, svc.get(started).last_analysis["at"]  # type: ignore[index]


def test_a_rollback_decided_but_not_taken_before_a_crash_is_taken_on_restart(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    router, detected = crashed_before_rolling_back(svc, started, monkeypatch)
    svc.clock.advance(20)
    controller(svc, router, healthy).run(until_done=True)  # the canary looks fine now: still rolled back
    view = svc.get(started)
    assert view.status == "rolled_back"
    [log] = view.rollbacks
    assert (log["trigger"], log["value"], log["detected_at"]) == ("errors", 0.08, detected)


def test_a_persons_rollback_after_an_unacted_failure_is_logged_as_the_contracts(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The controller stored a failing analysis and died before acting on it; bob rolled back ten
    # minutes later. The log said cause manual, detected at bob's rollback, 0 s to confirm: the
    # ten minutes the canary was known bad were hidden.
    router, detected = crashed_before_rolling_back(svc, started, monkeypatch)
    svc.clock.advance(600)
    svc.act(started, Action.ROLLBACK, "bob", reason="pager: 5xx on checkout")
    controller(svc, router, healthy).run(until_done=True)
    [log] = svc.get(started).rollbacks
    assert (log["cause"], log["trigger"], log["value"], log["detected_at"], log["initiated_by"]) == (
        "trigger",
        "errors",
        0.08,
        detected,
        "bob",
    )
    assert log["reason"].endswith("; rolled back by bob: pager: 5xx on checkout")
    assert log["detected_to_confirmed_s"] >= 600


def test_a_persons_rollback_without_a_reason_after_an_unacted_failure_names_them_once(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without --reason the log's reason said '...; rolled back by bob: rolled back by bob'.
    crashed_before_rolling_back(svc, started, monkeypatch)
    svc.act(started, Action.ROLLBACK, "bob")
    [log] = svc.get(started).rollbacks
    assert log["reason"].startswith("trigger errors fired: ")
    assert log["reason"].endswith("; rolled back by bob")
    assert log["reason"].count("rolled back by bob") == 1


OUTAGE_ENDS = timedelta(minutes=40)


def paused_for_no_data(svc: Releases, started: str) -> Controller:
    """A controller that paused ``started`` for missing data: Prometheus is out from 10 to 40 min."""
    t0 = svc.clock.now()
    gap = (t0 + timedelta(minutes=10), t0 + OUTAGE_ENDS)

    def outage(name: str, version: str, now: datetime) -> Sample:
        if gap[0] < now <= gap[1]:
            return Sample.failed("Prometheus: connection refused")
        return healthy(name, version, now)

    ctl = controller(svc, FakeRouter(), outage)
    while svc.get(started).status != "paused":
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    return ctl


def test_a_person_pause_after_a_no_data_pause_is_not_resumed_by_data(svc: Releases, started: str) -> None:
    ctl = paused_for_no_data(svc, started)
    svc.act(started, Action.RESUME, "bob")  # before data returns
    svc.act(started, Action.PAUSE, "bob", reason="investigating a customer report")
    for _ in range(6):
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    assert svc.get(started).status == "paused"


def test_a_person_takes_over_a_pause_for_missing_data(svc: Releases, started: str) -> None:
    ctl = paused_for_no_data(svc, started)
    paused_at = (svc.get(started).state, svc.get(started).step)
    svc.act(started, Action.PAUSE, "bob", reason="investigating a customer report")
    view = svc.get(started)
    assert (view.state, view.step, view.progress["paused_for_no_data"]) == (*paused_at, False)
    with pytest.raises(IllegalTransition, match="already paused by a person; `shiprail release resume` carries on"):
        svc.act(started, Action.PAUSE, "bob")
    for _ in range(6):  # data comes back: the person's hold stays
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    assert svc.get(started).status == "paused"
    svc.act(started, Action.RESUME, "bob")
    assert (svc.get(started).status, svc.get(started).step) == ("rolling_out", paused_at[1])


def test_the_controller_does_not_resume_a_hold_it_decided_to_resume_before(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = svc.clock.now()
    ctl = paused_for_no_data(svc, started)
    act = Releases.act

    def a_person_first(self: Releases, release_id: str, action: Action, actor: str, *a: object, **kw: object) -> object:
        if action is Action.RESUME and actor.startswith("shiprail:"):
            act(self, release_id, Action.PAUSE, "bob", reason="looking first")  # between decision and act
        return act(self, release_id, action, actor, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Releases, "act", a_person_first)
    while svc.clock.now() <= t0 + OUTAGE_ENDS + timedelta(minutes=5):
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    assert svc.get(started).status == "paused"
    assert transitions(svc, started)[-2:] == ["pause -> paused (from rolling_out)"] * 2


class ReadingProvider(FakeProvider):
    """A provider keeping its own reads (as ``scrape`` does): when was it asked to read now?"""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__(clock, healthy)
        self.reads: list[datetime] = []

    def read_now(self) -> None:
        self.reads.append(self.clock.now())


def test_a_provider_keeping_its_own_reads_reads_where_each_new_weight_begins(svc: Releases, started: str) -> None:
    # The scrape provider's reads were only the analyses' own: the first window after a new weight
    # began at the confirmation, where it had no read, and held one read — no data, one interval of
    # bake lost at every step (seen on the first step of a release with the scrape provider).
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    provider = ReadingProvider(clock)
    ctl = Controller(svc, routers=lambda r: FakeRouter(), providers=lambda r: provider)  # type: ignore[arg-type,return-value]
    ctl.run(until_done=True)
    assert svc.get(started).status == "complete"
    with svc.store.transaction() as s:
        confirmed = [
            (r.at, json.loads(r.payload)["weight"])
            for r in audit.rows(s)
            if r.release_id == started and r.kind == "router.applied"
        ]
    assert [w for _, w in confirmed] == [1.0, 10.0, 50.0, 100.0]
    assert provider.reads == [at for at, _ in confirmed]


def test_a_failing_canary_is_not_pushed_further_while_the_router_fails(svc: Releases, started: str) -> None:
    later_bad = TurnsBad()
    router = FakeRouter()
    ctl = controller(svc, router, later_bad)
    ctl.tick()
    while svc.get(started).step == 0:
        svc.clock.advance(INTERVAL * 60)
        router.failures = 1000 if svc.get(started).progress["baked_s"] >= 1200 else 0
        ctl.tick()
    later_bad.bad = True
    for _ in range(3):
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    router.failures = 0
    ctl.run(until_done=True)
    assert svc.get(started).status == "rolled_back"
    assert router.calls == [1, 0]


def test_a_person_rollback_during_a_router_backoff_stops_the_old_weight(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = FakeRouter()
    router.failures = 1
    ctl = controller(svc, router)
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    real_sleep = clock.sleep_until

    def rollback_during_backoff(when: datetime) -> None:
        if svc.get(started).status == "rolling_out":
            svc.act(started, Action.ROLLBACK, "bob", reason="pager")
        real_sleep(when)

    monkeypatch.setattr(clock, "sleep_until", rollback_during_backoff)
    ctl.tick()
    monkeypatch.setattr(clock, "sleep_until", real_sleep)
    ctl.run(until_done=True)
    assert svc.get(started).status == "rolled_back"
    assert 1 not in router.calls  # 1% was never applied after the rollback was decided


def crashed_before_metrics_after(svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch) -> FakeRouter:
    """A person rolls the release back; its controller dies once the router confirmed weight 0,
    before it read the metrics after (its router returned)."""
    router = FakeRouter()
    ctl = controller(svc, router)
    ctl.tick()
    svc.act(started, Action.ROLLBACK, "bob")
    monkeypatch.setattr(Controller, "_record_metrics_after", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        ctl.tick()
    assert svc.get(started).rollbacks[0]["metrics_after"] is None
    monkeypatch.undo()
    return router


def test_metrics_after_a_revert_survive_a_crash(svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch) -> None:
    router = crashed_before_metrics_after(svc, started, monkeypatch)
    svc.clock.advance(20)
    controller(svc, router).run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert [m["trigger"] for m in view.rollbacks[0]["metrics_after"]] == [
        "errors",
        "slow",
        "error-regression",
        "latency-regression",
    ]


def test_the_metrics_after_a_revert_are_stated_once_in_the_chain_with_the_log(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback log's metrics after were written with no audit event stating them, so whoever could
    write the database could make a rollback look like it recovered. The controller now states them in
    ``rollback.metrics_after``, in the row's transaction: after a crash before they were read, and
    once only when the write is retried after it landed."""
    router = crashed_before_metrics_after(svc, started, monkeypatch)
    assert payloads(svc, started, "rollback.metrics_after") == []
    record = Controller._record_metrics_after

    def retried(self: Controller, snap: object, rollback_id: int) -> None:
        record(self, snap, rollback_id)  # type: ignore[arg-type]
        record(self, snap, rollback_id)  # type: ignore[arg-type]

    monkeypatch.setattr(Controller, "_record_metrics_after", retried)
    svc.clock.advance(20)
    controller(svc, router).run(until_done=True)
    [log] = svc.get(started).rollbacks
    assert [m["trigger"] for m in log["metrics_after"]] == ["errors", "slow", "error-regression", "latency-regression"]
    assert payloads(svc, started, "rollback.metrics_after") == [
        {"rollback_id": log["id"], "metrics_after": log["metrics_after"]}
    ]
    assert chain_ok(svc)


def test_one_release_with_a_broken_router_does_not_stop_the_others(svc: Releases, started: str) -> None:
    router = FakeRouter()
    start_another(svc)

    def routers(r: ResolvedRelease) -> FakeRouter:
        if building["n"] == 0:
            building["n"] += 1
            raise RouterError("the flag router comes with shiprail serve")
        return router

    building = {"n": 0}
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    provider = FakeProvider(clock, healthy)
    ctl = Controller(svc, routers=routers, providers=lambda r: provider)  # type: ignore[arg-type,return-value]
    ctl.tick()
    assert router.calls == [1]  # the second release went ahead
    assert "controller.error" in kinds(svc, started)


@pytest.fixture
def probed(
    project: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Releases, str, SampleService]]:
    """The example release with its Verify probe aimed at a real sample service, rolling out."""
    monkeypatch.chdir(project)
    with SampleService("2.4.0") as target:
        text = PLAN.read_text().replace("rollout:\n", f"rollout:\n  analysis_interval: {INTERVAL}m\n")
        PLAN.write_text(text.replace("http://127.0.0.1:8002/health", f"{target.url}/health"))
        svc = Releases(store, SimulatedClock(), open_project(project).policy)
        rid = svc.create(check_plan_file(PLAN), "alice").id
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
        override(svc, rid, "dana", REASON)
        yield svc, rid, target


def test_verify_completes_only_with_every_probe_passing(probed: tuple[Releases, str, SampleService]) -> None:
    svc, rid, _ = probed
    controller(svc, FakeRouter()).run(until_done=True)
    view = svc.get(rid)
    assert view.status == "complete"
    probes = [g for g in view.gates if g["gate"] == "probes"]
    assert [g["verdict"] for g in probes] == ["pass"]
    assert probes[0]["reason"].startswith("1 probe(s) passed at ")


def in_verify(svc: Releases, rid: str, router: FakeRouter) -> Controller:
    """A controller that took ``rid`` through its steps into Verify, an analysis interval at a time."""
    ctl = controller(svc, router)
    while svc.get(rid).status != "verifying":
        svc.clock.advance(INTERVAL * 60)
        ctl.tick()
    return ctl


def test_a_failing_probe_in_verify_rolls_back(probed: tuple[Releases, str, SampleService]) -> None:
    svc, rid, target = probed
    router = FakeRouter()
    ctl = in_verify(svc, rid, router)
    target.inject(error_rate=1.0)
    ctl.run(until_done=True)
    view = svc.get(rid)
    assert view.status == "rolled_back"
    assert (view.rollbacks[0]["trigger"], view.rollbacks[0]["reason"]) == (
        "probe checkout page",
        "trigger probe checkout page fired: HTTP 500, expected 200",
    )
    assert router.calls == [1, 10, 50, 100, 0]


def test_a_release_paused_in_verify_keeps_its_probes_running(probed: tuple[Releases, str, SampleService]) -> None:
    """Paused in Verify, the new version still serves all traffic: a broken key flow rolls it back."""
    svc, rid, target = probed
    router = FakeRouter()
    ctl = in_verify(svc, rid, router)
    ctl.tick()
    svc.act(rid, Action.PAUSE, "bob", reason="a customer report to look at")
    target.inject(error_rate=1.0)
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()  # the next analysis runs the probe, fails and rolls back: weight 0 in the same pass
    view = svc.get(rid)
    assert view.status == "rolled_back"
    assert (view.rollbacks[0]["trigger"], view.rollbacks[0]["weight_before"]) == ("probe checkout page", 100)
    assert router.calls == [1, 10, 50, 100, 0]


def test_at_100_percent_baseline_comparisons_are_skipped_not_left_inconclusive(svc: Releases, started: str) -> None:
    router = FakeRouter()

    def baseline_idle_at_100(name: str, version: str, now: datetime) -> Sample:
        if version == "2.3.1" and router.weight == 100:
            return Sample(None, 0)  # the baseline serves nothing: no latency to read
        return healthy(name, version, now)

    controller(svc, router, baseline_idle_at_100).run(until_done=True)
    view = svc.get(started)
    assert view.status == "complete"
    assert view.last_analysis is not None
    slow = next(r for r in view.last_analysis["results"] if r["trigger"] == "slow")
    assert (slow["verdict"], slow["reason"]) == (
        "skipped",
        "not judged at 100%: the baseline takes no traffic to compare with",
    )


def test_the_flag_router_publishes_each_weight_and_reports_sdks_that_lag_a_rollback(
    svc: Releases, started: str
) -> None:
    from shiprail.routers import FlagRouter, FlagRouterConfig
    from shiprail.store import flags

    published: list[float] = []

    class Recording(FlagRouter):
        def set_weight(self, weight: float) -> None:
            if weight == 0:
                # An SDK holding the 1% config was heard from just now, and will not poll again.
                with self.store.transaction() as s:
                    flags.record_contacts(s, [("checkout", "sdk-quiet", 1, self.clock.now())])
            super().set_weight(weight)
            published.append(weight)

    def routers(r: ResolvedRelease) -> FlagRouter:
        return Recording(
            FlagRouterConfig(type="flag"),
            store=svc.store,
            clock=svc.clock,
            service=r.service,
            release=started,
            version=r.version,
            baseline=r.baseline,
        )

    turns = TurnsBad()
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    ctl = Controller(svc, routers=routers, providers=lambda r: FakeProvider(clock, turns))  # type: ignore[arg-type,return-value]
    ctl.tick()
    clock.advance(INTERVAL * 60)
    ctl.tick()
    turns.bad = True
    ctl.run(until_done=True)
    view = svc.get(started)
    assert view.status == "rolled_back"
    assert published == [1, 0]
    with svc.store.transaction() as s:
        config = flags.read(s, "checkout")
    assert (config.revision, config.weight, config.canary, config.stable, config.salt) == (
        2,
        0.0,
        "2.4.0",
        "2.3.1",
        started,
    )
    [log] = view.rollbacks
    assert log["confirmation"] == {
        "revision": 2,
        "sdks": 1,
        "acknowledged": 0,
        "lagging": ["sdk-quiet"],
        "confirmed": False,
        "summary": "revision 2 UNCONFIRMED: 0 of 1 SDKs acknowledged it within 5s (sdk-quiet lag)",
    }
    applied = [e for e in kinds(svc, started) if e == "router.applied"]
    assert len(applied) == 2
    # Its event states it too, which `release verify-package` compares with rollback.json's.
    [confirmed] = payloads(svc, started, "rollback.confirmed")
    assert confirmed["confirmation"] == log["confirmation"]


REGRESSION_TRIGGER = """\
    - name: error-regression
      metric: error_rate
      regression: {alpha: 0.01}
"""


def tripled(name: str, version: str, now: datetime) -> Sample:
    """0.3 % errors on the canary against 0.1 %: well under the contract's 1 % threshold."""
    if name == "error_rate":
        return Sample(0.003 if version == "2.4.0" else 0.001, 2000)
    return healthy(name, version, now)


@pytest.fixture
def judged(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[Releases, str]:
    """The example release with a sequential-judge trigger on the error rate, at its first step."""
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    text = text[: text.index("  probes:")].replace("rollout:\n", f"rollout:\n  analysis_interval: {INTERVAL}m\n")
    # Its own error-regression trigger only (before complaints), as the tests below count and place it.
    text = without_regression_triggers(text).replace(
        "    - name: complaints\n", REGRESSION_TRIGGER + "    - name: complaints\n"
    )
    PLAN.write_text(text)
    svc = Releases(store, SimulatedClock(), open_project(project).policy)
    rid = svc.create(check_plan_file(PLAN), "alice").id
    for reason in ("Holiday rota needs two approvers.", "Load tests now run in the pipeline."):
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", reason)
    return svc, rid


def test_metrics_show_each_held_release_and_count_the_finished(judged: tuple[Releases, str]) -> None:
    svc, rid = judged
    ctl = controller(svc, FakeRouter(), tripled)
    ctl.health = ControllerHealth(svc.clock, ctl.holder, stale_after_s=15)
    value = ctl.health.registry.get_sample_value
    key = {"release": rid, "service": "checkout"}
    ctl.tick()  # 1 % applied; nothing analysed yet
    started = svc.get(rid).state_since.timestamp()
    assert value("shiprail_release_info", key | {"version": "2.4.0", "baseline": "2.3.1", "status": "rolling_out"}) == 1
    assert (value("shiprail_release_step", key), value("shiprail_release_canary_weight", key)) == (1, 1)
    assert value("shiprail_release_state_since_timestamp_seconds", key) == started
    assert value("shiprail_release_last_analysis_timestamp_seconds", key) is None
    # At 0 while the release runs: Prometheus' increase() sees the step to 1 when it ends.
    assert value("shiprail_controller_releases_finished_total", {"service": "checkout", "status": "rolled_back"}) == 0
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()  # the first analysis: 0.3 % errors pass the 1 % threshold; the judge has seen 2,000 requests
    assert value("shiprail_release_last_analysis_timestamp_seconds", key) == svc.clock.now().timestamp()
    errors, regression = key | {"trigger": "errors"}, key | {"trigger": "error-regression"}
    armed = {"dry_run": "false"}  # neither trigger is on trial
    verdicts = [value("shiprail_release_trigger_verdict", errors | armed | {"verdict": v}) for v in VERDICTS]
    assert verdicts == [1, 0, 0, 0]
    assert value("shiprail_release_trigger_value", errors) == 0.003
    assert value("shiprail_release_trigger_p_value", errors) is None
    with svc.store.transaction() as s:
        stored = {r["trigger"]: r for r in json.loads(latest_analysis(s, rid).results)}  # type: ignore[union-attr]
    judge = stored["error-regression"]["judge"]
    assert value("shiprail_release_trigger_p_value", regression) == judge["p_value"]
    assert (
        value(
            "shiprail_release_trigger_verdict",
            regression | armed | {"verdict": stored["error-regression"]["verdict"]},
        )
        == 1
    )
    ctl.run(until_done=True)  # the judge rolls it back
    assert svc.get(rid).status == "rolled_back"
    finished = ctl.health.registry.get_sample_value
    assert (
        finished("shiprail_controller_releases_finished_total", {"service": "checkout", "status": "rolled_back"}) == 1
    )
    assert finished("shiprail_controller_releases_finished_total", {"service": "checkout", "status": "complete"}) == 0
    # No longer held: its series are gone, not frozen at their last values.
    assert value("shiprail_release_step", key) is None
    assert not [m for m in ctl.health.held.collect() if m.samples]


def test_metrics_skip_what_they_cannot_read_in_a_stored_analysis_and_the_loop_goes_on(
    svc: Releases, started: str
) -> None:
    # An analysis row another version wrote (no trigger, a value that is not a number): reading it
    # for /metrics raised in the pass, and an exception there is one the loop does not catch.
    from shiprail.store.models import Analysis

    ctl = controller(svc, FakeRouter())
    ctl.health = ControllerHealth(svc.clock, ctl.holder, stale_after_s=15)
    ctl.tick()
    rows = [{"verdict": "pass"}, {"trigger": "errors", "verdict": "pass", "value": "high", "judge": "x"}]
    with svc.store.transaction() as s:
        s.add(
            Analysis(
                release_id=started,
                at=svc.clock.now(),
                status="rolling_out",
                step=0,
                weight=1.0,
                verdict="pass",
                results=json.dumps(rows),
            )
        )
    ctl.tick()
    assert ctl.failed == []
    value = ctl.health.registry.get_sample_value
    key = {"release": started, "service": "checkout", "trigger": "errors"}
    assert value("shiprail_release_trigger_verdict", key | {"verdict": "pass", "dry_run": "false"}) == 1
    assert value("shiprail_release_trigger_value", key) is None
    assert value("shiprail_release_trigger_p_value", key) is None


def test_the_sequential_judge_rolls_back_three_times_the_errors_a_threshold_rule_lets_through(
    judged: tuple[Releases, str],
) -> None:
    svc, rid = judged
    controller(svc, FakeRouter(), tripled).run(until_done=True)
    view = svc.get(rid)
    assert view.status == "rolled_back"
    [log] = view.rollbacks
    assert log["trigger"] == "error-regression"
    assert log["reason"].startswith("trigger error-regression fired: canary worse than baseline: canary 0.300% vs")
    assert log["threshold"] == 0.01 and log["value"] <= 0.01
    # Every analysis stored its increment; the one that fired replayed them all.
    with svc.store.transaction() as s:
        from shiprail.store.rollouts import regression_increments

        increments = regression_increments(s, rid)[0]["error-regression"]
    assert len(increments) >= 2
    assert {(i.canary_requests, i.canary_events, i.baseline_requests, i.baseline_events) for i in increments} == {
        (2000, 6, 2000, 2)
    }


def test_shiprail_judge_on_the_release_package_rolls_back_where_the_controller_did(
    judged: tuple[Releases, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shiprail.cli.main import main
    from shiprail.export.package import write_package
    from shiprail.store.models import Analysis

    svc, rid = judged
    controller(svc, FakeRouter(), tripled).run(until_done=True)
    write_package(svc.store, svc.clock.now(), rid, tmp_path / "pkg")
    with svc.store.transaction() as s:
        query = select(Analysis.results).where(Analysis.release_id == rid).order_by(Analysis.id)
        stored = [json.loads(r) for r in s.scalars(query)]
    rows = [row for rows in stored for row in rows if row["trigger"] == "error-regression" and "increment" in row]
    assert [row["verdict"] for row in rows][-1] == "fail"
    capsys.readouterr()
    # The trigger's own settings (alpha 0.01) come from plan.resolved.json next to rollout.json.
    code = main(["judge", str(tmp_path / "pkg" / "rollout.json"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (data["trigger"], data["alpha"], data["judged"]) == ("error-regression", 0.01, len(rows))
    assert [v["p_value"] for v in data["verdicts"]] == [row["judge"]["p_value"] for row in rows]
    # A stricter alpha on the same counts: no rollback yet at the analysis that fired.
    code = main(["judge", str(tmp_path / "pkg" / "rollout.json"), "--json", "--alpha", "0.0001"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["rolled_back_at"] is None
    # The default is the plan's: a plan whose trigger said 0.0001 replays without a rollback too.
    plan = tmp_path / "pkg" / "plan.resolved.json"
    plan.write_text(plan.read_text().replace('"alpha": 0.01', '"alpha": 0.0001'))
    code = main(["judge", str(tmp_path / "pkg" / "rollout.json"), "--json"])
    assert (code, json.loads(capsys.readouterr().out)["alpha"]) == (0, 0.0001)


def test_a_healthy_canary_passes_the_sequential_judge_and_completes(judged: tuple[Releases, str]) -> None:
    svc, rid = judged
    controller(svc, FakeRouter()).run(until_done=True)
    view = svc.get(rid)
    assert view.status == "complete"
    assert view.rollbacks == []


def test_the_on_call_person_is_recorded_when_the_validation_window_opens(svc: Releases, started: str) -> None:
    controller(svc, FakeRouter()).run(until_done=True)
    with svc.store.transaction() as s:
        [event] = [r for r in audit.rows(s) if r.release_id == started and r.kind == "verify.started"]
        payload = json.loads(event.payload) if isinstance(event.payload, str) else event.payload
    assert payload["on_call"] == "bob"
    assert payload["window_s"] == 24 * 3600
    assert payload["probes"] == []


def test_release_show_names_the_window_left_and_who_is_on_call_while_paused_in_verify(
    svc: Releases, started: str
) -> None:
    from rich.text import Text

    from shiprail.cli.watch import rollout_lines

    ctl = controller(svc, FakeRouter())
    while svc.get(started).status != "verifying":
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    ctl.tick()
    window = "  verifying at 100%: 23h50m of the validation window left; on call: bob"
    assert next(x.plain for x in rollout_lines(svc.get(started)) if isinstance(x, Text)) == window
    svc.act(started, Action.PAUSE, "bob", reason="a customer report to look at")
    paused = "  paused in Verify at 100%: 23h50m of the validation window left; on call: bob"
    assert next(x.plain for x in rollout_lines(svc.get(started)) if isinstance(x, Text)) == paused


def assert_judged_as_a_full_replay(svc: Releases, rid: str) -> int:
    """Every stored verdict of error-regression is a fresh test's on the increments stored before it; how many."""
    from shiprail.judges.contract import Increment, judge_regression
    from shiprail.schema.plan import Regression, Trigger
    from shiprail.store.models import Analysis

    regression = Trigger(name="error-regression", metric="error_rate", regression=Regression(alpha=0.01))
    with svc.store.transaction() as s:
        query = select(Analysis.results).where(Analysis.release_id == rid).order_by(Analysis.id)
        stored = [json.loads(results) for results in s.scalars(query)]
    earlier: list[Increment] = []
    for rows in stored:
        [row] = [r for r in rows if r["trigger"] == "error-regression"]
        if "increment" not in row:
            continue
        now = Increment.from_json(row["increment"])
        fresh, _ = judge_regression(regression, "error_rate", earlier, now)
        assert (row["reason"], row["value"]) == (fresh.reason, fresh.value)
        earlier.append(now)
    return len(earlier)


def wobbly(asked: list[int], each: Callable[[int], None] = lambda n: None) -> Behaviour:
    """Healthy, but the canary's errors vary from one query to the next, so every verdict differs."""

    def behaviour(name: str, version: str, now: datetime) -> Sample:
        if name != "error_rate":
            return healthy(name, version, now)
        if version == "2.4.0":
            asked.append(len(asked) + 1)
            each(len(asked))
            return Sample(0.001 * (1 + len(asked) % 3), 2000)
        return Sample(0.0012, 2000)

    return behaviour


def test_the_kept_regression_test_judges_as_a_full_replay_across_a_restart(
    judged: tuple[Releases, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from shiprail.controller import reconciler

    svc, rid = judged
    reads: list[int | None] = []
    real_read = reconciler.regression_increments

    def counted(session: object, release_id: str, after: int | None = None) -> object:
        reads.append(after)
        return real_read(session, release_id, after)  # type: ignore[arg-type]

    monkeypatch.setattr(reconciler, "regression_increments", counted)
    asked: list[int] = []
    stop = threading.Event()
    # The first controller stops after its 8th query; a fresh one takes over.
    behaviour = wobbly(asked, lambda n: stop.set() if n == 8 else None)
    controller(svc, FakeRouter(), behaviour).run(stop)
    first_reads = len(reads)
    controller(svc, FakeRouter(), behaviour).run(until_done=True)
    # Each controller read everything stored once (the first one twice: its first analysis found
    # nothing stored yet), then only what was added after the last analysis it had read.
    assert reads[:2] == [None, None] and reads[first_reads] is None
    assert None not in reads[2:first_reads] + reads[first_reads + 1 :]
    assert reads[2:first_reads] == sorted(set(reads[2:first_reads]))
    assert assert_judged_as_a_full_replay(svc, rid) >= 12 and len(asked) > 8


def test_analyses_discarded_or_made_by_another_controller_never_reach_the_kept_test(
    judged: tuple[Releases, str],
) -> None:
    import sqlalchemy as sa

    svc, rid = judged
    asked: list[int] = []

    def moved(n: int) -> None:
        # Someone moves the release while every 4th query is out: that analysis is not stored.
        if n % 4 == 0:
            with svc.store.transaction() as s:
                s.execute(sa.text("UPDATE releases SET revision = revision + 1 WHERE id = :id"), {"id": rid})

    router = FakeRouter()
    # Two controllers whose 1 s leases lapse between their turns: each keeps its tests while the
    # other stores analyses, and must take the other's analyses in when it reads again.
    a = controller(svc, router, wobbly(asked, moved), holder="h:A", lease_s=1)
    b = controller(svc, router, wobbly(asked, moved), holder="h:B", lease_s=1)
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    for turn in range(400):
        c = (a, b)[turn % 2]
        wake = c.tick()
        if not c.active():
            break
        clock.sleep_until(wake or clock.now() + timedelta(seconds=30))
    assert svc.get(rid).status in {"complete", "rolled_back"}
    assert assert_judged_as_a_full_replay(svc, rid) >= 12
    # Both controllers analysed, and both let go of the finished release's tests.
    with svc.store.transaction() as s:
        attached = [r.payload for r in audit.rows(s) if r.release_id == rid and r.kind == "controller.attached"]
    holders = {(json.loads(p) if isinstance(p, str) else p)["holder"] for p in attached}
    assert holders == {"h:A", "h:B"}
    a.tick(), b.tick()
    assert rid not in a._replays and rid not in b._replays


def test_a_release_a_person_finishes_is_let_go_of(judged: tuple[Releases, str]) -> None:
    svc, rid = judged
    c = controller(svc, FakeRouter())
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    for _ in range(200):
        if svc.get(rid).status == "verifying":
            break
        clock.sleep_until(c.tick() or clock.now() + timedelta(seconds=30))
    assert svc.get(rid).status == "verifying"
    assert rid in c._replays and rid in c._held
    override(svc, rid, "dana", REASON)  # verify's window is cut short: the release completes
    assert svc.get(rid).status == "complete"
    c.tick()
    assert rid not in c._replays and rid not in c._held


def test_a_controller_that_listed_a_release_before_another_finished_it_does_not_attach_to_it(
    svc: Releases, started: str
) -> None:
    # Scaled mode: B lists the active releases, A completes one of them and lets its lease go,
    # then B gets to it. B must not claim the finished release nor record controller.attached on
    # it (seen on PostgreSQL for 6 of 40 releases over two `shiprail controller`s).
    a, b = controller(svc, FakeRouter(), holder="h:A"), controller(svc, FakeRouter(), holder="h:B")
    listed = b.active()
    assert listed == [started]
    a.run(until_done=True)
    assert svc.get(started).status == "complete"
    b.active = lambda: listed  # type: ignore[method-assign]
    b.tick()
    assert [p["holder"] for p in payloads(svc, started, "controller.attached")] == ["h:A"]
    assert started not in b._held


# ---------------------------------------------------------------------------- lease fencing


class HangingRouter(FakeRouter):
    """The next ``set_weight`` of ``hang_at`` runs ``during`` before it applies (the call hangs).

    It says a call takes at most 5 s: a hang of 20 simulated seconds outlasts that timeout and the
    controller's margin, so the lease is no longer kept renewed (the heartbeat's case is pinned
    against a real nginx in tests/integration/routers/test_controller_fencing.py).
    """

    call_timeout_s = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.hang_at: float | None = None
        self.during: Callable[[], None] = lambda: None

    def set_weight(self, weight: float) -> None:
        if weight == self.hang_at:
            self.hang_at = None
            self.during()
        super().set_weight(weight)


def payloads(svc: Releases, rid: str, kind: str) -> list[dict[str, object]]:
    with svc.store.transaction() as s:
        return [json.loads(r.payload) for r in audit.rows(s) if r.release_id == rid and r.kind == kind]


def hung_through_a_rollback(svc: Releases, started: str) -> tuple[HangingRouter, Controller]:
    """Controller A's call for 10 % hangs 20 s: its 15 s lease runs out, B takes over, a person
    rolls back, B reverts to 0, finishes the rollback and lets the lease go; then A's call lands."""
    router = HangingRouter()
    a, b = controller(svc, router), controller(svc, router)
    a.tick()

    def meanwhile() -> None:
        svc.clock.advance(20)
        svc.act(started, Action.ROLLBACK, "bob", reason="pager")
        b.run(until_done=True)

    override(svc, started, "dana", "Hotfix for the outage; bake waived by the CTO")
    router.hang_at, router.during = 10, meanwhile
    a.tick()
    return router, a


def test_a_router_call_that_outlasts_the_lease_records_no_progress(svc: Releases, started: str) -> None:
    hung_through_a_rollback(svc, started)
    view = svc.get(started)
    assert view.status == "rolled_back"
    # The stale call did reach the router (there is no fence there), and that is recorded as a
    # fact, but not as the release's progress nor as an applied step.
    assert view.progress["applied_weight"] == 0
    assert [p["weight"] for p in payloads(svc, started, "router.applied")] == [1, 0]
    assert [p["weight"] for p in payloads(svc, started, "router.stale")] == [10]


def test_a_stale_router_call_that_lands_after_the_rollback_is_put_back_to_weight_0(svc: Releases, started: str) -> None:
    router, a = hung_through_a_rollback(svc, started)
    # A's late call put the canary back at 10 % on a rolled-back release...
    assert (svc.get(started).status, router.weight) == ("rolled_back", 10)
    # ...which the next pass of a controller (A itself here) reads back and undoes.
    a.tick()
    assert router.weight == 0
    assert router.calls == [1, 0, 10, 0]
    assert [p["weight"] for p in payloads(svc, started, "router.applied")] == [1, 0, 0]
    [settled] = payloads(svc, started, "router.settled")
    assert (settled["weight"], settled["found"], settled["reapplied"]) == (0, 10, True)
    view = svc.get(started)
    assert (view.status, view.progress["applied_weight"]) == ("rolled_back", 0)
    # Settled: the release is no longer looked at, and its lease is let go.
    a.tick()
    assert started not in a._held
    assert router.calls == [1, 0, 10, 0]
    assert chain_ok(svc)


def test_putting_back_a_stale_call_on_a_router_that_fails_keeps_its_backoff_across_controllers(
    svc: Releases, started: str
) -> None:
    router, a = hung_through_a_rollback(svc, started)
    a.close()
    router.failures = 10**9
    # A controller run once (from cron, say) cannot put the rolled-back release back to 0 %...
    first = controller(svc, router)
    wake = first.tick()
    [failed] = payloads(svc, started, "router.failed")
    due = datetime.fromisoformat(failed["retry_at"])
    assert (failed["weight"], failed["failed_passes"], wake) == (0, 1, due)
    assert list(first.router_failing) == [started] and first.failed == []  # so --once exits 1
    first.close()
    # ...and the next run within the backoff calls no router, and still says why.
    svc.clock.advance(2)
    calls = len(router.calls)
    second = controller(svc, router)
    assert second.tick() == due
    assert (len(router.calls), len(payloads(svc, started, "router.failed"))) == (calls, 1)
    assert second.router_failing[started].error == "admin socket refused the connection"
    second.close()


class HangingProvider:
    def __init__(self, svc: Releases) -> None:
        self.svc = svc
        self.during: Callable[[], None] | None = None

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        during, self.during = self.during, None
        if during is not None:
            during()
        return healthy(name, version, self.svc.clock.now())


def test_a_slow_analysis_keeps_its_lease_renewed_and_is_stored(svc: Releases, started: str) -> None:
    router = FakeRouter()
    slow, fast = HangingProvider(svc), HangingProvider(svc)
    a = Controller(svc, routers=lambda r: router, providers=lambda r: slow, heartbeat_s=0.01)  # type: ignore[arg-type,return-value]
    b = Controller(svc, routers=lambda r: router, providers=lambda r: fast)  # type: ignore[arg-type,return-value]
    a.tick()
    svc.clock.advance(600)

    def meanwhile() -> None:
        svc.clock.advance(20)  # Prometheus answers slowly: the analysis outlasts the 15 s lease
        beats = time.monotonic() + 5
        while lease_until(svc, started) <= svc.clock.now() and time.monotonic() < beats:
            time.sleep(0.01)  # A's heartbeat renews it meanwhile
        b.tick()  # and B, trying to take the release over, finds it held

    slow.during = meanwhile
    a.tick()
    assert kinds(svc, started).count("analysis.completed") == 1
    assert [p["holder"] for p in payloads(svc, started, "controller.attached")] == [a.holder]
    assert router.calls == [1] and svc.get(started).progress["baked_s"] == 600


def lease_until(svc: Releases, rid: str) -> datetime:
    with svc.store.transaction() as s:
        lease = s.get(Lease, rid)
        assert lease is not None
        return lease.expires_at


def test_an_analysis_that_outlasts_the_lease_is_not_stored_beside_the_new_holders(svc: Releases, started: str) -> None:
    router = FakeRouter()
    slow, fast = HangingProvider(svc), HangingProvider(svc)
    a = Controller(svc, routers=lambda r: router, providers=lambda r: slow)  # type: ignore[arg-type,return-value]
    b = Controller(svc, routers=lambda r: router, providers=lambda r: fast)  # type: ignore[arg-type,return-value]
    a.tick()
    svc.clock.advance(600)

    def meanwhile() -> None:
        svc.clock.advance(20)  # the provider hangs on its timeouts: A's lease runs out
        b.tick()

    slow.during = meanwhile
    a.tick()
    assert kinds(svc, started).count("analysis.completed") == 1
    assert svc.get(started).progress["baked_s"] == 600


def test_the_loop_outlives_the_database_cutting_its_connections(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A PostgreSQL restart or failover (here pg_terminate_backend on the store's connections)
    # between two passes: the next pass's first read fails. The loop looks again at the next poll
    # and drives the release on, each weight applied once, instead of the controller exiting.
    if svc.store.dialect != "postgresql":
        pytest.skip("cutting a connection from the server's side is PostgreSQL's")
    cut_connections = connection_cutter(svc.store)
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    jump = clock.sleep_until
    cut = {"done": False}

    def sleep_until(when: datetime) -> None:
        if not cut["done"]:
            cut["done"] = cut_connections() > 0
        jump(when)

    monkeypatch.setattr(clock, "sleep_until", sleep_until)
    router = FakeRouter()
    caplog.set_level(logging.WARNING, logger="shiprail.controller.reconciler")
    controller(svc, router).run(until_done=True)
    assert cut["done"]
    assert router.calls == [1, 10, 50, 100]
    assert svc.get(started).status == "complete"
    warned = [r.getMessage() for r in caplog.records if r.name == "shiprail.controller.reconciler"]
    assert len(warned) == 2
    assert warned[0].startswith("cannot reach the store: terminating connection due to administrator command;")
    assert warned[0].endswith("; looking again in 1s")
    assert warned[1] == "the store answers again: it failed 1 pass(es) over 1s"  # a minute of passes later
    assert chain_ok(svc)


class StopsMidCall(FakeRouter):
    """A router whose call is under way when SIGTERM arrives (``stop`` set during it)."""

    def __init__(self, stop: threading.Event, fail: bool = False) -> None:
        super().__init__()
        self.stop, self.fail, self.attempts = stop, fail, 0

    def set_weight(self, weight: float) -> None:
        self.attempts += 1
        self.stop.set()
        if self.fail:
            raise RouterError("the script timed out after 30s")
        super().set_weight(weight)


def test_sigterm_during_a_router_call_stops_after_that_call_not_after_the_pass(svc: Releases, started: str) -> None:
    # Stopping used to finish the whole pass: every other release's next decisions and router
    # calls (tens of seconds each for a slow script or an nginx reload), so a controller with
    # many releases outlived systemd's stop timeout and was killed mid-call.
    other = start_another(svc)
    stop = threading.Event()
    first, second = StopsMidCall(stop), FakeRouter()
    by_service = {"checkout": first, "checkout1": second}
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    provider = FakeProvider(clock, healthy)
    ctl = Controller(svc, routers=lambda r: by_service[r.service], providers=lambda r: provider)  # type: ignore[arg-type,return-value,misc]
    ctl.run(stop)
    assert (first.calls, second.calls) == ([1], [])  # the call under way is recorded; nothing after it
    assert kinds(svc, started)[-2:] == ["router.intent", "router.applied"]
    assert "controller.attached" not in kinds(svc, other)
    with svc.store.transaction() as s:
        assert all(lease.expires_at <= clock.now() for lease in s.execute(select(Lease)).scalars())
    # The next controller takes both over at once: the first baking at its 1%, the other started.
    by_service = {"checkout": first, "checkout1": second}
    Controller(svc, routers=lambda r: by_service[r.service], providers=lambda r: provider).tick()  # type: ignore[arg-type,return-value,misc]
    assert (first.calls, second.calls) == ([1], [1])
    assert kinds(svc, started)[-1] == "controller.attached"


def test_sigterm_during_a_failing_router_call_makes_no_more_attempts(svc: Releases, started: str) -> None:
    # A router that fails each attempt at its timeout held a stopping controller for all of a
    # pass's attempts (4 x a 30 s script). The attempt under way is recorded as the pass's failure.
    stop = threading.Event()
    router = StopsMidCall(stop, fail=True)
    controller(svc, router).run(stop)
    assert router.attempts == 1
    with svc.store.transaction() as s:
        failed = [json.loads(r.payload) for r in audit.rows(s) if r.kind == "router.failed"]
        intent = s.execute(select(RouterIntent)).scalar_one()
    assert [(f["weight"], f["attempts"], f["error"]) for f in failed] == [(1.0, 1, "the script timed out after 30s")]
    assert (intent.status, intent.attempts) == ("failed", 1)


def test_a_database_blip_mid_pass_is_one_log_line_not_a_traceback(
    svc: Releases, started: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The store's connections cut while the provider is asked: storing the analysis fails. That is
    # an outage to report in one line (journalctl), not a bug's traceback; the next pass carries on.
    if svc.store.dialect != "postgresql":
        pytest.skip("cutting a connection from the server's side is PostgreSQL's")
    pids: list[int] = []
    sa_event.listen(svc.store.engine, "connect", lambda conn, record: pids.append(conn.info.backend_pid))
    svc.store.engine.dispose()
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    cut = {"done": False}

    def cuts_once(name: str, version: str, now: datetime) -> Sample:
        if not cut["done"]:
            cut["done"] = True
            admin = sa_create_engine(svc.store.engine.url)
            with admin.begin() as conn:
                query = "SELECT pg_terminate_backend(p) FROM unnest(CAST(:pids AS int[])) AS p"
                conn.execute(sql(query), {"pids": pids})
            admin.dispose()
        return healthy(name, version, now)

    router = FakeRouter()
    ctl = controller(svc, router, cuts_once)
    ctl.tick()  # 1%
    clock.sleep_until(clock.now() + timedelta(minutes=INTERVAL))
    caplog.set_level(logging.WARNING)
    ctl.tick()
    assert cut["done"] and ctl.failed == [started]
    logged = [(r.name, r.getMessage(), r.exc_info) for r in caplog.records]
    assert logged == [
        (
            "shiprail.controller.reconciler",
            f"{started}: reconcile failed: the store failed: terminating connection due to administrator command",
            None,
        )
    ]
    assert "controller.error" not in kinds(svc, started)  # an outage begins: recorded once, the controller's
    with svc.store.transaction() as s:
        last = list(audit.rows(s))[-1]
    assert (last.kind, last.release_id) == ("controller.store_unreachable", None)


def test_a_statement_the_store_refuses_is_the_releases_controller_error_not_a_store_outage(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store answered (a value too long for its column, a deadlock): it was recorded as the store
    # unreachable, and the release's own controller.error was lost, at every pass while it repeated.
    ctl = controller(svc, FakeRouter())
    ctl.tick()  # 1%

    def refused(release_id: str) -> None:
        raise DataError("UPDATE rollouts SET …", {}, Exception("value too long for type character varying(64)"))

    monkeypatch.setattr(ctl, "reconcile", refused)
    ctl.tick()
    assert ctl.failed == [started]
    assert kinds(svc, started)[-1] == "controller.error"
    with svc.store.transaction() as s:
        assert [r.kind for r in audit.rows(s) if r.kind.startswith("controller.store")] == []


def test_healthz_stays_200_through_a_slow_router_call_within_its_timeout(svc: Releases, started: str) -> None:
    # /healthz is 503 once no pass ended for one lease (15 s): a liveness probe then restarts the
    # controller. A router call within its timeout (an nginx reload, a deploy script: 60 s here)
    # is no stuck loop; restarting mid-call only makes the release wait for the call's fence.
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    ctl = controller(svc, FakeRouter())
    ctl.health = ControllerHealth(clock, ctl.holder, stale_after_s=15)
    server = ctl.health.serve("127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}/healthz"
    seen: list[int] = []

    class Slow(FakeRouter):
        def set_weight(self, weight: float) -> None:
            for wait in (25, 40):  # 25 s, then 65 s into the call: within 60 s + the 10 s margin
                clock.advance(wait)
                seen.append(httpx.get(url).status_code)
            clock.advance(10)  # 75 s: hung past its timeout, as a stuck loop is
            seen.append(httpx.get(url).status_code)
            super().set_weight(weight)

    router = Slow()
    ctl._make_router = lambda r: router
    try:
        ctl.tick()
        assert seen == [200, 200, 503]
        assert router.calls == [1] and httpx.get(url).status_code == 200  # the pass ended
    finally:
        server.shutdown()
        server.server_close()
        ctl.close()


def test_sigterm_after_a_rollback_is_decided_still_takes_the_canary_off(
    svc: Releases, started: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stopping takes no further decision, except the weight 0 of a rollback decided in the same
    # pass: left to the next controller, the failing canary kept its traffic until one came round.
    stop = threading.Event()
    act = Releases.act

    def stop_at_the_rollback(self: Releases, release_id: str, action: Action, *a: object, **kw: object) -> object:
        outcome = act(self, release_id, action, *a, **kw)  # type: ignore[arg-type]
        if action is Action.ROLLBACK:
            stop.set()  # SIGTERM lands as the rollback is recorded
        return outcome

    monkeypatch.setattr(Releases, "act", stop_at_the_rollback)
    router, failing = FakeRouter(), TurnsBad()
    failing.bad = True
    controller(svc, router, failing).run(stop)
    assert router.calls == [1, 0]
    assert svc.get(started).status == "rolled_back"


def test_a_release_whose_on_call_person_lost_the_role_since_planning_does_not_enter_verify(
    svc: Releases, started: str
) -> None:
    # bob was on call when the plan was checked; shiprail.yaml has taken the role from him since.
    policy = Path("shiprail.yaml")
    policy.write_text(policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    ctl = controller(now, FakeRouter())
    for _ in range(60):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    view = now.get(started)
    assert (view.status, view.step, view.weight) == ("rolling_out", 3, 100)
    last = [(g["gate"], g["verdict"], g["reason"]) for g in view.gates if g["action"] == "promote"][-4:]
    assert last == [
        ("bake", "pass", "100% has no bake to wait for"),
        ("analysis", "pass", f"every trigger passed at {last[1][2].removeprefix('every trigger passed at ')}"),
        ("freeze", "pass", "no deployment freeze is on"),
        (
            "on_call",
            "fail",
            "bob, on call for Verify, needs the role oncall in shiprail.yaml and has approver; give bob the role, "
            "or hand over to someone given the role oncall with `shiprail release handover`",
        ),
    ]
    assert "verify.started" not in kinds(now, started)
    # Earlier steps do not judge it: they do not enter Verify.
    assert {g["gate"] for g in view.gates if g["action"] == "promote" and g["verdict"] == "pass"} == {
        "bake",
        "analysis",
        "freeze",
    }
    # A gate like any other: an executive passes it, which opens a post-mortem.
    now.override(started, "dana", "bob covers the window; the rota is being fixed")
    view = now.get(started)
    assert view.status == "verifying"
    assert [g["verdict"] for g in view.gates if g["gate"] == "on_call"][-1] == "overridden"
    assert [p["status"] for p in view.postmortems][-1] == "open"
    assert kinds(now, started)[-3:] == ["verify.started", "override.granted", "postmortem.opened"]
    assert chain_ok(now)


def test_a_release_whose_on_call_person_left_shiprail_yaml_names_them_and_who_could_take_over(
    svc: Releases, started: str
) -> None:
    policy = Path("shiprail.yaml")
    text = policy.read_text().replace("  bob:   {roles: [approver, oncall], email: bob@example.com}\n", "")
    policy.write_text(text.replace("carol: {roles: [approver]", "carol: {roles: [approver, oncall]"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    ctl = controller(now, FakeRouter())
    for _ in range(60):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    assert now.get(started).status == "rolling_out"
    with pytest.raises(GateFailed) as refused:
        now.act(started, Action.PROMOTE, "alice")
    assert refused.value.message == (
        f"release {started} cannot promote: gate on_call failed (bob, on call for Verify, is not a person in "
        "shiprail.yaml; add bob under people with the role oncall, or hand over to someone who has it (carol) "
        "with `shiprail release handover`); "
        "fix it and try again, or someone with the role executive may pass it with "
        f"`shiprail release override {started} --at 'rolling_out (step 4)' --gate {reference('on_call', ['bob'])} "
        "--reason ...` "
        "(failed: on_call)"
    )


def test_a_handover_before_verify_is_who_the_on_call_gate_judges_and_verify_started_names(
    svc: Releases, started: str
) -> None:
    from rich.text import Text

    from shiprail.cli.watch import rollout_lines

    policy = Path("shiprail.yaml")
    text = policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]")
    policy.write_text(text.replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    now.handover(started, "erin", "alice", "bob moved to the platform team")
    ctl = controller(now, FakeRouter())
    while now.get(started).status != "verifying":
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    ctl.tick()
    view = now.get(started)
    assert [(g["verdict"], g["reason"]) for g in view.gates if g["gate"] == "on_call"] == [
        ("pass", "erin is on call (role oncall in shiprail.yaml)")
    ]
    with now.store.transaction() as s:
        [event] = [r for r in audit.rows(s) if r.release_id == started and r.kind == "verify.started"]
    assert json.loads(event.payload)["on_call"] == "erin"
    window = "  verifying at 100%: 23h50m of the validation window left; on call: erin"
    assert next(x.plain for x in rollout_lines(view) if isinstance(x, Text)) == window


def test_the_controller_asks_the_on_call_gate_once_until_a_handover_or_an_edit_of_shiprail_yaml(
    svc: Releases, started: str
) -> None:
    # Nothing but a handover or shiprail.yaml changes the on_call gate's verdict: asking it again at
    # every pass stored and audited the same four gates twice an analysis interval (a release left
    # at 100% over a weekend, at the default 1m interval: thousands of refusals a day).
    policy = Path("shiprail.yaml")
    lost = policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]")
    policy.write_text(lost)
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy, PolicyWatch(Path.cwd()))
    ctl = controller(now, FakeRouter())

    def on_call_verdicts() -> list[str]:
        return [g["verdict"] for g in now.get(started).gates if g["gate"] == "on_call"]

    for _ in range(80):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    assert (now.get(started).status, now.get(started).step, on_call_verdicts()) == ("rolling_out", 3, ["fail"])
    # shiprail.yaml changed (erin joins the rota): asked again, once; bob still lacks the role.
    policy.write_text(lost.replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    for _ in range(10):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    assert (now.get(started).status, on_call_verdicts()) == ("rolling_out", ["fail", "fail"])
    # A handover: asked at the next pass, and it passes.
    now.handover(started, "erin", "alice", "bob moved to the platform team")
    ctl.tick()
    assert (now.get(started).status, on_call_verdicts()) == ("verifying", ["fail", "fail", "pass"])


def test_after_a_pause_and_a_resume_an_override_passes_the_on_call_gate_that_still_holds_the_release(
    svc: Releases, started: str
) -> None:
    # Held before Verify, paused and resumed: the refusal the controller recorded still stands (it
    # does not ask again), and an override passes the on_call gate without a fresh promote first.
    policy = Path("shiprail.yaml")
    policy.write_text(policy.read_text().replace("roles: [approver, oncall]", "roles: [approver]"))
    now = Releases(svc.store, svc.clock, open_project(Path.cwd()).policy)
    ctl = controller(now, FakeRouter())
    for _ in range(80):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    now.act(started, Action.PAUSE, "alice")
    now.act(started, Action.RESUME, "alice")
    for _ in range(3):
        ctl.tick()
        svc.clock.advance(INTERVAL * 60)
    assert [g["verdict"] for g in now.get(started).gates if g["gate"] == "on_call"] == ["fail"]
    assert now.override(started, "dana", "Erin covers Verify; bob's role returns after the reorg").allowed
    view = now.get(started)
    assert (view.status, [(o["by"], o["gates"]) for o in view.overrides][-1]) == ("verifying", ("dana", ["on_call"]))


def test_a_provider_slower_than_the_interval_gets_one_analysis_a_pass_and_the_others_their_turn(
    svc: Releases, started: str
) -> None:
    """Each query of ``started``'s metrics takes 8 minutes (a Prometheus that stopped answering, each
    query running to its timeout): its analyses outlast the 10-minute interval, so the next one is
    due as soon as one ends. A pass used to take them back to back, 20 in one pass (160 minutes of a
    hung provider), while ``release start --wait`` showed nothing and the other releases waited."""
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    other = start_another(svc)
    services = {started: "checkout", other: "checkout1"}
    router = {name: FakeRouter() for name in services.values()}
    slow = FakeProvider(clock, lambda name, version, now: (clock.advance(8 * 60), Sample.failed("timeout"))[1])
    fast = FakeProvider(clock, healthy)
    ctl = Controller(
        svc,
        routers=lambda r: router[r.service],  # type: ignore[arg-type,return-value]
        providers=lambda r: slow if r.service == "checkout" else fast,  # type: ignore[arg-type,return-value]
    )
    ctl.tick()  # both weights applied
    assert [r.calls for r in router.values()] == [[1], [1]]
    clock.advance(INTERVAL * 60)
    ctl.tick()
    analyses = {rid: kinds(svc, rid).count("analysis.completed") for rid in services}
    assert analyses == {started: 1, other: 1}
    ctl.tick()  # the next pass takes the next one, due at once
    assert kinds(svc, started).count("analysis.completed") == 2
