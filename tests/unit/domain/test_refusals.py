"""What refused a gate, told apart: the refusal an override covers (shiprail.domain.refusals)."""

from __future__ import annotations

from datetime import UTC, datetime

from shiprail.domain import gates as judge
from shiprail.domain.freezes import FreezeHit
from shiprail.domain.refusals import covers, parse_gate, reference, reference_problem, refused_by
from shiprail.domain.states import Gate

MAINTENANCE = FreezeHit("maintenance", datetime(2026, 1, 1, 5, tzinfo=UTC), "UTC")
BLACK_FRIDAY = FreezeHit("black-friday", datetime(2026, 1, 1, 8, tzinfo=UTC), "UTC")


def culprits(result: judge.GateResult) -> list[object] | None:
    return refused_by(result.gate, result.evidence)


def test_a_freeze_refusal_is_told_by_the_windows_on_their_names_and_ends() -> None:
    one = culprits(judge.freeze([MAINTENANCE]))
    assert one == [{"name": "maintenance", "until": "2026-01-01T05:00:00+00:00"}]
    both = culprits(judge.freeze([BLACK_FRIDAY, MAINTENANCE]))
    assert both == culprits(judge.freeze([MAINTENANCE, BLACK_FRIDAY]))  # in any order
    later = FreezeHit("maintenance", datetime(2026, 1, 1, 6, tzinfo=UTC), "UTC")  # moved to end later
    refs = {
        reference(Gate.FREEZE, c)
        for c in (one, both, culprits(judge.freeze([BLACK_FRIDAY])), culprits(judge.freeze([later])))
    }
    assert len(refs) == 4
    assert all(r.startswith("freeze@") and len(r) == len("freeze@") + 8 for r in refs)
    assert reference(Gate.FREEZE, one) == reference("freeze", list(one or []))  # the same refusal, the same name


def test_an_on_call_refusal_is_told_by_the_person() -> None:
    bob = culprits(judge.on_call("bob", {"approver"}, "oncall", []))
    erin = culprits(judge.on_call("erin", None, "oncall", ["carol"]))
    assert (bob, erin) == (["bob"], ["erin"])
    assert reference(Gate.ON_CALL, bob) != reference(Gate.ON_CALL, erin)


def test_tests_and_qa_refusals_are_told_by_what_did_not_pass() -> None:
    unit = judge.CheckRecord("unit", False, "3 failed")
    e2e = judge.CheckRecord("e2e", True, "ok")
    assert culprits(judge.tests(["unit", "e2e", "lint"], {"unit": unit, "e2e": e2e})) == ["lint", "unit"]
    assert culprits(judge.qa(["login", "refund"], {"login": "carol"}, True)) == ["refund"]


def test_gates_that_refuse_for_one_thing_and_evidence_recorded_before_are_told_by_name() -> None:
    assert culprits(judge.baked(60, 1800, 1)) is None
    assert reference(Gate.BAKE, None) == "bake"
    # A freeze refusal stored without its windows (or any gate's evidence without the key).
    assert refused_by(Gate.FREEZE, {}) is None
    assert refused_by(Gate.ON_CALL, {"roles": None}) is None


def test_an_override_covers_the_refusal_it_names_or_else_only_what_refused_the_action_in_the_state() -> None:
    maint = culprits(judge.freeze([MAINTENANCE]))
    friday = culprits(judge.freeze([BLACK_FRIDAY]))
    ref = reference(Gate.FREEZE, maint)
    # Named: exactly that refusal.
    assert covers(Gate.FREEZE, maint, ref, [friday])
    assert not covers(Gate.FREEZE, friday, ref, [friday, maint])
    # Not named: every refusal told apart in the state was for what refuses it now.
    assert covers(Gate.FREEZE, maint, None, [maint, maint])
    assert not covers(Gate.FREEZE, friday, None, [maint])
    assert not covers(Gate.FREEZE, friday, None, [friday, maint])  # which did its author see?
    # Nothing refused it (a gate named that nobody tried), refusals told by name only, or a gate told
    # by name: by name, as before.
    assert covers(Gate.FREEZE, friday, None, [])
    assert covers(Gate.FREEZE, friday, None, [None])
    assert covers(Gate.BAKE, None, None, [None])
    assert covers(Gate.BAKE, None, "bake", [])


def test_a_gate_given_on_the_command_line_may_name_its_refusal() -> None:
    assert parse_gate("freeze") == ("freeze", None)
    assert parse_gate("freeze@1f2e3d4c") == ("freeze", "freeze@1f2e3d4c")


def test_a_reference_is_read_in_any_case() -> None:
    # Copied from a terminal or chat, a digest may come back upper-cased: it names the same refusal.
    assert parse_gate("freeze@1F2E3D4C") == ("freeze", "freeze@1f2e3d4c")
    assert parse_gate("on_call@AbCdEf01") == ("on_call", "on_call@abcdef01")


def test_an_override_covers_what_refuses_now_when_it_is_part_of_the_refusal_its_author_saw() -> None:
    """Of the windows, tests or QA items the author overrode, some no longer refuse (a freeze
    ended, an item was signed off): the rest refused then too, and the override covers it."""
    both = culprits(judge.freeze([MAINTENANCE, BLACK_FRIDAY]))
    friday = culprits(judge.freeze([BLACK_FRIDAY]))
    seen = reference(Gate.FREEZE, both)
    assert covers(Gate.FREEZE, friday, seen, [both])
    assert covers(Gate.FREEZE, friday, None, [both, both])
    two = culprits(judge.qa(["login", "refund", "card"], {"login": "carol"}, True))
    one = culprits(judge.qa(["login", "refund", "card"], {"login": "carol", "refund": "carol"}, True))
    assert covers(Gate.QA, one, reference(Gate.QA, two), [two])
    # More than was seen, or something else, is not part of it.
    assert not covers(Gate.FREEZE, both, reference(Gate.FREEZE, friday), [friday])
    assert not covers(Gate.FREEZE, friday, None, [both, culprits(judge.freeze([MAINTENANCE]))])
    # A reference to no refusal of the state covers only what it names.
    assert not covers(Gate.FREEZE, friday, seen, [])
    # Nothing failing (no analysis counts yet) is not part of an analysis that failed.
    assert not covers(Gate.ANALYSIS, [], reference(Gate.ANALYSIS, ["errors"]), [["errors"]])


def test_a_reference_no_refusal_can_have_is_named_as_such() -> None:
    assert reference_problem("freeze", "freeze@1f2e3d4c", "checkout-2.4.0") is None
    assert reference_problem("freeze", "freeze@1f2e3d", "checkout-2.4.0") == (
        "a refusal's reference is its gate, @ and 8 hexadecimal digits, as the refusal names it (freeze@1f2e3d4c); "
        "copy it from the refusal or from `shiprail release show checkout-2.4.0`"
    )
    assert reference_problem("bake", "bake@1f2e3d4c", "checkout-2.4.0") == (
        "gate bake refuses for one thing and its refusals carry no reference; name it as --gate bake"
    )
