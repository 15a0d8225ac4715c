"""The lifecycle table: every legal transition works, every other one is refused."""

from __future__ import annotations

import itertools

import pytest

from shiprail.domain.engine import (
    GateResult,
    ReleaseState,
    check_allowed,
    invariant_violations,
    parse_state,
    transition,
)
from shiprail.domain.states import ACTIVE, RULES, Action, Gate, Status
from shiprail.errors import IllegalTransition

STEPS = 4
ALL_GATES_PASS = {g: GateResult(g, True, "ok") for g in Gate}

# Every state a release can be in, with a representative sub-state where it has one.
STATES: list[ReleaseState] = [
    ReleaseState(Status.PLANNED),
    ReleaseState(Status.STAGING),
    *(ReleaseState(Status.ROLLING_OUT, step=i) for i in range(STEPS)),
    ReleaseState(Status.VERIFYING),
    ReleaseState(Status.COMPLETE),
    *(ReleaseState(Status.PAUSED, paused_from=s) for s in (Status.STAGING, Status.VERIFYING)),
    *(ReleaseState(Status.PAUSED, step=i, paused_from=Status.ROLLING_OUT) for i in range(STEPS)),
    ReleaseState(Status.ROLLING_BACK),
    ReleaseState(Status.ROLLED_BACK),
]


def expected(state: ReleaseState, action: Action) -> ReleaseState | None:
    """The design's lifecycle written out by hand (DESIGN.md, 'Lifecycle'); None: illegal."""
    s = state.status
    table: dict[tuple[Status, Action], ReleaseState] = {
        (Status.PLANNED, Action.STAGE): ReleaseState(Status.STAGING),
        (Status.STAGING, Action.START): ReleaseState(Status.ROLLING_OUT, step=0),
        (Status.VERIFYING, Action.COMPLETE): ReleaseState(Status.COMPLETE),
        (Status.ROLLING_BACK, Action.FINISH_ROLLBACK): ReleaseState(Status.ROLLED_BACK),
    }
    if (s, action) in table:
        return table[(s, action)]
    if s is Status.ROLLING_OUT and action is Action.PROMOTE:
        nxt = (state.step or 0) + 1
        return ReleaseState(Status.ROLLING_OUT, step=nxt) if nxt < STEPS else ReleaseState(Status.VERIFYING)
    if s in ACTIVE and action is Action.PAUSE:
        return ReleaseState(Status.PAUSED, step=state.step, paused_from=s)
    if s is Status.PAUSED and action is Action.PAUSE:  # a person taking over a pause for missing data
        return state
    if s is Status.PAUSED and action is Action.RESUME:
        assert state.paused_from is not None
        return ReleaseState(state.paused_from, step=state.step)
    if (s in ACTIVE or s is Status.PAUSED) and action is Action.ROLLBACK:
        return ReleaseState(Status.ROLLING_BACK)
    return None


@pytest.mark.parametrize(
    ("state", "action"),
    list(itertools.product(STATES, list(Action))),
    ids=lambda v: v.describe() if isinstance(v, ReleaseState) else v.value,
)
def test_every_state_and_action(state: ReleaseState, action: Action) -> None:
    want = expected(state, action)
    if want is None:
        with pytest.raises(IllegalTransition) as err:
            transition(state, action, steps=STEPS, results=ALL_GATES_PASS)
        assert err.value.message.startswith(f"cannot {action.value} a release that is {state.describe()}; ")
    else:
        outcome = transition(state, action, steps=STEPS, results=ALL_GATES_PASS)
        assert outcome.allowed
        assert outcome.state == want
        assert invariant_violations(outcome.state, STEPS) == []


def test_state_pairs_reachable_in_one_step_are_exactly_the_design() -> None:
    reachable: set[tuple[Status, Status]] = set()
    for state, action in itertools.product(STATES, list(Action)):
        try:
            outcome = transition(state, action, steps=STEPS, results=ALL_GATES_PASS)
        except IllegalTransition:
            continue
        reachable.add((state.status, outcome.state.status))
    assert reachable == {
        (Status.PLANNED, Status.STAGING),
        (Status.STAGING, Status.ROLLING_OUT),
        (Status.STAGING, Status.PAUSED),
        (Status.STAGING, Status.ROLLING_BACK),
        (Status.ROLLING_OUT, Status.ROLLING_OUT),
        (Status.ROLLING_OUT, Status.VERIFYING),
        (Status.ROLLING_OUT, Status.PAUSED),
        (Status.ROLLING_OUT, Status.ROLLING_BACK),
        (Status.VERIFYING, Status.COMPLETE),
        (Status.VERIFYING, Status.PAUSED),
        (Status.VERIFYING, Status.ROLLING_BACK),
        (Status.PAUSED, Status.STAGING),
        (Status.PAUSED, Status.ROLLING_OUT),
        (Status.PAUSED, Status.VERIFYING),
        (Status.PAUSED, Status.ROLLING_BACK),
        (Status.PAUSED, Status.PAUSED),  # a person taking over a pause for missing data
        (Status.ROLLING_BACK, Status.ROLLED_BACK),
    }


def test_terminal_states_allow_nothing() -> None:
    for status in (Status.COMPLETE, Status.ROLLED_BACK):
        for action in Action:
            with pytest.raises(IllegalTransition, match=r"from there you can: nothing \(it has ended\)"):
                transition(ReleaseState(status), action, steps=STEPS, results=ALL_GATES_PASS)


def test_illegal_transition_message_lists_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as err:
        transition(ReleaseState(Status.PLANNED), Action.PROMOTE, steps=STEPS, results=ALL_GATES_PASS)
    assert err.value.message == "cannot promote a release that is planned; from there you can: stage"


def test_a_refusal_names_what_the_controller_does_in_words_not_as_an_action() -> None:
    with pytest.raises(IllegalTransition) as err:
        check_allowed(ReleaseState(Status.ROLLING_BACK), Action.RESUME)
    assert err.value.message == (
        "cannot resume a release that is rolling_back; from there you can: "
        "wait for the controller to finish the rollback once the router confirms 0%"
    )


@pytest.mark.parametrize("action", [a for a in Action if RULES[a].gates])
def test_a_failed_gate_blocks_and_keeps_the_state(action: Action) -> None:
    state = next(s for s in STATES if s.status in RULES[action].sources)
    gate = RULES[action].gates[0]
    results = {**ALL_GATES_PASS, gate: GateResult(gate, False, "nope", {"x": 1})}
    outcome = transition(state, action, steps=STEPS, results=results)
    assert not outcome.allowed
    assert outcome.state == state
    assert outcome.failed == (gate,)
    verdicts = {e.gate: e.verdict for e in outcome.evaluations}
    assert verdicts[gate] == "fail"
    assert all(v == "pass" for g, v in verdicts.items() if g != gate)


def test_a_gate_without_evidence_fails() -> None:
    outcome = transition(ReleaseState(Status.PLANNED), Action.STAGE, steps=STEPS, results={})
    assert not outcome.allowed
    assert outcome.evaluations[0].reason == "not evaluated: no evidence was given"


def test_override_passes_only_the_named_failed_gate() -> None:
    state = ReleaseState(Status.ROLLING_OUT, step=1)
    results = {
        **ALL_GATES_PASS,
        Gate.BAKE: GateResult(Gate.BAKE, False, "1h left"),
        Gate.ANALYSIS: GateResult(Gate.ANALYSIS, False, "no data"),
    }
    partial = transition(state, Action.PROMOTE, steps=STEPS, results=results, overrides={Gate.BAKE: "dana: hotfix"})
    assert not partial.allowed
    assert partial.failed == (Gate.ANALYSIS,)
    assert partial.overridden == (Gate.BAKE,)
    full = transition(
        state,
        Action.PROMOTE,
        steps=STEPS,
        results=results,
        overrides={Gate.BAKE: "dana: hotfix", Gate.ANALYSIS: "dana: hotfix"},
    )
    assert full.allowed
    assert full.state == ReleaseState(Status.ROLLING_OUT, step=2)
    # The freeze gate passed: only the gates that failed are overridden.
    assert [(e.gate, e.verdict) for e in full.evaluations] == [
        (Gate.BAKE, "overridden"),
        (Gate.ANALYSIS, "overridden"),
        (Gate.FREEZE, "pass"),
    ]
    assert full.evaluations[0].reason == "1h left; overridden: dana: hotfix"


def test_ungated_actions_record_no_evaluations() -> None:
    outcome = transition(ReleaseState(Status.VERIFYING), Action.ROLLBACK, steps=STEPS, results={})
    assert outcome.allowed and outcome.evaluations == ()


def test_invariants_flag_impossible_states() -> None:
    assert invariant_violations(ReleaseState(Status.PLANNED, step=1), STEPS) == ["step is 1 while planned"]
    assert invariant_violations(ReleaseState(Status.ROLLING_OUT, step=9), STEPS) == ["step 9 outside 0..3"]
    assert invariant_violations(ReleaseState(Status.PAUSED), STEPS) == ["paused_from is None while paused"]
    assert invariant_violations(ReleaseState(Status.PAUSED, paused_from=Status.PLANNED), STEPS) == [
        "paused from planned, which is not an active state"
    ]


def test_only_the_promote_that_enters_verify_is_gated_by_who_is_on_call() -> None:
    nobody = {**ALL_GATES_PASS, Gate.ON_CALL: GateResult(Gate.ON_CALL, False, "bob lost the role")}
    step_two = transition(ReleaseState(Status.ROLLING_OUT, step=1), Action.PROMOTE, steps=STEPS, results=nobody)
    assert (step_two.allowed, [e.gate for e in step_two.evaluations]) == (
        True,
        [Gate.BAKE, Gate.ANALYSIS, Gate.FREEZE],
    )
    last = ReleaseState(Status.ROLLING_OUT, step=STEPS - 1)
    refused = transition(last, Action.PROMOTE, steps=STEPS, results=nobody)
    assert (refused.allowed, refused.state, refused.failed) == (False, last, (Gate.ON_CALL,))
    assert [(e.gate, e.verdict) for e in refused.evaluations] == [
        (Gate.BAKE, "pass"),
        (Gate.ANALYSIS, "pass"),
        (Gate.FREEZE, "pass"),
        (Gate.ON_CALL, "fail"),
    ]
    passed = transition(last, Action.PROMOTE, steps=STEPS, results=nobody, overrides={Gate.ON_CALL: "dana: covered"})
    assert (passed.state, passed.overridden) == (ReleaseState(Status.VERIFYING), (Gate.ON_CALL,))


def test_resuming_in_verify_is_not_entering_it_and_stays_ungated() -> None:
    nobody = {Gate.ON_CALL: GateResult(Gate.ON_CALL, False, "bob lost the role")}
    paused = ReleaseState(Status.PAUSED, paused_from=Status.VERIFYING)
    resumed = transition(paused, Action.RESUME, steps=STEPS, results=nobody)
    assert (resumed.allowed, resumed.state, resumed.evaluations) == (True, ReleaseState(Status.VERIFYING), ())


@pytest.mark.parametrize(
    "state",
    [
        ReleaseState(Status.PLANNED),
        ReleaseState(Status.STAGING),
        ReleaseState(Status.ROLLING_OUT, step=0),
        ReleaseState(Status.ROLLING_OUT, step=11),
        ReleaseState(Status.VERIFYING),
        ReleaseState(Status.COMPLETE),
        ReleaseState(Status.ROLLING_BACK),
        ReleaseState(Status.ROLLED_BACK),
    ],
)
def test_a_state_is_read_back_as_describe_writes_it(state: ReleaseState) -> None:
    assert parse_state(state.describe()) == state
    assert parse_state(f"  {state.describe().replace(' ', '   ')} ") == state


def test_a_paused_state_is_read_back_with_where_it_resumes_to() -> None:
    assert parse_state("paused (from verifying)") == ReleaseState(Status.PAUSED, paused_from=Status.VERIFYING)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "rolled out",
        "rolling_out",
        "rolling_out (step 0)",
        "rolling_out (step ²)",
        "staging (step 1)",
        "paused",
        "paused (from planned)",
        "planned (from staging)",
        "ROLLING_OUT (step 1)x",
    ],
)
def test_what_is_not_a_state_is_not_read_as_one(text: str) -> None:
    assert parse_state(text) is None


def test_a_refusal_leaves_out_the_actions_the_release_refuses_now() -> None:
    with pytest.raises(IllegalTransition) as err:
        check_allowed(
            ReleaseState(Status.PAUSED, paused_from=Status.ROLLING_OUT), Action.PROMOTE, refused=[Action.PAUSE]
        )
    assert err.value.message == (
        "cannot promote a release that is paused (from rolling_out); from there you can: resume, rollback"
    )
