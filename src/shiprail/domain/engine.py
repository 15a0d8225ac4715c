"""The lifecycle engine: given a state, an action and gate results, the next state.

Pure: no I/O, no clock. The service layer gathers facts, evaluates gates (``shiprail.domain.gates``),
asks ``transition`` what follows, and stores the outcome and every evaluation in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shiprail.domain.states import ACTIVE, ENTRY_GATES, RULES, Action, Gate, Status, allowed_actions
from shiprail.errors import IllegalTransition


@dataclass(frozen=True)
class ReleaseState:
    """The part of a release the lifecycle cares about.

    ``step`` is the index of the current rollout step while rolling out (kept while paused from
    a rollout); ``paused_from`` is the state a paused release resumes to.
    """

    status: Status = Status.PLANNED
    step: int | None = None
    paused_from: Status | None = None

    def describe(self) -> str:
        """``rolling_out (step 2)``, ``paused (from verifying)``, ``planned``..."""
        if self.status is Status.ROLLING_OUT:
            return f"rolling_out (step {(self.step or 0) + 1})"
        if self.status is Status.PAUSED and self.paused_from is not None:
            return f"paused (from {self.paused_from.value})"
        return self.status.value


# A state as ``ReleaseState.describe`` writes it: ``planned``, ``rolling_out (step 2)``, ``paused (from verifying)``.
_DESCRIBED = re.compile(r"([a-z_]+)(?: \((?:step ([0-9]+)|from ([a-z_]+))\))?")


def parse_state(text: str) -> ReleaseState | None:
    """The state ``describe`` wrote as ``text`` (as ``release show`` prints it; spaces around and
    between words do not matter), or None when no release can be in it. A paused state is read
    without its step: ``describe`` does not write it."""
    m = _DESCRIBED.fullmatch(" ".join(text.split()))
    if m is None or m.group(1) not in {s.value for s in Status}:
        return None
    status, step, paused_from = Status(m.group(1)), m.group(2), m.group(3)
    if status is Status.ROLLING_OUT:
        return ReleaseState(status, step=int(step) - 1) if step is not None and int(step) >= 1 else None
    if status is Status.PAUSED:
        came = Status(paused_from) if paused_from in {s.value for s in ACTIVE} else None
        return ReleaseState(status, paused_from=came) if came is not None else None
    return ReleaseState(status) if step is None and paused_from is None else None


def invariant_violations(state: ReleaseState, steps: int) -> list[str]:
    """Why ``state`` is not a legal state for a release with ``steps`` rollout steps (empty: legal)."""
    problems: list[str] = []
    rolling = state.status is Status.ROLLING_OUT or (
        state.status is Status.PAUSED and state.paused_from is Status.ROLLING_OUT
    )
    if rolling != (state.step is not None):
        problems.append(f"step is {state.step} while {state.describe()}")
    if state.step is not None and not 0 <= state.step < steps:
        problems.append(f"step {state.step} outside 0..{steps - 1}")
    if (state.status is Status.PAUSED) != (state.paused_from is not None):
        problems.append(f"paused_from is {state.paused_from} while {state.status.value}")
    if state.paused_from is not None and state.paused_from not in ACTIVE:
        problems.append(f"paused from {state.paused_from.value}, which is not an active state")
    return problems


GateVerdict = Literal["pass", "fail", "overridden"]


@dataclass(frozen=True)
class GateResult:
    """One gate's answer with the evidence behind it."""

    gate: Gate
    passed: bool
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """A gate result as recorded for one attempted transition."""

    gate: Gate
    verdict: GateVerdict
    reason: str
    evidence: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What an attempted transition came to.

    ``state`` is the next state when ``allowed``; otherwise the release stays where it is and
    ``failed`` names the gates that said no. ``evaluations`` are always stored, allowed or not.
    """

    action: Action
    before: ReleaseState
    state: ReleaseState
    allowed: bool
    evaluations: tuple[Evaluation, ...]
    failed: tuple[Gate, ...]
    overridden: tuple[Gate, ...]


def _target(state: ReleaseState, action: Action, steps: int) -> ReleaseState:
    if action is Action.STAGE:
        return ReleaseState(Status.STAGING)
    if action is Action.START:
        return ReleaseState(Status.ROLLING_OUT, step=0)
    if action is Action.PROMOTE:
        nxt = (state.step or 0) + 1
        return ReleaseState(Status.ROLLING_OUT, step=nxt) if nxt < steps else ReleaseState(Status.VERIFYING)
    if action is Action.COMPLETE:
        return ReleaseState(Status.COMPLETE)
    if action is Action.PAUSE:
        # Paused again (a person taking over a pause for missing data): it still resumes to where it was.
        return ReleaseState(Status.PAUSED, step=state.step, paused_from=state.paused_from or state.status)
    if action is Action.RESUME:
        assert state.paused_from is not None
        return ReleaseState(state.paused_from, step=state.step)
    if action is Action.ROLLBACK:
        return ReleaseState(Status.ROLLING_BACK)
    return ReleaseState(Status.ROLLED_BACK)


def gates_for(
    action: Action, state: ReleaseState | None = None, steps: int | None = None, manual: Collection[int] = ()
) -> tuple[Gate, ...]:
    """The gates ``action`` must pass; from ``state`` (of a release with ``steps`` steps), also the
    entry gates of the state it enters (promoting the last step enters Verify: ``on_call``); a
    resume back into the state it paused from enters nothing. ``manual``: the steps (by index)
    a person promotes (``promote: manual``): promoting one also passes ``judgment``."""
    gates = RULES[action].gates
    if state is None or steps is None or state.status not in RULES[action].sources:
        return gates
    if action is Action.PROMOTE and state.step in manual:
        gates = (*gates, Gate.JUDGMENT)
    to = _target(state, action, steps).status
    if to in (state.status, state.paused_from):  # resuming where it paused from enters nothing
        return gates
    return gates + ENTRY_GATES.get(to, ())


# The actions the controller takes on its own, in words: no command is named after them.
BY_THE_CONTROLLER: dict[Action, str] = {
    Action.COMPLETE: "wait for the controller to complete it",
    Action.FINISH_ROLLBACK: "wait for the controller to finish the rollback once the router confirms 0%",
}


def check_allowed(state: ReleaseState, action: Action, *, refused: Collection[Action] = ()) -> None:
    """Raise ``IllegalTransition`` when the table does not allow ``action`` from ``state``.

    ``refused``: actions the table allows from there but the release refuses now (``pause`` of a
    release a person paused), left out of the choices the refusal lists.
    """
    if state.status not in RULES[action].sources:
        allowed = [a for a in allowed_actions(state.status) if a not in refused]
        options = ", ".join(BY_THE_CONTROLLER.get(a, a.value) for a in allowed) or "nothing (it has ended)"
        raise IllegalTransition(
            f"cannot {action.value} a release that is {state.describe()}; from there you can: {options}"
        )


def transition(
    state: ReleaseState,
    action: Action,
    *,
    steps: int,
    results: Mapping[Gate, GateResult],
    overrides: Mapping[Gate, str] | None = None,
    manual: Collection[int] = (),
) -> Outcome:
    """Apply ``action`` to ``state``.

    Every gate of the action is judged from ``results`` (a gate without a result fails: never
    proceed on missing evidence). A failed gate named in ``overrides`` (gate -> who and why) is
    recorded as ``overridden`` and no longer blocks. Raises ``IllegalTransition`` when the action
    is not allowed from ``state`` at all. ``manual``: the steps a person promotes (see ``gates_for``).
    """
    check_allowed(state, action)
    if steps < 1:
        raise IllegalTransition("a release needs at least one rollout step")
    overrides = overrides or {}
    evaluations: list[Evaluation] = []
    failed: list[Gate] = []
    overridden: list[Gate] = []
    for gate in gates_for(action, state, steps, manual):
        result = results.get(gate) or GateResult(gate, False, "not evaluated: no evidence was given")
        if result.passed:
            evaluations.append(Evaluation(gate, "pass", result.reason, result.evidence))
        elif gate in overrides:
            overridden.append(gate)
            evaluations.append(
                Evaluation(gate, "overridden", f"{result.reason}; overridden: {overrides[gate]}", result.evidence)
            )
        else:
            failed.append(gate)
            evaluations.append(Evaluation(gate, "fail", result.reason, result.evidence))
    allowed = not failed
    return Outcome(
        action=action,
        before=state,
        state=_target(state, action, steps) if allowed else state,
        allowed=allowed,
        evaluations=tuple(evaluations),
        failed=tuple(failed),
        overridden=tuple(overridden),
    )
