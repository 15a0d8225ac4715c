"""The service layer on a real store (SQLite and PostgreSQL): approvals, freezing, overrides."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from shiprail import releases as releases_module
from shiprail.clock import SimulatedClock
from shiprail.domain.engine import GateResult, ReleaseState
from shiprail.domain.rollout import Progress
from shiprail.domain.states import Action, Gate, Status
from shiprail.errors import (
    BadInput,
    ContractFrozen,
    GateFailed,
    IllegalTransition,
    NotFound,
    OverrideRefused,
    PermissionDenied,
)
from shiprail.export import package
from shiprail.export.verify import verify_package
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.rollouts import save_progress
from tests.integration.test_retro_export import _fresh_manifest
from tests.support.overrides import override

PLAN = Path("releases/checkout-2.4.0.yaml")
REASON = "Carol is out sick; Bob reviewed the whole diff twice"


@pytest.fixture
def svc(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> Releases:
    monkeypatch.chdir(project)
    return Releases(store, SimulatedClock(), open_project(project).policy)


def create(svc: Releases) -> str:
    return svc.create(check_plan_file(PLAN), "alice").id


def chain_ok(svc: Releases) -> bool:
    with svc.store.transaction() as s:
        seq, digest = audit.head(s)
        return audit.verify(audit.rows(s), head_seq=seq, head_hash=digest).ok


def test_create_records_a_planned_release_and_an_audit_event(svc: Releases) -> None:
    rid = create(svc)
    view = svc.get(rid)
    assert (rid, view.status, view.risk, view.resolved.approvals_required) == ("checkout-2.4.0", "planned", "high", 2)
    assert create(svc) == "checkout-2.4.0-2"
    with svc.store.transaction() as s:
        kinds = [r.kind for r in audit.rows(s)]
    # Each waits for its approvals: news for a communication plan that names awaiting_approval.
    assert kinds == ["release.created", "approval.awaited", "release.created", "approval.awaited"]


def test_approvals_count_distinct_people_not_the_owner(svc: Releases) -> None:
    rid = create(svc)
    with pytest.raises(PermissionDenied, match=r"alice may not approve releases: that needs the role approver"):
        svc.approve(rid, "alice")
    svc.approve(rid, "bob")
    svc.approve(rid, "bob")
    with pytest.raises(GateFailed, match=r"gate approvals failed \(1 of 2 required approvals given\)"):
        svc.act(rid, Action.STAGE, "alice")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    view = svc.get(rid)
    assert view.status == "staging"
    assert view.frozen_at is not None
    assert [(g["gate"], g["verdict"]) for g in view.gates] == [("approvals", "fail"), ("approvals", "pass")]
    assert chain_ok(svc)


def test_unknown_people_and_releases_are_refused(svc: Releases) -> None:
    rid = create(svc)
    with pytest.raises(NotFound, match=r"'mallory' is not a person in shiprail.yaml"):
        svc.approve(rid, "mallory")
    with pytest.raises(NotFound, match=r"no release 'nope'; recent releases: checkout-2.4.0"):
        svc.get("nope")


def test_owner_cannot_approve_even_as_approver(svc: Releases) -> None:
    rid = create(svc)
    svc.policy.people["alice"].roles.append("approver")
    with pytest.raises(PermissionDenied, match=r"alice owns this release and may not approve it"):
        svc.approve(rid, "alice")


def test_editing_the_plan_resets_approvals_and_is_refused_once_frozen(svc: Releases, project: Path) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    path = project / PLAN
    path.write_text(path.read_text().replace("min_samples: 200", "min_samples: 300"))
    with pytest.raises(
        ContractFrozen, match=r"changed since release checkout-2.4.0 was created; run `shiprail release update"
    ):
        svc.act(rid, Action.STAGE, "alice")
    svc.update_plan(rid, check_plan_file(PLAN), "alice")
    with pytest.raises(GateFailed, match=r"0 of 2 required approvals given"):
        svc.act(rid, Action.STAGE, "alice")
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    path.write_text(path.read_text().replace("min_samples: 300", "min_samples: 50"))
    with pytest.raises(ContractFrozen, match=r"froze its contract at .*; its plan can no longer change"):
        svc.update_plan(rid, check_plan_file(PLAN), "alice")
    assert svc.get(rid).resolved.contract.triggers[0].min_samples == 300


def test_an_approval_by_someone_the_plan_named_its_owner_since_does_not_count(svc: Releases, project: Path) -> None:
    # bob approved, was named the owner, and the plan was put back as it was: his approval of that
    # text counted again, on a release he owned and may no longer approve.
    rid = create(svc)
    svc.approve(rid, "bob")
    path = project / PLAN
    text = path.read_text()
    path.write_text(text.replace("owner: alice", "owner: bob"))
    svc.update_plan(rid, check_plan_file(PLAN), "alice")
    path.write_text(text)
    svc.update_plan(rid, check_plan_file(PLAN), "bob")
    svc.approve(rid, "carol")
    with pytest.raises(GateFailed) as err:
        svc.act(rid, Action.STAGE, "alice")
    assert str(err.value).startswith(
        "release checkout-2.4.0 cannot stage: gate approvals failed (1 of 2 required approvals given (bob owned this "
        "release: their approval does not count))"
    )
    assert svc.get(rid).status == "planned"
    svc.policy.people["quinn"].roles.append("approver")
    svc.approve(rid, "quinn")
    svc.act(rid, Action.STAGE, "alice")
    assert svc.get(rid).gates[-1]["reason"] == "2 of 2 approvals"
    assert chain_ok(svc)


def test_who_created_a_release_or_changed_what_it_runs_may_not_approve_it(svc: Releases, project: Path) -> None:
    """GitLab's "prevent approval by author" and "by users who add commits": dana, an executive (who
    may approve), changed the plan with `release update` and then approved it; carol created a release
    alice owns and approved it. Neither may; nor does an approval count that dana gave before her
    change once the plan is put back as she approved it."""
    rid = create(svc)
    svc.approve(rid, "dana")
    path = project / PLAN
    text = path.read_text()
    path.write_text(text.replace("min_samples: 200", "min_samples: 300"))
    svc.update_plan(rid, check_plan_file(PLAN), "dana")
    with pytest.raises(PermissionDenied) as err:
        svc.approve(rid, "dana")
    assert str(err.value) == (
        "dana changed what this release runs (release update) and may not approve it; ask someone else"
    )
    path.write_text(text)
    svc.update_plan(rid, check_plan_file(PLAN), "alice")
    svc.approve(rid, "bob")
    assert [(a["by"], a["current"], a["by_author"]) for a in svc.get(rid).approvals] == [
        ("dana", True, True),
        ("bob", True, False),
    ]
    with pytest.raises(GateFailed) as failed:
        svc.act(rid, Action.STAGE, "alice")
    assert str(failed.value).startswith(
        "release checkout-2.4.0 cannot stage: gate approvals failed (1 of 2 required approvals given (dana created "
        "or changed this release: their approval does not count))"
    )
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    # An update that changes nothing the release runs makes nobody an author.
    other = svc.create(check_plan_file(PLAN), "carol").id
    with pytest.raises(PermissionDenied, match=r"^carol created this release and may not approve it; ask someone"):
        svc.approve(other, "carol")
    svc.update_plan(other, check_plan_file(PLAN), "dana")
    svc.approve(other, "dana")
    assert [a["by"] for a in svc.get(other).approvals] == ["dana"]


def test_an_approver_revokes_their_approval_until_the_release_enters_stage(svc: Releases, tmp_path: Path) -> None:
    """GitLab lets an approver revoke, Octopus a reviewer reject: shiprail had no way back from an approval."""
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    approved_at = svc.get(rid).approvals[1]["at"]
    svc.clock.advance(60)  # type: ignore[attr-defined]
    view = svc.revoke_approval(rid, "carol", "found a missing index in the migration")
    assert [a["by"] for a in view.approvals] == ["bob"]
    with svc.store.transaction() as s:
        revoked, awaited = list(audit.rows(s))[-2:]
        # Short of approvals again: news for those who approve (``approval.awaited``).
        assert (awaited.kind, json.loads(awaited.payload)["needed"]) == ("approval.awaited", 1)
        assert (revoked.actor, revoked.kind, json.loads(revoked.payload)) == (
            "carol",
            "approval.revoked",
            {
                "reason": "found a missing index in the migration",
                "revoked": [
                    {"plan_hash": view.plan_hash, "resolved_hash": view.resolved_hash, "approved_at": approved_at}
                ],
                "revoked_at": svc.clock.now().isoformat(),
            },
        )
    with pytest.raises(GateFailed, match=r"gate approvals failed \(1 of 2 required approvals given\)"):
        svc.act(rid, Action.STAGE, "alice")
    with pytest.raises(NotFound) as none:
        svc.revoke_approval(rid, "carol")
    assert str(none.value) == "carol has not approved release checkout-2.4.0: there is no approval to revoke"
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    with svc.store.transaction() as s:
        events = len(list(audit.rows(s)))
    with pytest.raises(IllegalTransition) as late:
        svc.revoke_approval(rid, "bob")
    assert str(late.value) == (
        "release checkout-2.4.0 is staging: its approvals gate was judged when it entered Stage, so an approval can "
        "no longer be revoked; nothing was changed; to stop the release, roll it back (`shiprail release rollback "
        "checkout-2.4.0`)"
    )
    with svc.store.transaction() as s:
        assert len(list(audit.rows(s))) == events
    assert [a["by"] for a in svc.get(rid).approvals] == ["bob", "carol"]
    # The package of a release with a revoked approval holds: the revoked one is in its audit trail only.
    out = tmp_path / "pkg"
    package.write_package(svc.store, svc.clock.now(), rid, out)
    assert (verify_package(out).ok, verify_package(out).problems) == (True, [])
    assert [a["by"] for a in json.loads((out / "gates.json").read_text())["approvals"]] == ["bob", "carol"]


def test_a_qa_revokes_their_sign_off_until_the_rollout_starts(svc: Releases, tmp_path: Path) -> None:
    rid = _staged_signed_off_by_quinn(svc)
    svc.policy.people["carol"].roles.append("qa")
    with pytest.raises(NotFound) as other:
        svc.revoke_signoff(rid, "2", "carol")
    assert str(other.value) == (
        "carol has not signed off 'Pay with a new card and save it' of release checkout-2.4.0 (quinn did, who alone "
        "may revoke it): there is no sign-off of theirs to revoke"
    )
    view = svc.revoke_signoff(rid, "2", "quinn", "the saved card was not shown after the retry")
    assert [x["item"] for x in view.signoffs] == [
        "Pay with a saved card",
        "A declined saved card shows the retry screen",
    ]
    with pytest.raises(GateFailed, match=r"gate qa failed \(1 of 3 QA items not signed off: 'Pay with a new card"):
        svc.act(rid, Action.START, "alice")
    svc.signoff(rid, "2", "quinn")
    svc.act(rid, Action.START, "alice")
    with pytest.raises(IllegalTransition) as late:
        svc.revoke_signoff(rid, "1", "quinn")
    assert str(late.value).startswith(
        "release checkout-2.4.0 is rolling_out (step 1): its qa gate was judged when its rollout started, so a QA "
        "sign-off can no longer be revoked; nothing was changed"
    )
    out = tmp_path / "pkg"
    package.write_package(svc.store, svc.clock.now(), rid, out)
    assert (verify_package(out).ok, verify_package(out).problems) == (True, [])


def test_a_sign_off_of_a_release_paused_in_stage_is_not_said_judged(svc: Releases) -> None:
    # Paused in Stage, its rollout never started and its qa gate was never judged: the refusal said
    # "its qa gate was judged when its rollout started" and sent people to roll back a release that
    # a resume brings back to where the sign-off can be revoked.
    rid = _staged_signed_off_by_quinn(svc)
    svc.act(rid, Action.PAUSE, "alice")
    with pytest.raises(IllegalTransition) as paused:
        svc.revoke_signoff(rid, "2", "quinn")
    assert str(paused.value) == (
        "release checkout-2.4.0 is paused (from staging): a QA sign-off is revoked while it is planned or staging; "
        "nothing was changed; resume it first (`shiprail release resume checkout-2.4.0`), then revoke it"
    )
    assert len(svc.get(rid).signoffs) == 3


def test_approvals_are_of_the_release_as_it_runs_not_only_of_the_plan_file(svc: Releases, project: Path) -> None:
    # The plan file stays the same; the service file's error_rate, which the contract's errors
    # trigger watches, now counts only 503s: a looser contract than bob and carol approved.
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    before = svc.get(rid)
    assert [(a["by"], a["current"]) for a in before.approvals] == [("bob", True), ("carol", True)]

    unchanged = svc.update_plan(rid, check_plan_file(PLAN), "alice")  # nothing changed: they still count
    assert (unchanged.plan_changed, unchanged.changed, unchanged.no_longer_counting) == (False, [], [])
    assert unchanged.view.resolved_hash == before.resolved_hash

    service = project / "services" / "checkout.yaml"
    service.write_text(service.read_text().replace('code=~"5.."', 'code="503"'))
    done = svc.update_plan(rid, check_plan_file(PLAN), "alice")
    assert (done.plan_changed, done.changed, done.no_longer_counting) == (False, ["target"], ["bob", "carol"])
    assert done.view.plan_hash == before.plan_hash
    assert done.view.resolved_hash != before.resolved_hash
    assert [(a["by"], a["current"]) for a in done.view.approvals] == [("bob", False), ("carol", False)]
    with pytest.raises(GateFailed) as refused:
        svc.act(rid, Action.STAGE, "alice")
    assert str(refused.value) == (
        "release checkout-2.4.0 cannot stage: gate approvals failed (0 of 2 required approvals given); fix it and "
        "try again, or someone with the role executive may pass it with `shiprail release override checkout-2.4.0 "
        "--at planned --gate approvals --reason ...` (failed: approvals)"
    )

    # shiprail.yaml analyses every 5 minutes instead of every minute: asked again too.
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text().replace("analysis_interval: 1m", "analysis_interval: 5m"))
    done = svc.update_plan(rid, check_plan_file(PLAN), "alice")
    assert (done.changed, done.no_longer_counting) == (["analysis_interval"], ["bob", "carol"])
    with pytest.raises(GateFailed, match=r"gate approvals failed \(0 of 2 required approvals given\)"):
        svc.act(rid, Action.STAGE, "alice")

    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    view = svc.get(rid)
    assert [(a["by"], a["current"]) for a in view.approvals] == [
        ("bob", False),
        ("carol", False),
        ("bob", False),
        ("carol", False),
        ("bob", True),
        ("carol", True),
    ]
    assert {a["resolved_hash"] for a in view.approvals if a["current"]} == {view.resolved_hash}
    with svc.store.transaction() as s:
        events = [(r.kind, json.loads(r.payload)) for r in audit.rows(s) if r.kind == "plan.updated"]
    assert events[-1][1]["old_resolved_hash"] != events[-1][1]["resolved_hash"] == view.resolved_hash
    assert chain_ok(svc)


def test_approvals_of_the_release_as_it_was_count_again_when_an_edit_is_reverted(svc: Releases, project: Path) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    service = project / "services" / "checkout.yaml"
    text = service.read_text()
    service.write_text(text.replace('code=~"5.."', 'code="503"'))
    svc.update_plan(rid, check_plan_file(PLAN), "alice")
    service.write_text(text)
    done = svc.update_plan(rid, check_plan_file(PLAN), "alice")
    assert (done.changed, done.no_longer_counting, done.counting_again) == (["target"], [], ["bob", "carol"])
    assert [(a["by"], a["current"]) for a in done.view.approvals] == [("bob", True), ("carol", True)]
    svc.act(rid, Action.STAGE, "alice")
    assert svc.get(rid).gates[-1]["reason"] == "2 of 2 approvals"


def test_two_overrides_at_once_on_one_service_open_one_post_mortem(svc: Releases) -> None:
    """Each override locks only its own release: the open post-mortem rule must still hold between them."""
    for trial in range(5):
        ids = []
        for side in "ab":
            plan = PLAN.with_name(f"checkout-{trial}{side}.yaml")
            plan.write_text(PLAN.read_text().replace('version: "2.4.0"', f'version: "2.4.{trial}{side}"'))
            ids.append(svc.create(check_plan_file(plan), "alice").id)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def attempt(rid: str, barrier: threading.Barrier, outcomes: list[str]) -> None:
            barrier.wait()
            try:
                override(svc, rid, "dana", REASON)
                outcomes.append("granted")
            except OverrideRefused:
                outcomes.append("refused")

        threads = [threading.Thread(target=attempt, args=(rid, barrier, outcomes)) for rid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["granted", "refused"], f"trial {trial}"
        [done] = [rid for rid in ids if svc.get(rid).postmortems]
        svc.close_postmortem(done, "dana", "Holiday rota needs two approvers.")
    assert chain_ok(svc)


def test_override_rules(svc: Releases) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    with pytest.raises(PermissionDenied, match=r"bob may not override a gate: that needs the role executive"):
        override(svc, rid, "bob", REASON)
    with pytest.raises(BadInput, match=r"--reason must explain the override in at least 15 characters"):
        override(svc, rid, "dana", "because")
    with pytest.raises(OverrideRefused, match=r"gate 'qa' has not failed; the failed gates are approvals"):
        override(svc, rid, "dana", REASON, ["qa"])
    override(svc, rid, "dana", REASON, ["approvals", "approvals"])
    view = svc.get(rid)
    assert view.status == "staging"
    assert [(o["by"], o["gates"]) for o in view.overrides] == [("dana", ["approvals"])]
    assert [p["status"] for p in view.postmortems] == ["open"]
    assert view.gates[-1]["verdict"] == "overridden"


def test_an_override_passes_only_gates_that_refused_the_action_since_the_release_entered_its_state(
    svc: Releases,
) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    # Nobody has tried to stage it: its approvals gate has not failed yet.
    with pytest.raises(OverrideRefused) as refused_stage:
        svc.override(rid, "dana", REASON)
    assert str(refused_stage.value) == (
        f"release {rid} has not been refused stage since it became planned, so no gate has failed yet: run "
        f"`shiprail release stage {rid}` first and override what it refuses; or name the gates to pass with "
        "--gate (failing now: approvals)"
    )
    assert (svc.get(rid).overrides, svc.get(rid).gates) == ([], [])
    # The race it closes: an override meant for Stage's approvals, run just after another person's
    # stage went through, must not start the rollout past the Start gates nobody has tried.
    with pytest.raises(GateFailed):
        svc.act(rid, Action.STAGE, "alice")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    with pytest.raises(OverrideRefused, match=rf"^release {rid} has not been refused start since it became staging"):
        svc.override(rid, "dana", REASON)
    assert svc.get(rid).status == "staging"
    # Refused, it may be overridden; and naming the gates is enough without a refusal.
    with pytest.raises(GateFailed):
        svc.act(rid, Action.START, "alice")
    assert svc.override(rid, "dana", REASON).allowed
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    other = create(svc)
    assert svc.override(other, "dana", REASON, ["approvals"]).allowed


def test_an_override_of_what_a_person_saw_is_refused_once_the_release_moved_on(svc: Releases) -> None:
    """The race: dana saw Stage refused; before her override lands, the release is staged and
    someone's start is refused there. Her override carries what she saw and passes nothing."""
    rid = create(svc)
    svc.approve(rid, "bob")
    with pytest.raises(GateFailed) as seen_by_dana:
        svc.act(rid, Action.STAGE, "alice")
    assert f"`shiprail release override {rid} --at planned --gate approvals --reason ...`" in seen_by_dana.value.message
    other = Releases(svc.store, svc.clock, svc.policy)  # another person, on the same store
    other.approve(rid, "carol")
    svc.clock.advance(60)
    other.act(rid, Action.STAGE, "alice")
    with pytest.raises(GateFailed):
        other.act(rid, Action.START, "alice")
    before = (svc.get(rid).gates, chain_length(svc))
    with pytest.raises(OverrideRefused) as refused:
        svc.override(rid, "dana", REASON, seen=ReleaseState(Status.PLANNED))
    assert str(refused.value) == (
        f"release {rid} is staging now, not planned as when you looked: alice staged it at 2026-01-01 00:01:00 UTC "
        f"(planned → staging); nothing was overridden. Look again (`shiprail release show {rid}`) and override "
        "what fails there"
    )
    view = svc.get(rid)
    assert (view.status, view.overrides, view.postmortems) == ("staging", [], [])
    assert (view.gates, chain_length(svc)) == before
    # What she sees now, she may pass; with --gate too.
    assert svc.override(rid, "dana", REASON, seen=ReleaseState(Status.STAGING)).allowed
    assert svc.get(rid).status == "rolling_out"


def test_the_override_a_refusal_suggests_passes_only_the_gates_it_named(svc: Releases) -> None:
    """dana saw Start refused on the load test alone and runs the override it suggests; meanwhile a new
    test run failed and someone's start was refused on the tests too, in the same state. The
    override she copied must not pass the tests, which nobody showed her."""
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    for item in ("1", "2", "3"):
        svc.signoff(rid, item, "quinn")
    svc.record_check(rid, kind="tests", name="unit", passed=True, summary="12 passed", evidence={}, actor="alice")
    svc.record_check(
        rid, kind="load_test", name="load_test", passed=False, summary="p95 450 ms", evidence={}, actor="alice"
    )
    with pytest.raises(GateFailed) as seen_by_dana:
        svc.act(rid, Action.START, "alice")
    suggested = f"`shiprail release override {rid} --at staging --gate load_test --reason ...` (failed: load_test)"
    assert seen_by_dana.value.message.endswith(suggested)
    svc.record_check(rid, kind="tests", name="unit", passed=False, summary="3 failed", evidence={}, actor="alice")
    with pytest.raises(GateFailed):
        svc.act(rid, Action.START, "alice")
    before = (svc.get(rid).gates, chain_length(svc))
    with pytest.raises(OverrideRefused) as refused:
        svc.override(rid, "dana", REASON, ["load_test"], seen=ReleaseState(Status.STAGING))
    assert str(refused.value) == (
        "gate 'tests' failed too; name every failed gate with --gate (tests, load_test), or leave --gate out to "
        "pass them all"
    )
    assert (svc.get(rid).status, svc.get(rid).overrides) == ("staging", [])
    assert (svc.get(rid).gates, chain_length(svc)) == before


def test_an_override_at_a_step_the_release_left_is_refused_even_with_the_gates_named(svc: Releases) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    with pytest.raises(OverrideRefused, match=rf"^release {rid} is planned now, not rolling_out \(step 2\) as "):
        svc.override(rid, "dana", REASON, ["approvals"], seen=ReleaseState(Status.ROLLING_OUT, step=1))
    assert svc.get(rid).overrides == []
    assert svc.override(rid, "dana", REASON, ["approvals"], seen=ReleaseState(Status.PLANNED)).allowed


def test_two_executives_overriding_one_refusal_at_once_pass_it_once(svc: Releases) -> None:
    """Both saw Stage refused: the second override, under the row lock after the first, finds the
    release staged and passes nothing of Start's."""
    svc.policy.people["carol"].roles.append("executive")
    rid = create(svc)
    svc.approve(rid, "bob")
    with pytest.raises(GateFailed):
        svc.act(rid, Action.STAGE, "alice")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def attempt(who: str) -> None:
        barrier.wait()
        try:
            svc.override(rid, who, REASON, seen=ReleaseState(Status.PLANNED))
            outcomes[who] = "granted"
        except OverrideRefused as exc:
            outcomes[who] = str(exc)

    threads = [threading.Thread(target=attempt, args=(who,)) for who in ("dana", "carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [winner] = [who for who, said in outcomes.items() if said == "granted"]
    [loser] = [who for who in outcomes if who != winner]
    assert outcomes[loser] == (
        f"release {rid} is staging now, not planned as when you looked: {winner} staged it at 2026-01-01 00:00:00 "
        f"UTC (planned → staging); nothing was overridden. Look again (`shiprail release show {rid}`) and override "
        "what fails there"
    )
    view = svc.get(rid)
    assert (view.status, [o["by"] for o in view.overrides], len(view.postmortems)) == ("staging", [winner], 1)
    assert chain_ok(svc)


def chain_length(svc: Releases) -> int:
    with svc.store.transaction() as s:
        return len(list(audit.rows(s)))


def test_the_owner_cannot_override_even_as_executive(svc: Releases) -> None:
    rid = create(svc)
    svc.policy.people["alice"].roles.append("executive")
    with pytest.raises(PermissionDenied, match=r"alice owns this release and may not override its gates"):
        override(svc, rid, "alice", REASON)


def test_an_open_postmortem_blocks_the_next_override_on_the_service(svc: Releases) -> None:
    first, second = create(svc), create(svc)
    override(svc, first, "dana", REASON)
    with pytest.raises(OverrideRefused) as refused:
        override(svc, second, "dana", REASON)
    # What to do, to the letter: the release to name, and the --summary closing it takes.
    assert str(refused.value) == (
        "this service has an open post-mortem from an earlier override (post-mortem #1 on checkout-2.4.0); close it "
        "with `shiprail release postmortem checkout-2.4.0 --done --summary ...` before another override"
    )
    with pytest.raises(BadInput, match=r"--summary must say what was learned"):
        svc.close_postmortem(first, "dana", "meh")
    closed = svc.close_postmortem(first, "dana", "Two approvers must be on rota in holiday weeks.")
    assert closed["status"] == "done"
    override(svc, second, "dana", REASON)
    assert svc.get(second).status == "staging"
    with svc.store.transaction() as s:
        kinds = [r.kind for r in audit.rows(s)]
    assert kinds.count("override.granted") == 2
    assert kinds.count("postmortem.opened") == 2
    assert kinds.count("postmortem.closed") == 1
    assert chain_ok(svc)


def test_stage_gates_qa_tests_and_load_test(svc: Releases) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    with pytest.raises(GateFailed) as err:
        svc.act(rid, Action.START, "alice")
    assert err.value.gates == ["tests", "qa", "load_test"]
    with pytest.raises(PermissionDenied, match=r"bob may not sign off QA items"):
        svc.signoff(rid, "1", "bob")
    for item in ("1", "2", "A declined saved card shows the retry screen"):
        svc.signoff(rid, item, "quinn")
    with pytest.raises(NotFound, match=r"'9' is not an item of the QA checklist"):
        svc.signoff(rid, "9", "quinn")
    svc.record_check(rid, kind="tests", name="unit", passed=True, summary="12 passed", evidence={}, actor="alice")
    svc.record_check(
        rid, kind="load_test", name="load_test", passed=False, summary="p95 450 ms > 300 ms", evidence={}, actor="alice"
    )
    with pytest.raises(GateFailed, match=r"gate load_test failed \(the load test failed: p95 450 ms > 300 ms\)"):
        svc.act(rid, Action.START, "alice")
    svc.record_check(
        rid, kind="load_test", name="load_test", passed=True, summary="p95 210 ms", evidence={}, actor="alice"
    )
    svc.act(rid, Action.START, "alice")
    assert svc.get(rid).state == "rolling_out (step 1)"


def test_qa_signed_off_by_someone_later_named_the_owner_does_not_pass_the_qa_gate(svc: Releases, project: Path) -> None:
    # A sign-off outlives `release update`: quinn signed off every item, the plan then named quinn
    # its owner, and the QA gate passed on the owner's own sign-offs.
    rid = create(svc)
    for item in ("1", "2", "3"):
        svc.signoff(rid, item, "quinn")
    path = project / PLAN
    path.write_text(path.read_text().replace("owner: alice", "owner: quinn"))
    svc.update_plan(rid, check_plan_file(PLAN), "alice")
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "quinn")
    svc.record_check(rid, kind="tests", name="unit", passed=True, summary="12 passed", evidence={}, actor="quinn")
    svc.record_check(rid, kind="load_test", name="load_test", passed=True, summary="ok", evidence={}, actor="quinn")
    with pytest.raises(GateFailed) as err:
        svc.act(rid, Action.START, "quinn")
    assert err.value.gates == ["qa"]
    assert str(err.value).startswith(
        "release checkout-2.4.0 cannot start: gate qa failed (3 of 3 QA items not signed off: 'Pay with a saved card', "
        "'Pay with a new card and save it', 'A declined saved card shows the retry screen' "
        "(all 3 signed off by quinn, who owns the release: another qa must sign them off))"
    )
    svc.policy.people["carol"].roles.append("qa")
    for item in ("1", "2", "3"):
        svc.signoff(rid, item, "carol")
    assert {x["by"] for x in svc.get(rid).signoffs} == {"carol"}
    svc.act(rid, Action.START, "quinn")
    assert svc.get(rid).state == "rolling_out (step 1)"
    with svc.store.transaction() as s:
        signed = [(r.actor, r.payload) for r in audit.rows(s) if r.kind == "qa.signed_off"]
    assert [actor for actor, _ in signed] == ["quinn"] * 3 + ["carol"] * 3
    last = svc.get(rid).signoffs[-1]
    assert json.loads(signed[-1][1]) == {
        "item": "A declined saved card shows the retry screen",
        "replaced": "quinn",
        "signed_off_at": last["at"],  # the row's time, as it keeps it
    }
    assert chain_ok(svc)


def _staged_signed_off_by_quinn(svc: Releases) -> str:
    """A release quinn signed off every QA item of, approved, staged, its tests and load test passed."""
    rid = create(svc)
    for item in ("1", "2", "3"):
        svc.signoff(rid, item, "quinn")
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    svc.record_check(rid, kind="tests", name="unit", passed=True, summary="12 passed", evidence={}, actor="alice")
    svc.record_check(rid, kind="load_test", name="load_test", passed=True, summary="ok", evidence={}, actor="alice")
    return rid


def test_qa_signed_off_by_someone_who_lost_the_qa_role_does_not_pass_the_qa_gate(svc: Releases) -> None:
    # quinn signed off every item, then left QA (or shiprail.yaml): the rollout started on them.
    rid = _staged_signed_off_by_quinn(svc)
    svc.policy.people["quinn"].roles[:] = ["approver"]
    assert [x["lapsed"] for x in svc.get(rid).signoffs] == [True, True, True]
    with pytest.raises(GateFailed) as err:
        svc.act(rid, Action.START, "alice")
    assert err.value.gates == ["qa"]
    assert str(err.value).startswith(
        "release checkout-2.4.0 cannot start: gate qa failed (3 of 3 QA items not signed off: 'Pay with a saved card', "
        "'Pay with a new card and save it', 'A declined saved card shows the retry screen' "
        "(all 3 signed off by quinn, who no longer holds the role qa in shiprail.yaml: another qa must sign them off))"
    )
    svc.policy.people["carol"].roles.append("qa")
    for item in ("1", "2", "3"):
        svc.signoff(rid, item, "carol")
    assert [(x["by"], x["lapsed"]) for x in svc.get(rid).signoffs] == [("carol", False)] * 3
    svc.act(rid, Action.START, "alice")
    assert svc.get(rid).state == "rolling_out (step 1)"
    with svc.store.transaction() as s:
        signed = [json.loads(r.payload) for r in audit.rows(s) if r.kind == "qa.signed_off"]
    assert signed[-1] == {
        "item": "A declined saved card shows the retry screen",
        "replaced": "quinn",
        "signed_off_at": svc.get(rid).signoffs[-1]["at"],  # the row's time, as it keeps it
    }
    assert chain_ok(svc)


def test_promote_waits_for_the_bake_and_the_analysis(svc: Releases) -> None:
    rid = create(svc)
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    override(svc, rid, "dana", REASON)  # tests, QA, load test
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    ok = {Gate.ANALYSIS: GateResult(Gate.ANALYSIS, True, "every trigger passes")}
    with pytest.raises(GateFailed, match=r"gate bake failed \(1% has 30m of its 30m bake left\)"):
        svc.act(rid, Action.PROMOTE, "shiprail:controller", ok)
    # Time alone bakes nothing: only intervals under watch with every trigger passing count.
    clock.advance(1800)
    with pytest.raises(GateFailed, match=r"gate bake failed \(1% has 30m of its 30m bake left\)"):
        svc.act(rid, Action.PROMOTE, "shiprail:controller", ok)
    with svc.store.transaction() as s:
        save_progress(s, rid, Progress(applied_weight=1, baked_s=1800), clock.now())
    with pytest.raises(GateFailed, match=r"gate analysis failed \(no analysis of the contract at this step yet\)"):
        svc.act(rid, Action.PROMOTE, "shiprail:controller")
    svc.act(rid, Action.PROMOTE, "shiprail:controller", ok)
    assert svc.get(rid).weight == 10
    svc.act(rid, Action.PAUSE, "bob")
    with pytest.raises(IllegalTransition, match=r"cannot promote a release that is paused"):
        svc.act(rid, Action.PROMOTE, "shiprail:controller", ok)
    svc.act(rid, Action.RESUME, "bob")
    svc.act(rid, Action.ROLLBACK, "bob", reason="the pager went off")
    with pytest.raises(GateFailed, match=r"the router has not confirmed weight 0 yet"):
        svc.act(rid, Action.FINISH_ROLLBACK, "shiprail:controller")
    svc.act(
        rid,
        Action.FINISH_ROLLBACK,
        "shiprail:controller",
        {Gate.REVERT_CONFIRMED: GateResult(Gate.REVERT_CONFIRMED, True, "weight 0 confirmed")},
    )
    view = svc.get(rid)
    assert view.status == "rolled_back"
    assert [(r["cause"], r["reason"], r["initiated_by"]) for r in view.rollbacks] == [
        ("manual", "the pager went off", "bob")
    ]
    assert chain_ok(svc)


def test_an_override_of_a_paused_release_says_to_resume_it_and_records_nothing(svc: Releases) -> None:
    rid = create(svc)
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    with pytest.raises(GateFailed):
        svc.act(rid, Action.START, "alice")
    svc.act(rid, Action.PAUSE, "bob")
    before = (svc.get(rid).gates, chain_length(svc))
    with pytest.raises(IllegalTransition) as refused:
        svc.override(rid, "dana", REASON)
    assert str(refused.value) == (
        f"release {rid} is paused (from staging): a paused release takes no step forward, so there is no gate to "
        f"override; resume it first (`shiprail release resume {rid}`), then override what its start refused"
    )
    assert (svc.get(rid).gates, chain_length(svc)) == before
    # Resumed, the refusal seen before the pause still stands: the override passes it.
    svc.act(rid, Action.RESUME, "bob")
    assert svc.override(rid, "dana", REASON).allowed
    assert svc.get(rid).status == "rolling_out"


def test_callers_cannot_hand_in_verdicts_for_gates_the_store_judges(svc: Releases) -> None:
    rid = create(svc)
    forged = {Gate.APPROVALS: GateResult(Gate.APPROVALS, True, "trust me")}
    with pytest.raises(GateFailed, match=r"0 of 2 required approvals given"):
        svc.act(rid, Action.STAGE, "alice", forged)


def test_a_partial_override_is_refused_before_anything_is_recorded(svc: Releases) -> None:
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    before = len(svc.get(rid).gates)
    with pytest.raises(OverrideRefused, match=r"gate 'qa' failed too; name every failed gate with --gate"):
        svc.override(rid, "dana", REASON, ["tests"])  # gates named: no refused attempt needed
    assert len(svc.get(rid).gates) == before
    assert svc.get(rid).overrides == []


def test_closing_a_postmortem_needs_a_role(svc: Releases) -> None:
    rid = create(svc)
    override(svc, rid, "dana", REASON)
    with pytest.raises(PermissionDenied, match=r"quinn may not close a post-mortem: that needs the role releaser"):
        svc.close_postmortem(rid, "quinn", "What we learned, written down in full.")


def test_gate_failure_names_the_roles_that_may_override(svc: Releases) -> None:
    rid = create(svc)
    with pytest.raises(GateFailed) as err:
        svc.act(rid, Action.STAGE, "alice")
    assert err.value.message == (
        "release checkout-2.4.0 cannot stage: gate approvals failed (0 of 2 required approvals given); fix it and "
        "try again, or someone with the role executive may pass it with `shiprail release override checkout-2.4.0 "
        "--at planned --gate approvals --reason ...` (failed: approvals)"
    )


def test_the_plan_hash_is_the_files_sha256(svc: Releases, project: Path) -> None:
    import hashlib

    path = project / PLAN
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    rid = create(svc)
    assert svc.get(rid).plan_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_package_of_a_release_planned_from_a_crlf_file_verifies(
    svc: Releases, project: Path, tmp_path: Path
) -> None:
    """plan.yaml holds the stored text (line endings read as \n) while the plan hash is the file's
    bytes (\r\n): verify-package called the honest package's plan "changed outside the chain"."""
    path = project / PLAN
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    rid = create(svc)
    out = tmp_path / "pkg"
    package.write_package(svc.store, svc.clock.now(), rid, out)
    assert b"\r" not in (out / "plan.yaml").read_bytes()
    report = verify_package(out)
    assert (report.ok, report.problems) == (True, [])
    # The same text with another line changed still does not hold.
    plan = out / "plan.yaml"
    plan.write_text(plan.read_text().replace("min_samples: 200", "min_samples: 20"), encoding="utf-8")
    _fresh_manifest(out)
    recorded = svc.get(rid).plan_hash
    assert verify_package(out).problems == [
        "plan.yaml is not the plan text release.json describes",
        f"plan.yaml is not the plan the audit events record (plan_hash {recorded[:12]}…): "
        "the release's record was changed outside the chain",
    ]


def test_override_of_stage_also_refuses_an_edited_plan_file(svc: Releases, project: Path) -> None:
    rid = create(svc)
    path = project / PLAN
    path.write_text(path.read_text().replace("min_samples: 200", "min_samples: 20"))
    with pytest.raises(ContractFrozen, match=r"changed since release checkout-2.4.0 was created"):
        override(svc, rid, "dana", REASON)


def test_a_person_pausing_while_the_controller_records_a_weight_waits_instead_of_deadlocking(
    svc: Releases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller writes a rollout's progress, then its event (``Reconciler._confirmed``); a person's
    action writes its events, then the progress. Without one order the two transactions each held
    what the other wanted, and PostgreSQL aborted one with "deadlock detected"."""
    rid = create(svc)
    override(svc, rid, "dana", REASON)
    svc.close_postmortem(rid, "dana", "Holiday rota needs two approvers.")
    override(svc, rid, "dana", REASON)  # rolling out, step 1
    with svc.store.transaction() as s:
        save_progress(s, rid, Progress(applied_weight=0), svc.clock.now())
    progress_locked, act_at_progress = threading.Event(), threading.Event()
    failures: list[str] = []

    def controller() -> None:
        # What the controller does when the router confirms 1%: the progress row, then the event.
        try:
            with svc.store.transaction() as s:
                save_progress(s, rid, Progress(applied_weight=1), svc.clock.now())
                progress_locked.set()
                act_at_progress.wait(2)  # the pause has appended its events (it waits here, fixed)
                audit.append(
                    s,
                    at=svc.clock.now(),
                    actor="shiprail:controller",
                    kind="router.applied",
                    release_id=rid,
                    payload={"weight": 1},
                )
        except Exception as exc:
            failures.append(f"controller: {type(exc).__name__}: {exc}")

    real = releases_module.save_progress

    def pause_progress(*args: object, **kwargs: object) -> None:
        act_at_progress.set()
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(releases_module, "save_progress", pause_progress)
    thread = threading.Thread(target=controller)
    thread.start()
    assert progress_locked.wait(5)
    try:
        svc.act(rid, Action.PAUSE, "bob")
    except Exception as exc:
        failures.append(f"pause: {type(exc).__name__}: {exc}")
    thread.join(10)
    assert failures == []
    assert svc.get(rid).status == "paused"
    with svc.store.transaction() as s:
        kinds = [r.kind for r in audit.rows(s, rid)]
    assert kinds[-2:] == ["router.applied", "release.transitioned"]
    assert chain_ok(svc)


def test_two_creates_of_one_plan_at_once_get_two_ids(svc: Releases) -> None:
    """Both read the ids taken before either inserted: on PostgreSQL the second failed on the
    primary key (a traceback from `shiprail release create`) instead of taking the next id."""
    barrier = threading.Barrier(2)
    waited: set[int] = set()

    def meet_before_inserting(session: Session, *_: object) -> None:
        # The first flush of each create is its release row: both have read the taken ids by now.
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(2)  # the second create waits on the first's lock instead (fixed)

    ids: list[str] = []
    failures: list[str] = []

    def create_one() -> None:
        try:
            ids.append(create(svc))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")

    event.listen(Session, "before_flush", meet_before_inserting)
    try:
        threads = [threading.Thread(target=create_one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        event.remove(Session, "before_flush", meet_before_inserting)
    assert failures == []
    assert sorted(ids) == ["checkout-2.4.0", "checkout-2.4.0-2"]
    assert chain_ok(svc)


def with_erin_on_call_too(project: Path) -> Releases:
    """The example project with erin, who holds the role oncall, beside bob; its release commands."""
    policy = project / "shiprail.yaml"
    policy.write_text(policy.read_text().replace("people:\n", "people:\n  erin: {roles: [oncall]}\n"))
    store = Store(f"sqlite:///{project / 'handover.db'}")
    return Releases(store, SimulatedClock(), open_project(project).policy)


def staged(svc: Releases) -> str:
    """The example release, approved and staged: a handover needs the plan frozen."""
    rid = create(svc)
    svc.approve(rid, "bob")
    svc.approve(rid, "carol")
    svc.act(rid, Action.STAGE, "alice")
    return rid


def test_no_handover_before_stage_the_plan_names_who_is_on_call(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # While planned, `release update` may name another verify.on_call: a handover made before it
    # would outlive the plan that replaced its person.
    monkeypatch.chdir(project)
    svc = with_erin_on_call_too(project)
    rid = create(svc)
    with pytest.raises(IllegalTransition) as refused:
        svc.handover(rid, "erin", "bob")
    assert str(refused.value) == (
        f"release {rid} is planned: until it is staged, who is on call is its plan's verify.on_call (bob); change it "
        f"there and run `shiprail release update {rid} releases/checkout-2.4.0.yaml`"
    )
    assert handovers(svc, rid) == []


def handovers(svc: Releases, rid: str) -> list[tuple[str, str, dict[str, object]]]:
    with svc.store.transaction() as s:
        return [(r.actor, r.kind, json.loads(r.payload)) for r in audit.rows(s) if r.kind == "on_call.handed_over"]


def test_handover_by_the_person_on_call_the_owner_or_an_executive_to_someone_with_the_role(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    svc = with_erin_on_call_too(project)
    rid = staged(svc)
    view = svc.handover(rid, "erin", "bob", "my shift ends at six")
    assert (view.on_call, [(h["by"], h["from"], h["to"], h["reason"]) for h in view.handovers]) == (
        "erin",
        [("bob", "bob", "erin", "my shift ends at six")],
    )
    # bob is no longer on call: no longer his to hand over, nor quinn's (qa), nor carol's (approver).
    with pytest.raises(
        PermissionDenied,
        match=re.escape(
            f"bob may not hand over who is on call for {rid} (on call: erin, owner: alice): that needs the role "
            "executive in shiprail.yaml, and bob has approver, oncall"
        ),
    ):
        svc.handover(rid, "bob", "bob")
    assert svc.handover(rid, "bob", "alice").on_call == "bob"  # the owner
    assert svc.handover(rid, "erin", "dana").on_call == "erin"  # an executive
    assert handovers(svc, rid) == [
        ("bob", "on_call.handed_over", {"from": "bob", "to": "erin", "reason": "my shift ends at six"}),
        ("alice", "on_call.handed_over", {"from": "erin", "to": "bob", "reason": None}),
        ("dana", "on_call.handed_over", {"from": "bob", "to": "erin", "reason": None}),
    ]
    assert chain_ok(svc)


def test_a_refused_handover_never_suggests_the_person_already_on_call(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hint listed everyone with the role oncall, bob among them while bob was on call: "hand
    # over to someone who has it (bob, erin)", and "(bob)" when he alone had the role.
    monkeypatch.chdir(project)
    svc = Releases(Store(f"sqlite:///{project / 'alone.db'}"), SimulatedClock(), open_project(project).policy)
    rid = staged(svc)
    with pytest.raises(BadInput) as refused:
        svc.handover(rid, "carol", "bob")
    assert str(refused.value) == (
        "--to carol cannot be on call: that needs the role oncall in shiprail.yaml, and carol has approver; "
        "give carol the role, or give that role to someone besides bob first"
    )
    with pytest.raises(BadInput) as refused:
        svc.handover(rid, "zed", "bob")
    assert str(refused.value) == (
        "--to 'zed' is not a person in shiprail.yaml; add them under people with the role oncall, or give that "
        "role to someone besides bob first"
    )
    # With erin beside him, each of them is offered the other.
    svc = with_erin_on_call_too(project)
    rid = staged(svc)
    hint = "give carol the role, or hand over to someone who has it ({})"
    with pytest.raises(BadInput, match=re.escape(hint.format("erin"))):
        svc.handover(rid, "carol", "bob")
    svc.handover(rid, "erin", "bob")
    with pytest.raises(BadInput, match=re.escape(hint.format("bob"))):
        svc.handover(rid, "carol", "erin")
    assert [h[2]["to"] for h in handovers(svc, rid)] == ["erin"]


def test_a_handover_to_someone_who_cannot_be_on_call_or_of_an_ended_release_changes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    svc = with_erin_on_call_too(project)
    rid = staged(svc)
    refusals: list[tuple[type[Exception], str, str, str]] = [
        (
            BadInput,
            "zed",
            "bob",
            "--to 'zed' is not a person in shiprail.yaml; add them under people with the role oncall, or hand over "
            "to someone who has it (erin)",
        ),
        (
            BadInput,
            "carol",
            "bob",
            "--to carol cannot be on call: that needs the role oncall in shiprail.yaml, and carol has approver; "
            "give carol the role, or hand over to someone who has it (erin)",
        ),
        (BadInput, "bob", "bob", f"--to bob: bob is already on call for {rid}; name who takes over"),
        (
            PermissionDenied,
            "erin",
            "quinn",
            f"quinn may not hand over who is on call for {rid} (on call: bob, owner: alice): that needs the role "
            "executive in shiprail.yaml, and quinn has qa",
        ),
        (NotFound, "erin", "zed", "'zed' is not a person in shiprail.yaml; add them under people, or act as someone"),
    ]
    for kind, to, by, message in refusals:
        with pytest.raises(kind) as refused:
            svc.handover(rid, to, by)
        assert str(refused.value).startswith(message), str(refused.value)
    assert handovers(svc, rid) == []
    # Ended: rolled back.
    override(svc, rid, "dana", REASON)
    svc.act(rid, Action.ROLLBACK, "bob", reason="the pager went off")
    assert svc.handover(rid, "erin", "bob").on_call == "erin"  # while rolling back: still someone's
    svc.act(
        rid,
        Action.FINISH_ROLLBACK,
        "shiprail:controller",
        {Gate.REVERT_CONFIRMED: GateResult(Gate.REVERT_CONFIRMED, True, "weight 0 confirmed")},
    )
    with pytest.raises(IllegalTransition) as ended:
        svc.handover(rid, "bob", "erin")
    assert str(ended.value) == f"release {rid} is rolled_back: it has ended, and nobody is on call for it any more"
    assert [h[2]["to"] for h in handovers(svc, rid)] == ["erin"]


def test_who_changed_what_a_release_runs_may_not_override_its_approvals_gate(svc: Releases, project: Path) -> None:
    """dana, an executive, changed the plan with `release update`; barred from approving it, she passed its
    approvals gate by override instead: a review of her own change by herself."""
    rid = create(svc)
    path = project / PLAN
    path.write_text(path.read_text().replace("min_samples: 200", "min_samples: 300"))
    svc.update_plan(rid, check_plan_file(PLAN), "dana")
    with pytest.raises(GateFailed):
        svc.act(rid, Action.STAGE, "alice")
    with svc.store.transaction() as s:
        events = len(list(audit.rows(s)))
    with pytest.raises(PermissionDenied) as err:
        svc.override(rid, "dana", REASON)
    assert str(err.value) == (
        "dana changed what this release runs (release update) and may not override its approvals gate; ask someone else"
    )
    with svc.store.transaction() as s:
        assert len(list(audit.rows(s))) == events
    assert (svc.get(rid).status, svc.get(rid).overrides) == ("planned", [])
