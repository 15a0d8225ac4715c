"""Release states, the actions that move between them, and the rules as data.

Like Prefect's orchestration rules, the lifecycle is a table: each action names the states it may
start from and the gates it must pass. ``shiprail.domain.engine`` applies the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Where a release is in its life."""

    PLANNED = "planned"
    STAGING = "staging"
    ROLLING_OUT = "rolling_out"
    VERIFYING = "verifying"
    COMPLETE = "complete"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


ACTIVE: frozenset[Status] = frozenset({Status.STAGING, Status.ROLLING_OUT, Status.VERIFYING})
TERMINAL: frozenset[Status] = frozenset({Status.COMPLETE, Status.ROLLED_BACK})
# The states the controller drives; the others wait for a person (or are over).
DRIVEN: frozenset[Status] = frozenset({Status.ROLLING_OUT, Status.VERIFYING, Status.PAUSED, Status.ROLLING_BACK})
# The states in which a release holds its service's router (a paused one: when paused from one).
ON_THE_ROUTER: frozenset[Status] = DRIVEN - {Status.PAUSED}


class Action(StrEnum):
    """What can be asked of a release."""

    STAGE = "stage"
    START = "start"
    PROMOTE = "promote"
    COMPLETE = "complete"
    PAUSE = "pause"
    RESUME = "resume"
    ROLLBACK = "rollback"
    FINISH_ROLLBACK = "finish_rollback"


class Gate(StrEnum):
    """The go/no-go checks that guard forward actions."""

    APPROVALS = "approvals"
    TESTS = "tests"
    QA = "qa"
    LOAD_TEST = "load_test"
    BAKE = "bake"
    ANALYSIS = "analysis"
    VERIFY_WINDOW = "verify_window"
    PROBES = "probes"
    REVERT_CONFIRMED = "revert_confirmed"
    ON_CALL = "on_call"
    FREEZE = "freeze"
    # A step with `promote: manual` is promoted by a person, never by the controller.
    JUDGMENT = "judgment"


@dataclass(frozen=True)
class Rule:
    """One action: the states it may start from, the gates it must pass, what it means."""

    action: Action
    sources: frozenset[Status]
    gates: tuple[Gate, ...]
    meaning: str


RULES: dict[Action, Rule] = {
    r.action: r
    for r in (
        Rule(
            Action.STAGE,
            frozenset({Status.PLANNED}),
            (Gate.APPROVALS,),
            "enter Stage: the contract is frozen and stage checks begin",
        ),
        Rule(
            Action.START,
            frozenset({Status.STAGING}),
            (Gate.TESTS, Gate.QA, Gate.LOAD_TEST, Gate.FREEZE),
            "start the rollout at its first step",
        ),
        Rule(
            Action.PROMOTE,
            frozenset({Status.ROLLING_OUT}),
            (Gate.BAKE, Gate.ANALYSIS, Gate.FREEZE),
            "move to the next step (after the last one: Verify)",
        ),
        Rule(
            Action.COMPLETE,
            frozenset({Status.VERIFYING}),
            (Gate.VERIFY_WINDOW, Gate.ANALYSIS, Gate.PROBES),
            "close the validation window: the release is complete",
        ),
        # From paused: a person takes over a pause for missing data (``rollout.pause_refusal``).
        Rule(Action.PAUSE, ACTIVE | {Status.PAUSED}, (), "hold the release where it is"),
        Rule(Action.RESUME, frozenset({Status.PAUSED}), (), "carry on from where it paused"),
        Rule(
            Action.ROLLBACK,
            ACTIVE | {Status.PAUSED},
            (),
            "put all traffic back on the baseline",
        ),
        Rule(
            Action.FINISH_ROLLBACK,
            frozenset({Status.ROLLING_BACK}),
            (Gate.REVERT_CONFIRMED,),
            "the revert is confirmed: the release is rolled back",
        ),
    )
}

# Gates of entering a state, whichever action enters it: Verify needs someone on call, judged
# against shiprail.yaml as it is then (promoting the last step; other promotes do not judge it).
ENTRY_GATES: dict[Status, tuple[Gate, ...]] = {Status.VERIFYING: (Gate.ON_CALL,)}

# Actions that leave a release where it was: a pause and its resume come back to the same state
# and step, and what the forward action was refused there still stands.
ROUND_TRIP: frozenset[Action] = frozenset({Action.PAUSE, Action.RESUME})

# The forward action from each state: what `advance` and overrides refer to.
FORWARD: dict[Status, Action] = {
    Status.PLANNED: Action.STAGE,
    Status.STAGING: Action.START,
    Status.ROLLING_OUT: Action.PROMOTE,
    Status.VERIFYING: Action.COMPLETE,
    Status.ROLLING_BACK: Action.FINISH_ROLLBACK,
}


def allowed_actions(status: Status) -> list[Action]:
    """Actions the table allows from ``status``, in table order."""
    return [a for a, r in RULES.items() if status in r.sources]
