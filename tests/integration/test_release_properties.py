"""Property: any sequence of commands leaves every release in a legal state and the chain intact.

The commands are those of people (create, approve, sign off, record checks, act, override, hand
over, close post-mortems) and of the world: the canary's metrics fail or go missing for a while,
Verify's key user flow answers 503 for a while (``trouble``), the clock moves with nobody watching
(``wait``). After each command the real controller may run for a few analysis intervals, as it runs
all along in production, through the real flag router (the store holds its weight), running
Verify's probe against a real local HTTP server. Its cadence, the bakes and the validation window
are short (20-minute analyses, a one-hour window), and half the sequences start with the first
release at its first step, so that about half of them reach Verify and end there: completed (after
the window, or by override), rolled back, held by a person or for missing data, handed over.
``--hypothesis-show-statistics`` says how many did (``Verify: ...``).

After every command, and every run of the controller, the auditor's invariants are checked on
what the store holds:

- the audit chain verifies, and nothing before the last command's events changed;
- every change of state is a ``release.transitioned`` event whose gates were each evaluated and
  passed (or were overridden) just before it, entering Verify among them its ``on_call`` gate, and
  followed by ``verify.started`` naming someone on call; a release's ``state_since`` is that
  event's time;
- a release completed either watched its whole validation window on the injected clock with a
  person holding the role ``oncall`` on call, or had the window overridden;
- a rolled-back release's weight at the router (the flag config it published) is 0;
- every override has its post-mortem;
- a refused command changes nothing: no event and no release row changes (a refusal by a gate
  records only its gate evaluations);
- at most one release of the service holds its router.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shiprail.cli.init import write_project
from shiprail.clock import SimulatedClock
from shiprail.controller import Controller
from shiprail.domain.contract import Sample
from shiprail.domain.engine import ReleaseState, gates_for, invariant_violations, parse_state
from shiprail.domain.states import FORWARD, ON_THE_ROUTER, Action, Gate, Status
from shiprail.errors import GateFailed, ShiprailError
from shiprail.export.history import HANDOVER_EVENT
from shiprail.project import CheckedPlan, Project, check_plan_file, open_project
from shiprail.releases import Releases, manual_steps
from shiprail.schema.policy import ON_CALL_ROLE
from shiprail.schema.resolved import ResolvedRelease
from shiprail.schema.service import Metric
from shiprail.store import audit, flags
from shiprail.store.audit import EventRow
from shiprail.store.db import Store
from shiprail.store.models import Override, Postmortem, Release, RollbackLog

# Weighted towards people who may act, so that sequences get deep into the lifecycle too.
PEOPLE = ["alice", "bob", "carol", "quinn", "dana", "dana", "mallory", "shiprail:controller"]
REASONS = ["ok", "The customer demo is tomorrow morning, accepted risk", "Hotfix for the outage, accepted risk"]
# Who may be handed the on-call duty: erin and bob hold the role oncall; carol does not (refused).
ON_CALL = ["bob", "erin", "carol"]
HANDING = ["alice", "bob", "erin", "dana", "carol"]
INTERVAL_MIN = 20  # minutes between the controller's analyses
WINDOW_S = 3600  # Verify's validation window
PROBE = "probe checkout page"  # the plan's probe, as analyses name its result

# Where each example's database lives: in memory when the system has a tmpfs, where a commit
# (thousands an example) costs no disk sync.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# Where the first release starts: half the sequences explore its Plan or its Stage, the others
# start it at its first step so that a good share of them get through the rollout into Verify
# and end there. (Hypothesis leans towards the first of a list, and shrinks towards it.)
START = [Status.ROLLING_OUT, Status.ROLLING_OUT, Status.STAGING, Status.PLANNED]
release_index = st.integers(0, 2)
command = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["alice", "mallory"])),
    st.tuples(st.just("approve"), release_index, st.sampled_from(PEOPLE)),
    st.tuples(st.just("signoff"), release_index, st.sampled_from(["1", "2", "3", "4"]), st.sampled_from(PEOPLE)),
    st.tuples(st.just("check"), release_index, st.sampled_from(["tests", "load_test"]), st.booleans()),
    st.tuples(st.just("act"), release_index, st.sampled_from(list(Action)), st.sampled_from(PEOPLE)),
    # The on-call holding a release and letting it go again (a pause stays until a person resumes it).
    st.tuples(
        st.just("act"), release_index, st.sampled_from([Action.RESUME, Action.RESUME, Action.PAUSE]), st.just("bob")
    ),
    st.tuples(st.just("override"), release_index, st.sampled_from(["dana", *PEOPLE]), st.sampled_from(REASONS)),
    st.tuples(st.just("close_pm"), release_index, st.sampled_from(PEOPLE)),
    *[st.tuples(st.just("handover"), release_index, st.sampled_from(ON_CALL), st.sampled_from(HANDING))] * 2,
    st.tuples(st.just("wait"), st.integers(0, 5 * 3600)),
    # The forward action by the owner, weighted up so sequences reach late states.
    st.tuples(st.just("advance"), release_index),
    st.tuples(st.just("advance"), release_index),
    st.tuples(st.just("advance"), release_index),
    st.tuples(st.just("prepare"), release_index),
    # For the next 1 to 6 analyses: the canary fails (errors), no metrics come (silent), Verify's
    # key user flow answers 503.
    st.tuples(st.just("trouble"), st.sampled_from(["errors", "silent", "probe"]), st.integers(1, 6)),
)
# Each command, then the controller at work for so many analysis intervals (0: the next command
# comes at once): it runs all along, as in production, so that every sequence's rollouts bake.
step = st.tuples(command, st.sampled_from([1, 0, 0, 2, 4]))


class Flow:
    """A key user flow Verify's probe reaches over real HTTP: it answers 503 until ``failing_until``
    on ``clock`` (set by each example), 200 after."""

    def __init__(self) -> None:
        self.clock = SimulatedClock()
        self.failing_until = self.clock.now()
        flow = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(503 if flow.clock.now() < flow.failing_until else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Metrics:
    """The service's metrics as the controller reads them: healthy, but until ``until`` on ``clock``
    as ``trouble`` says: a failing canary (``errors``) or none at all (``silent``)."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.trouble = "errors"
        self.until = clock.now()

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        now = self.clock.now() < self.until
        if now and self.trouble == "silent":
            return Sample(None, 0.0)
        if name == "error_rate":
            bad = now and self.trouble == "errors" and version == "2.4.0"
            return Sample(0.5 if bad else 0.001, 1000)
        return Sample(0.2, 1000)


@pytest.fixture(scope="module")
def flow() -> Iterator[Flow]:
    served = Flow()
    yield served
    served.close()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}: the example project changed, so must this test"
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, flow: Flow) -> Path:
    """A project with a migrated, empty database, copied for every example (migrating is slow).

    The example project, with the flag router (the store holds its weight), bakes and a validation
    window short enough for the controller to drive a release to its end in a few dozen analyses,
    a second person on call, and Verify's probe at ``flow``.
    """
    root = tmp_path_factory.mktemp("template")
    write_project(root)
    service = root / "services" / "checkout.yaml"
    text = service.read_text()
    start, end = text.index("router:"), text.index("provider:")
    service.write_text(text[:start] + "router:\n  type: flag\n\n" + text[end:])
    policy = root / "shiprail.yaml"
    _edit(policy, "{1: 30m, 10: 2h,  50: 4h}", "{1: 10m, 10: 20m, 50: 30m}")  # medium and high
    _edit(policy, "verify:\n  window: 24h", "verify:\n  window: 1h")
    _edit(policy, "  dana:", "  erin:  {roles: [oncall], email: erin@example.com}\n  dana:")
    plan = root / "releases" / "checkout-2.4.0.yaml"
    _edit(plan, "bake: 30m}", "bake: 20m}")
    _edit(plan, "bake: 2h}", "bake: 20m}")
    _edit(plan, "bake: 4h}", "bake: 40m}")
    _edit(plan, "rollout:\n", f"rollout:\n  analysis_interval: {INTERVAL_MIN}m\n")
    _edit(plan, "window: 24h", "window: 1h")
    _edit(plan, "url: http://127.0.0.1:8002/health", f"url: {flow.url}")
    _edit(plan, "      max_latency: 0.5\n", "")
    Store(f"sqlite:///{root / 'db.sqlite'}").close()
    return root


@pytest.fixture(scope="module")
def parsed(template: Path) -> tuple[Project, CheckedPlan]:
    """The template's project and plan, read once: every example's copy holds the same files, and
    reading them (YAML, validation) cost 0.04 s an example, a fourteenth of its time."""
    project = open_project(template)
    return project, check_plan_file(template / "releases" / "checkout-2.4.0.yaml", project)


# A release row as the checks compare it before and after a refused command.
ROW = (
    Release.id,
    Release.status,
    Release.step,
    Release.paused_from,
    Release.frozen_at,
    Release.revision,
    Release.state_since,
    Release.plan_hash,
    Release.owner,
)
Rows = dict[str, tuple[Any, ...]]


@dataclass
class Seen:
    """What the checks have read of the chain so far, and what it told about each release."""

    seq: int
    digest: str
    # Per release: its gate evaluations since its last other event (the attempt being recorded).
    attempt: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    entered_verify: dict[str, datetime] = field(default_factory=dict)
    on_call: dict[str, str] = field(default_factory=dict)
    last_to: dict[str, str] = field(default_factory=dict)
    pending_pm: set[int] = field(default_factory=set)  # overrides whose post-mortem is not opened yet
    story: set[str] = field(default_factory=set)  # what the sequence explored, for ``event``
    rows: Rows = field(default_factory=dict)  # every release row as the last check read it (``ROW``)
    kinds: set[str] = field(default_factory=set)  # the kinds of events the last command recorded
    rolled_back: set[str] = field(default_factory=set)
    since: dict[str, datetime] = field(default_factory=dict)  # when each release entered its state
    reverted: set[str] = field(default_factory=set)  # rolled back, and their revert found confirmed


@dataclass
class World:
    svc: Releases
    clock: SimulatedClock
    controller: Controller
    metrics: Metrics
    flow: Flow
    plan: CheckedPlan
    ids: list[str]


# 75 examples: each runs the controller through whole rollouts, and the test takes about as long
# as its 100 examples did when none got past the first step.
@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.sampled_from(START), steps=st.lists(step, min_size=10, max_size=40))
def test_random_commands_never_reach_an_illegal_state(
    template: Path,
    parsed: tuple[Project, CheckedPlan],
    flow: Flow,
    start: Status,
    steps: list[tuple[tuple[Any, ...], int]],
) -> None:
    # Only the database is copied: the releases read their plan from the template, which no example
    # changes; the project's other files cost as much again to copy and delete as the example ran.
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        shutil.copyfile(template / "db.sqlite", Path(tmp) / "db.sqlite")
        store = Store(f"sqlite:///{Path(tmp) / 'db.sqlite'}")
        clock = SimulatedClock()
        project, plan = parsed
        svc = Releases(store, clock, project.policy)
        metrics = Metrics(clock)

        def providers(r: ResolvedRelease) -> Metrics:
            return metrics

        controller = Controller(svc, providers=providers)  # type: ignore[arg-type]
        flow.clock, flow.failing_until = clock, clock.now()
        world = World(svc, clock, controller, metrics, flow, plan, [])
        try:
            with store.transaction() as s:
                seen = Seen(*audit.head(s))
            world.ids.append(svc.create(plan, "alice").id)
            svc.approve(world.ids[0], "bob")
            svc.approve(world.ids[0], "carol")
            if start is not Status.PLANNED:
                run(world, ("advance", 0))
            if start is Status.ROLLING_OUT:
                run(world, ("prepare", 0))
                run(world, ("advance", 0))
            assert status(svc, world.ids[0]) is start
            check_step(world, seen)
            for cmd, intervals in steps:
                before = (seen.seq, seen.rows)
                refusal = run(world, cmd)
                check_step(world, seen)
                if refusal is not None:
                    check_unchanged(seen, before, refusal)
                if intervals:
                    drive(world, intervals * INTERVAL_MIN * 60)
                    check_step(world, seen)
            with store.transaction() as s:
                seq, digest = audit.head(s)
                report = audit.verify(audit.rows(s), head_seq=seq, head_hash=digest)
                assert report.ok, report.finding
                assert report.last_seq == seq
                for release in s.query(Release):
                    event(f"a release ended the sequence {Status(release.status).value}")
            for what in sorted(seen.story):
                event(what)
        finally:
            controller.close()
            store.close()


# ---------------------------------------------------------------------------------- commands


def status(svc: Releases, rid: str) -> Status:
    """Where ``rid`` stands, read alone: ``svc.get``'s whole view (its events, gates, checks) cost
    11 ms where this costs well under one, and was an eighth of every example's time."""
    with svc.store.transaction() as s:
        return Status(s.execute(select(Release.status).where(Release.id == rid)).scalar_one())


def drive(world: World, seconds: int) -> None:
    """The controller at work for ``seconds`` of the injected clock, as its loop runs it."""
    end = world.clock.now() + timedelta(seconds=seconds)
    for _ in range(10_000):
        wake = world.controller.tick()
        assert world.controller.failed == [], world.controller.failed
        if wake is None or wake >= end:
            world.clock.sleep_until(end)
            return
        world.clock.sleep_until(wake)
    raise AssertionError(f"the controller never waited: at {world.clock.now()}")


def run(world: World, cmd: tuple[Any, ...]) -> ShiprailError | None:
    """Run one command; the refusal it met, if any (anything but a ``ShiprailError`` is a bug)."""
    svc, kind = world.svc, cmd[0]
    if kind == "wait":
        world.clock.advance(float(cmd[1]))
        return None
    if kind == "trouble":
        until = world.clock.now() + timedelta(seconds=int(cmd[2]) * INTERVAL_MIN * 60)
        if cmd[1] == "probe":
            world.flow.failing_until = until
        else:
            world.metrics.trouble, world.metrics.until = str(cmd[1]), until
        return None
    try:
        if kind == "create":
            world.ids.append(svc.create(world.plan, str(cmd[1])).id)
            return None
        rid = world.ids[int(cmd[1]) % len(world.ids)]
        if kind == "approve":
            svc.approve(rid, str(cmd[2]))
        elif kind == "signoff":
            svc.signoff(rid, str(cmd[2]), str(cmd[3]))
        elif kind == "check":
            name = "unit" if cmd[2] == "tests" else "load_test"
            svc.record_check(
                rid, kind=str(cmd[2]), name=name, passed=bool(cmd[3]), summary="s", evidence={}, actor="alice"
            )
        elif kind == "act":
            svc.act(rid, cmd[2], str(cmd[3]))
        elif kind == "prepare":
            for item in ("1", "2", "3"):
                svc.signoff(rid, item, "quinn")
            for check, name in (("tests", "unit"), ("load_test", "load_test")):
                if status(svc, rid) is Status.STAGING:
                    svc.record_check(rid, kind=check, name=name, passed=True, summary="s", evidence={}, actor="alice")
        elif kind == "advance":
            now = status(svc, rid)
            if now in FORWARD:
                svc.act(rid, FORWARD[now], "alice")
        elif kind == "override":
            svc.override(rid, str(cmd[2]), str(cmd[3]))  # refused unless an act was refused first
        elif kind == "close_pm":
            svc.close_postmortem(rid, str(cmd[2]), "What we learned, written down in full.")
        elif kind == "handover":
            svc.handover(rid, str(cmd[2]), str(cmd[3]), "swapping the rota")
    except ShiprailError as refusal:
        return refusal  # refusals are expected; anything else is a bug
    return None


# ---------------------------------------------------------------------------------- invariants


def check_unchanged(seen: Seen, before: tuple[int, Rows], refusal: ShiprailError) -> None:
    """A refused command changed no release; it recorded nothing, or (refused by a gate) only the
    evaluations of that attempt."""
    assert seen.rows == before[1], f"{refusal} changed a release"
    if seen.seq == before[0]:
        return
    assert isinstance(refusal, GateFailed), f"{refusal} recorded events"
    assert seen.kinds == {"gate.evaluated"}, f"{refusal} recorded {seen.kinds}"


def check_step(world: World, seen: Seen) -> None:
    """Every invariant on what the store holds now, reading only the chain's new events."""
    with world.svc.store.transaction() as s:
        seq, digest = audit.head(s)
        rows = list(audit.rows_from(s, seen.seq))  # with the last one checked, which must not have changed
        if seen.seq == 0:  # the chain's first rows: all of it
            report = audit.verify(rows, head_seq=seq, head_hash=digest)
            assert report.ok, report.finding
        else:
            start = audit.Checkpoint(seen.seq, seen.digest, "")
            assert audit.continues(rows, start, seq, digest), f"the chain does not hold from {seen.seq} to {seq}"
        new = [row for row in rows if row.seq > seen.seq]
        seen.seq, seen.digest, seen.kinds = seq, digest, {row.kind for row in new}
        for row in new:
            check_event(world, seen, row)
        for rid in seen.rolled_back - seen.reverted:
            logs = s.execute(select(RollbackLog.revert_confirmed_at).where(RollbackLog.release_id == rid)).all()
            assert logs and all(at is not None for (at,) in logs), f"{rid} is rolled back, its revert unconfirmed"
            seen.reverted.add(rid)
        if seen.rolled_back:
            published = flags.read(s, world.plan.resolved.service)
            if published.release in seen.rolled_back:
                assert published.weight == 0, (
                    f"{published.release} is rolled back with {published.weight}% at the router"
                )
        if "override.granted" in seen.kinds:
            overridden = set(s.execute(select(Override.id)).scalars())
            assert set(s.execute(select(Postmortem.override_id)).scalars()) == overridden
        releases = s.execute(select(*ROW)).all()
    assert seen.pending_pm == set(), f"overrides without a post-mortem: {seen.pending_pm}"
    seen.rows = {row[0]: tuple(row[1:]) for row in releases}
    routed = []
    for rid, status_, step, paused_from, frozen_at, _, state_since, *_ in releases:
        state = ReleaseState(Status(status_), step, Status(paused_from) if paused_from else None)
        assert invariant_violations(state, len(world.plan.resolved.steps)) == []
        assert (frozen_at is None) == (state.status is Status.PLANNED)
        assert seen.last_to.get(rid, "planned") == state.describe(), f"{rid} changed state without an event"
        # In its state since its last change of state (or its creation), as the chain has it.
        assert naive(state_since) == naive(seen.since[rid]), f"{rid} in its state since {state_since}"
        if state.status in ON_THE_ROUTER or state.paused_from in ON_THE_ROUTER:
            routed.append(rid)
    assert len(routed) <= 1, f"releases of one service on its router at once: {routed}"


def naive(at: datetime) -> datetime:
    """A UTC time as SQLite gives it back: without its zone."""
    return at.replace(tzinfo=None)


def check_event(world: World, seen: Seen, row: EventRow) -> None:
    rid = row.release_id
    if rid is None:
        return
    data = json.loads(row.payload) if isinstance(row.payload, str) else dict(row.payload)
    attempt = seen.attempt.setdefault(rid, [])
    if row.kind == "gate.evaluated":
        if attempt and attempt[-1]["action"] != data["action"]:
            attempt.clear()
        attempt.append(data)
        return
    if row.kind in ("release.created", "release.transitioned"):
        seen.since[rid] = row.at
    if row.kind == "release.transitioned":
        check_transition(world, seen, rid, row, data, list(attempt))
    elif row.kind == "verify.started":
        assert seen.last_to.get(rid) == Status.VERIFYING.value
        assert data["on_call"] == seen.on_call.get(rid, world.plan.resolved.on_call)
        seen.on_call[rid] = data["on_call"]
        assert data["window_s"] == WINDOW_S
    elif row.kind == HANDOVER_EVENT:
        assert ON_CALL_ROLE in world.svc.policy.people[data["to"]].roles, f"{rid} handed over to {data['to']}"
        seen.on_call[rid] = data["to"]
        if "verifying" in seen.last_to.get(rid, ""):
            seen.story.add("Verify: handover")
    elif row.kind == "override.granted":
        seen.pending_pm.add(int(data["override_id"]))
        if Action(data["action"]) is Action.COMPLETE:
            seen.story.add("Verify: override")
    elif row.kind == "postmortem.opened":
        seen.pending_pm.discard(int(data["override_id"]))
    elif row.kind == "analysis.completed" and seen.last_to.get(rid) == Status.VERIFYING.value:
        for trigger in data["triggers"]:
            if trigger["trigger"] == PROBE:
                seen.story.add(f"Verify: the probe's verdict {trigger['verdict']}")
    attempt.clear()


def check_transition(
    world: World, seen: Seen, rid: str, row: EventRow, data: dict[str, Any], attempt: list[Any]
) -> None:
    """A change of state: from where the last one left it, every gate of it evaluated just before and passed."""
    action = Action(data["action"])
    assert data["from"] == seen.last_to.get(rid, "planned"), f"{rid}: {data['from']} is not where it was"
    before = parse_state(data["from"])
    assert before is not None
    r = world.plan.resolved
    needed = set(gates_for(action, before, len(r.steps), manual_steps(r)))
    verdicts = {ev["gate"]: ev["verdict"] for ev in attempt if ev["action"] == action.value}
    assert set(verdicts) == {g.value for g in needed}, f"{rid}: {action.value} evaluated {verdicts}, needs {needed}"
    assert all(v in ("pass", "overridden") for v in verdicts.values()), f"{rid}: {action.value} with {verdicts}"
    seen.last_to[rid] = data["to"]
    if data["to"] == Status.VERIFYING.value and action is Action.PROMOTE:
        assert Gate.ON_CALL.value in verdicts
        seen.entered_verify[rid] = row.at
        seen.story.add("Verify: entered")
    if before.status is Status.VERIFYING or before.paused_from is Status.VERIFYING:
        seen.story.add(f"Verify: {action.value}")
    if action is Action.COMPLETE:
        check_completed(world, seen, rid, row.at, verdicts)
    if action is Action.FINISH_ROLLBACK:
        seen.rolled_back.add(rid)
        seen.story.add("a release was rolled back")


def check_completed(world: World, seen: Seen, rid: str, at: datetime, verdicts: dict[str, str]) -> None:
    """Complete: the window watched in full on the injected clock with someone on call, or overridden."""
    started = seen.entered_verify[rid]
    if verdicts[Gate.VERIFY_WINDOW.value] == "pass":
        assert (at - started).total_seconds() >= WINDOW_S, f"{rid} completed {at - started} into Verify"
        seen.story.add("Verify: completed after its window")
    else:
        seen.story.add("Verify: completed by override")
    on_call = seen.on_call[rid]
    assert ON_CALL_ROLE in world.svc.policy.people[on_call].roles, f"{rid} completed with {on_call} on call"
