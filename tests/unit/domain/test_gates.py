"""Gate evaluators: facts in, verdict and evidence out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shiprail.domain import gates, rules
from shiprail.domain.states import Gate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROLES = ("approver", "executive")


def test_approvals_count_distinct_people_and_never_the_owner() -> None:
    result = gates.approvals(["bob", "bob", "alice"], owner="alice", required=2)
    assert not result.passed
    assert result.reason == "1 of 2 required approvals given"
    assert result.evidence == {"approvers": ["bob"], "required": 2}
    assert gates.approvals(["bob", "carol"], owner="alice", required=2).passed


def test_approvals_do_not_count_a_former_owner() -> None:
    result = gates.approvals(["bob", "carol"], owner="alice", required=2, former={"bob"})
    assert (result.passed, result.reason) == (
        False,
        "1 of 2 required approvals given (bob owned this release: their approval does not count)",
    )
    assert result.evidence == {"approvers": ["carol"], "required": 2}


def test_approvals_do_not_count_people_who_may_no_longer_approve() -> None:
    """An approver who lost the role, or left shiprail.yaml, since approving no longer counts."""
    result = gates.approvals(
        ["bob", "carol", "erin"], owner="alice", required=2, lapsed={"carol", "erin"}, approve_roles=ROLES
    )
    assert (result.passed, result.reason) == (
        False,
        "1 of 2 required approvals given (carol, erin no longer hold the role approver or executive in "
        "shiprail.yaml: their approval does not count)",
    )
    assert result.evidence == {"approvers": ["bob"], "required": 2, "lapsed": ["carol", "erin"]}
    result = gates.approvals(["bob", "carol"], owner="alice", required=1, lapsed={"carol"}, approve_roles=ROLES)
    assert (result.passed, result.reason) == (True, "1 of 1 approvals")


def test_approvals_do_not_count_people_who_created_or_changed_the_release() -> None:
    """GitLab's "prevent approvals by users who add commits": an author's approval does not count."""
    result = gates.approvals(["bob", "dana"], owner="alice", required=2, approve_roles=ROLES, authors={"dana"})
    assert (result.passed, result.reason) == (
        False,
        "1 of 2 required approvals given (dana created or changed this release: their approval does not count)",
    )
    assert result.evidence == {"approvers": ["bob"], "required": 2, "authors": ["dana"]}


def test_authors_are_who_created_the_release_or_changed_what_it_runs() -> None:
    events = [
        ("release.created", "carol", {"owner": "alice"}),
        ("plan.updated", "dana", {"old_resolved_hash": "a", "resolved_hash": "b"}),
        ("plan.updated", "erin", {"old_resolved_hash": "b", "resolved_hash": "b"}),  # changed nothing it runs
        ("plan.updated", "carol", {"old_resolved_hash": "b", "resolved_hash": "c"}),
        ("plan.updated", "shiprail:controller", {"old_resolved_hash": "c", "resolved_hash": "d"}),
    ]
    assert rules.authors(events) == {"carol": rules.CREATED, "dana": rules.CHANGED}


def test_an_update_recorded_before_resolved_hashes_were_makes_its_author_by_its_plan_hashes() -> None:
    # A plan.updated written by a shiprail before migration 0010 states plan hashes only: both
    # resolved hashes missing read as "changed nothing", so who replaced the plan then could approve it.
    events = [
        ("plan.updated", "dana", {"old_plan_hash": "p1", "plan_hash": "p2"}),
        ("plan.updated", "erin", {"old_plan_hash": "p2", "plan_hash": "p2"}),
    ]
    assert rules.authors(events) == {"dana": rules.CHANGED}


def test_qa_needs_every_item_signed() -> None:
    r = gates.qa(["a", "b"], {"a": "quinn"}, required=True)
    assert (r.passed, r.reason) == (False, "1 of 2 QA items not signed off: 'b'")
    assert gates.qa(["a", "b"], {"a": "quinn", "b": "quinn"}, required=True).passed
    assert gates.qa([], {}, required=False).reason == "no QA checklist for this release"
    assert not gates.qa([], {}, required=True).passed


def test_qa_does_not_count_sign_offs_by_an_owner() -> None:
    r = gates.qa(["a", "b"], {"a": "carol", "b": "quinn"}, required=True, owners={"alice", "quinn"})
    assert (r.passed, r.reason) == (
        False,
        "1 of 2 QA items not signed off: 'b' (signed off by quinn, who owns the release: another qa must sign it off)",
    )
    assert gates.qa(["a", "b"], {"a": "carol", "b": "quinn"}, required=True, owners={"alice"}).passed


def test_qa_does_not_count_sign_offs_by_someone_who_no_longer_holds_the_role() -> None:
    r = gates.qa(["a", "b"], {"a": "quinn", "b": "rita"}, required=True, lapsed={"quinn"})
    assert (r.passed, r.reason) == (
        False,
        "1 of 2 QA items not signed off: 'a' (signed off by quinn, who no longer holds the role qa in "
        "shiprail.yaml: another qa must sign it off)",
    )
    assert r.evidence["unsigned"] == ["a"]
    r = gates.qa(["a", "b", "c"], {"a": "alice", "b": "quinn", "c": "rita"}, True, {"alice"}, {"quinn", "rita"})
    assert r.reason == (
        "3 of 3 QA items not signed off: 'a', 'b', 'c' (1 signed off by alice, who owns the release: another qa "
        "must sign it off) (2 signed off by quinn, rita, who no longer hold the role qa in shiprail.yaml: another "
        "qa must sign them off)"
    )


def test_qa_names_every_item_not_signed_off() -> None:
    r = gates.qa(["a", "b", "c"], {"b": "quinn"}, required=True)
    assert (r.passed, r.reason) == (False, "2 of 3 QA items not signed off: 'a', 'c'")
    r = gates.qa(["a", "b", "c"], {"a": "quinn", "b": "alice"}, required=True, owners={"alice", "quinn"})
    assert r.reason == (
        "3 of 3 QA items not signed off: 'a', 'b', 'c' "
        "(2 signed off by alice, quinn, who own the release: another qa must sign them off)"
    )
    r = gates.qa(["a", "b"], {"a": "quinn", "b": "quinn"}, required=True, owners={"quinn"})
    assert r.reason == (
        "2 of 2 QA items not signed off: 'a', 'b' "
        "(all 2 signed off by quinn, who owns the release: another qa must sign them off)"
    )


def test_tests_gate_needs_every_command_run_and_passed() -> None:
    rec = gates.CheckRecord
    assert gates.tests(["unit"], {}).reason == "test 'unit' has not run"
    assert gates.tests(["unit"], {"unit": rec("unit", False, "2 failed")}).reason == "test 'unit' failed: 2 failed"
    assert gates.tests(["unit"], {"unit": rec("unit", True, "10 passed")}).passed
    assert gates.tests([], {}).passed


def test_load_test_gate() -> None:
    rec = gates.CheckRecord("load_test", True, "p95 120 ms")
    assert gates.load_test(required=True, planned=False, record=None).reason == (
        "a load test is required but the plan has none"
    )
    assert gates.load_test(required=False, planned=False, record=None).passed
    assert gates.load_test(required=True, planned=True, record=None).reason == "the load test has not run"
    assert gates.load_test(required=True, planned=True, record=rec).passed


def test_the_verify_window_is_watched_time_and_its_boundary_is_inclusive() -> None:
    before = gates.verify_window(86399.5, 86400, T0)
    assert (before.passed, before.reason) == (False, "the validation window has 1s of its 1d left to watch")
    at = gates.verify_window(86400, 86400, T0)
    assert (at.passed, at.reason) == (True, "the validation window of 1d was watched with every trigger passing")
    assert at.evidence == {"started": T0.isoformat(), "watched_s": 86400, "needed_s": 86400}
    # Started a day ago, but only two minutes watched (a controller down, a pause): not over.
    assert gates.verify_window(120, 86400, T0 - timedelta(days=1)).reason == (
        "the validation window has 23h58m of its 1d left to watch"
    )
    assert gates.verify_window(0, 86400, None).reason == "the validation window has not started"


def test_recorded_gate_without_a_verdict_fails() -> None:
    assert not gates.recorded(Gate.ANALYSIS, None, "no analysis").passed
    assert gates.recorded(Gate.ANALYSIS, (True, "all triggers pass"), "x").reason == "all triggers pass"


def test_the_bake_gate_names_the_bake_it_asked_for() -> None:
    assert (gates.baked(3.0, 0, 100.0).passed, gates.baked(3.0, 0, 100.0).reason) == (
        True,
        "100% has no bake to wait for",
    )
    assert gates.baked(14403.5, 14400, 50.0).reason == "50% baked 4h with every trigger passing"
    assert gates.baked(600.0, 14400, 50.0).reason == "50% has 3h50m of its 4h bake left"


def test_on_call_passes_a_person_holding_the_role_and_names_the_fix_otherwise() -> None:
    ok = gates.on_call("bob", {"approver", "oncall"}, "oncall", ["bob"])
    assert (ok.gate, ok.passed, ok.reason) == (Gate.ON_CALL, True, "bob is on call (role oncall in shiprail.yaml)")
    assert ok.evidence == {"on_call": "bob", "roles": ["approver", "oncall"], "needs": "oncall"}
    gone = gates.on_call("bob", None, "oncall", ["carol", "erin"])
    assert (gone.passed, gone.reason) == (
        False,
        "bob, on call for Verify, is not a person in shiprail.yaml; add bob under people with the role oncall, "
        "or hand over to someone who has it (carol, erin) with `shiprail release handover`",
    )
    roleless = gates.on_call("bob", set(), "oncall", [])
    assert roleless.reason == (
        "bob, on call for Verify, needs the role oncall in shiprail.yaml and has no role; give bob the role, "
        "or hand over to someone given the role oncall with `shiprail release handover`"
    )
