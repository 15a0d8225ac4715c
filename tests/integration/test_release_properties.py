"""Property: any sequence of commands leaves every release in a legal state and the chain intact."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from shiprail.cli.init import write_project
from shiprail.clock import SimulatedClock
from shiprail.domain.engine import GateResult, invariant_violations
from shiprail.domain.states import FORWARD, Action, Gate, Status
from shiprail.errors import ShiprailError
from shiprail.project import CheckedPlan, Project, check_plan_file, open_project
from shiprail.releases import Releases, resolved_of, state_of
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.models import Release

# Weighted towards people who may act, so that sequences get deep into the lifecycle too.
PEOPLE = ["alice", "bob", "carol", "quinn", "dana", "dana", "mallory", "shiprail:controller", "shiprail:controller"]
REASONS = ["ok", "The customer demo is tomorrow morning, accepted risk", "Hotfix for the outage, accepted risk"]

command = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["alice", "mallory"])),
    st.tuples(st.just("approve"), st.integers(0, 2), st.sampled_from(PEOPLE)),
    st.tuples(st.just("signoff"), st.integers(0, 2), st.sampled_from(["1", "2", "3", "4"]), st.sampled_from(PEOPLE)),
    st.tuples(st.just("check"), st.integers(0, 2), st.sampled_from(["tests", "load_test"]), st.booleans()),
    st.tuples(st.just("act"), st.integers(0, 2), st.sampled_from(list(Action)), st.sampled_from(PEOPLE), st.booleans()),
    st.tuples(st.just("override"), st.integers(0, 2), st.sampled_from(PEOPLE), st.sampled_from(REASONS)),
    st.tuples(st.just("close_pm"), st.integers(0, 2), st.sampled_from(PEOPLE)),
    st.tuples(st.just("wait"), st.integers(0, 5 * 3600)),
    # The forward action with passing plugin verdicts, weighted up so sequences reach late states.
    st.tuples(st.just("advance"), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.integers(0, 2)),
    st.tuples(st.just("advance"), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.integers(4 * 3600, 25 * 3600)),
    st.tuples(st.just("prepare"), st.integers(0, 2)),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a migrated, empty database, copied for every example (migrating is slow)."""
    root = tmp_path_factory.mktemp("template")
    write_project(root)
    Store(f"sqlite:///{root / 'db.sqlite'}").close()
    return root


@pytest.fixture(scope="module")
def parsed(template: Path) -> tuple[Project, CheckedPlan]:
    """The template's project and plan, read once: every example's copy holds the same files, and
    reading them (YAML, validation) cost 0.04 s an example, a fourteenth of its time."""
    project = open_project(template)
    return project, check_plan_file(template / "releases" / "checkout-2.4.0.yaml", project)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(command, min_size=20, max_size=80))
def test_random_commands_never_reach_an_illegal_state(
    template: Path, parsed: tuple[Project, CheckedPlan], commands: list[tuple[object, ...]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        shutil.copytree(template, root)
        store = Store(f"sqlite:///{root / 'db.sqlite'}")
        clock = SimulatedClock()
        project, plan = parsed
        svc = Releases(store, clock, project.policy)
        ids: list[str] = [svc.create(plan, "alice").id]
        svc.approve(ids[0], "bob")
        svc.approve(ids[0], "carol")
        try:
            for cmd in commands:
                run(svc, clock, plan, ids, cmd)
            with store.transaction() as s:
                for release in s.query(Release):
                    steps = len(resolved_of(release).steps)
                    assert invariant_violations(state_of(release), steps) == []
                    event(f"a release reached {Status(release.status).value}")
                    assert (release.frozen_at is None) == (release.status == "planned")
                seq, digest = audit.head(s)
                report = audit.verify(audit.rows(s), head_seq=seq, head_hash=digest)
                assert report.ok, report.finding
                assert report.last_seq == seq
        finally:
            store.close()


def status(svc: Releases, rid: str) -> Status:
    """Where ``rid`` stands, read alone: ``svc.get``'s whole view (its events, gates, checks) cost
    11 ms where this costs well under one, and was an eighth of every example's time."""
    with svc.store.transaction() as s:
        return Status(s.execute(select(Release.status).where(Release.id == rid)).scalar_one())


def run(svc: Releases, clock: SimulatedClock, plan: object, ids: list[str], cmd: tuple[object, ...]) -> None:
    kind = cmd[0]
    if kind == "wait":
        clock.advance(float(cmd[1]))  # type: ignore[arg-type]
        return
    try:
        if kind == "create":
            ids.append(svc.create(plan, str(cmd[1])).id)  # type: ignore[arg-type]
            return
        if not ids:
            return
        rid = ids[int(cmd[1]) % len(ids)]  # type: ignore[call-overload]
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
            verdict = bool(cmd[4])
            external = {g: GateResult(g, verdict, "given") for g in (Gate.ANALYSIS, Gate.PROBES, Gate.REVERT_CONFIRMED)}
            svc.act(rid, cmd[2], str(cmd[3]), external)  # type: ignore[arg-type]
        elif kind == "prepare":
            for item in ("1", "2", "3"):
                svc.signoff(rid, item, "quinn")
            for check, name in (("tests", "unit"), ("load_test", "load_test")):
                if status(svc, rid) is Status.STAGING:
                    svc.record_check(rid, kind=check, name=name, passed=True, summary="s", evidence={}, actor="alice")
        elif kind == "advance":
            now = status(svc, rid)
            if now in FORWARD:
                passing = {g: GateResult(g, True, "given") for g in (Gate.ANALYSIS, Gate.PROBES, Gate.REVERT_CONFIRMED)}
                svc.act(rid, FORWARD[now], "shiprail:controller", passing)
        elif kind == "override":
            svc.override(rid, str(cmd[2]), str(cmd[3]))  # refused unless an act was refused first
        elif kind == "close_pm":
            svc.close_postmortem(rid, str(cmd[2]), "What we learned, written down in full.")
    except ShiprailError:
        pass  # refusals are expected; anything else is a bug
