"""What the controller should do next for one release: the rollout decided as data.

Pure: given the release's lifecycle state, its rollout progress, the latest analysis and the
time, ``decide`` returns one ``Decision``. The controller records it, acts on it through a router
or provider, and feeds the outcome back with ``weight_confirmed`` or ``analysed``.

The rules (pinned by tests/unit/domain/test_rollout.py):

- A step's weight is applied first; its bake starts when the router confirms the weight.
- The contract is analysed every ``analysis_interval``, during every step and during Verify.
- One ``fail`` (after ``consecutive``) rolls back at once.
- ``inconclusive`` never promotes: bake accrues only over intervals that ended with every
  trigger passing, and at most one interval per analysis (time nobody looked does not count).
- ``no_data_limit`` inconclusive analyses in a row apply ``on_no_data``: pause (and resume by
  itself when an analysis passes again) or roll back.
- A step promotes when its bake is done and the latest analysis passed; after the last step the
  release verifies; Verify completes when an analysis made at or after the window's end passes.
- A paused release (by hand or for missing data) still holds canary traffic, so its contract
  stays armed: it is analysed at the same cadence and a failure rolls it back, but its bake does
  not advance. A pause for missing data resumes by itself when an analysis passes; a pause by a
  person waits for a person.
- Rolling back sets weight 0 and finishes only once the router confirms it.
- A ``dry_run`` trigger's verdict never acts: its failure neither rolls back nor holds the bake,
  its missing data never counts towards ``on_no_data``. Its first failure at each step (and in
  Verify) is a ``dry_run_breaches`` result, which the controller records once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from shiprail.domain.contract import TriggerResult, provider_failed
from shiprail.domain.engine import ReleaseState
from shiprail.domain.states import Action, Status
from shiprail.durations import format_duration

NoData = Literal["pause", "rollback"]


@dataclass(frozen=True)
class RolloutPlan:
    """The parts of a resolved release the rollout needs."""

    weights: tuple[float, ...]
    bakes_s: tuple[int, ...]
    analysis_interval_s: int
    verify_window_s: int
    on_no_data: NoData = "pause"
    no_data_limit: int = 3


@dataclass(frozen=True)
class Progress:
    """What the controller knows about the rollout, kept with the release."""

    applied_weight: float | None = None
    step_started: datetime | None = None
    baked_s: float = 0.0
    last_analysis: datetime | None = None
    inconclusive_runs: int = 0
    last_verdict: Literal["pass", "fail", "inconclusive"] | None = None
    paused_for_no_data: bool = False
    provider_failing: bool = False
    """Set with ``paused_for_no_data`` when the analyses without a verdict were the provider failing
    (unreachable, an HTTP error): the pause is shown as the provider's error, not as missing data."""
    streaks: dict[str, int] = field(default_factory=dict)
    bake_from: datetime | None = None
    """Set at a resume: the first analysis after it bakes only the time since, not the paused time
    since the last analysis (which stays the start of what it reads)."""
    dry_run_breached: list[str] = field(default_factory=list)
    """The dry-run triggers whose breach at this step (or in Verify) was already reported: each is
    reported once a step, however many analyses it keeps failing (or flapping) there."""


@dataclass(frozen=True)
class SetWeight:
    """Ask the router for this canary weight."""

    weight: float


@dataclass(frozen=True)
class Analyse:
    """Query the providers and judge every trigger."""


@dataclass(frozen=True)
class Move:
    """Take a lifecycle action (promote, complete, pause, resume, rollback, finish the rollback)."""

    action: Action
    reason: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``until`` (None: until someone acts, e.g. a manual pause)."""

    until: datetime | None


Decision = SetWeight | Analyse | Move | Wait

DATA_IS_BACK = "data is back and every trigger passes"


def target_weight(plan: RolloutPlan, state: ReleaseState) -> float | None:
    """The canary weight the router should hold in ``state`` (None: leave it as it is)."""
    if state.status is Status.ROLLING_OUT and state.step is not None:
        return plan.weights[state.step]
    if state.status is Status.VERIFYING:
        return plan.weights[-1]
    if state.status in (Status.ROLLING_BACK, Status.ROLLED_BACK):
        return 0.0
    return None


def _due(progress: Progress, plan: RolloutPlan, now: datetime) -> datetime:
    start = progress.last_analysis or progress.step_started or now
    return start + timedelta(seconds=plan.analysis_interval_s)


def decide(plan: RolloutPlan, state: ReleaseState, progress: Progress, now: datetime) -> Decision:
    """The next thing to do for this release."""
    status = state.status
    if status is Status.ROLLING_BACK:
        if progress.applied_weight != 0:
            return SetWeight(0.0)
        return Move(Action.FINISH_ROLLBACK, "the router confirmed weight 0")
    if status is Status.PAUSED:
        # The canary still takes traffic while paused: keep judging it, never promote it.
        if progress.applied_weight is None:
            return Wait(None)
        if progress.last_verdict == "fail":
            return Move(Action.ROLLBACK, "the latest analysis failed")
        # A resume recorded but not taken (the controller stopped between the analysis and the
        # move) is taken now, as a recorded failure's rollback is.
        if progress.paused_for_no_data and progress.last_verdict == "pass":
            return Move(Action.RESUME, DATA_IS_BACK)
        due = _due(progress, plan, now)
        return Analyse() if now >= due else Wait(due)
    if status not in (Status.ROLLING_OUT, Status.VERIFYING):
        return Wait(None)
    # A verdict recorded but not acted on (the controller stopped in between) is acted on now.
    if progress.last_verdict == "fail":
        return Move(Action.ROLLBACK, "the latest analysis failed")
    if progress.inconclusive_runs >= plan.no_data_limit:
        cause = ", the metrics provider failing" if progress.provider_failing else ""
        why = f"{progress.inconclusive_runs} analyses in a row without a verdict{cause}"
        return Move(Action.ROLLBACK if plan.on_no_data == "rollback" else Action.PAUSE, why)
    want = target_weight(plan, state)
    assert want is not None
    if progress.applied_weight != want:
        # While a new weight cannot be applied, the weight the router still holds stays judged:
        # a failing canary is rolled back rather than pushed further when the router heals.
        if progress.applied_weight is not None and now >= _due(progress, plan, now):
            return Analyse()
        return SetWeight(want)
    if progress.last_verdict == "pass":
        if status is Status.ROLLING_OUT:
            assert state.step is not None
            bake = plan.bakes_s[state.step]
            if progress.baked_s >= bake:
                # The webhooks and the timeline say this: "baked 0s" would be a bake nobody asked for.
                done = f"baked {format_duration(bake)} at {want:g}%" if bake else f"reached {want:g}%"
                return Move(
                    Action.PROMOTE,
                    f"{done} with every trigger passing" + ("" if bake else " (the step has no bake)"),
                )
        elif progress.baked_s >= plan.verify_window_s:
            # The window is watched time, as a bake is: intervals judged passing, not hours that
            # merely elapsed (a controller down for the whole window, then one passing analysis).
            return Move(Action.COMPLETE, "the validation window passed with every trigger passing")
    due = _due(progress, plan, now)
    return Analyse() if now >= due else Wait(due)


def weight_confirmed(progress: Progress, weight: float, now: datetime) -> Progress:
    """The router confirmed ``weight``: a new step (or Verify, or the revert) starts now."""
    if progress.applied_weight == weight:
        return progress
    return Progress(applied_weight=weight, step_started=now, last_analysis=now, streaks=dict(progress.streaks))


def resumed(progress: Progress, now: datetime) -> Progress:
    """A paused release carries on at ``now``: it needs a fresh passing analysis before it may
    promote, and bakes from ``now`` on (paused time never bakes). A failing analysis recorded but
    not acted on (its controller stopped first) stays: the rollback it decided still happens."""
    verdict: Literal["fail"] | None = "fail" if progress.last_verdict == "fail" else None
    return replace(
        progress,
        last_verdict=verdict,
        inconclusive_runs=0,
        paused_for_no_data=False,
        provider_failing=False,
        bake_from=now,
    )


def paused_by_person(progress: Progress) -> Progress:
    """A person paused the release: only a person resumes it, whatever the data says."""
    return replace(progress, paused_for_no_data=False, provider_failing=False)


def pause_refusal(status: Status, progress: Progress, action: Action, *, by_person: bool) -> str | None:
    """Why ``action`` may not be taken on a paused release now, or None.

    A pause for missing data is the controller's: it resumes the release when data is back, and a
    person may take the pause over (pause it again: a hold that only a person lifts, for one who
    wants to look before the rollout carries on). A person's pause is theirs: the controller never
    resumes it, even on a decision it read before the person paused, and pausing it again would
    change nothing.
    """
    if status is not Status.PAUSED:
        return None
    if action is Action.PAUSE and not progress.paused_for_no_data:
        return "it is already paused by a person; `shiprail release resume` carries on"
    if action is Action.PAUSE and not by_person:
        return "it is already paused for missing data"
    if action is Action.RESUME and not by_person and not progress.paused_for_no_data:
        return "a person paused it, and only a person resumes it"
    return None


def entered(progress: Progress, now: datetime) -> Progress:
    """A new step (or Verify) began without a weight change: its clock and bake start over."""
    return Progress(applied_weight=progress.applied_weight, step_started=now, last_analysis=now)


def analysed(
    plan: RolloutPlan, state: ReleaseState, progress: Progress, results: Sequence[TriggerResult], now: datetime
) -> tuple[Progress, Move | None]:
    """Fold one analysis into the progress; return the move it forces, if any (rollback, pause, resume)."""
    last = progress.last_analysis or progress.step_started or now
    # A dry run is only reported: its failure, its missing data and its held failures act on nothing.
    acting = [r for r in results if not r.dry_run]
    failed = [r for r in acting if r.verdict == "fail"]
    # A failure held back by `consecutive` is data, not a gap: it neither bakes nor counts towards
    # on_no_data (else the no-data limit, 3, would act before a `consecutive` above it could).
    unsure = [r for r in acting if r.verdict == "inconclusive" and not r.held]
    held = [r for r in acting if r.verdict == "inconclusive" and r.held]
    if failed:
        first = failed[0]
        done = replace(progress, last_analysis=now, last_verdict="fail")
        return done, Move(Action.ROLLBACK, f"trigger {first.trigger} fired: {first.reason}")
    if held and not unsure:
        return replace(progress, last_analysis=now, last_verdict="inconclusive"), None
    if unsure:
        runs = progress.inconclusive_runs + 1
        done = replace(progress, last_analysis=now, last_verdict="inconclusive", inconclusive_runs=runs)
        # A provider failing says so before a trigger that merely has no data: it is what to fix.
        failing = [r for r in unsure if provider_failed(r)]
        first = (failing or unsure)[0]
        if state.status is Status.PAUSED and progress.paused_for_no_data:
            return done, None
        if runs < plan.no_data_limit:
            return done, None
        if state.status is Status.PAUSED and plan.on_no_data == "pause":
            return done, None
        cause = ", the metrics provider failing" if failing else ""
        why = f"{runs} analyses in a row without a verdict{cause} ({first.trigger}: {first.reason})"
        if plan.on_no_data == "rollback":
            return done, Move(Action.ROLLBACK, why)
        return replace(done, paused_for_no_data=True, provider_failing=bool(failing)), Move(Action.PAUSE, why)
    # Every trigger passed: the interval that just ended counts towards the bake, capped at one
    # interval so that time the controller was not watching never does. Paused time never bakes.
    if progress.bake_from is not None and progress.bake_from > last:
        last = progress.bake_from
    accrued = min((now - last).total_seconds(), float(plan.analysis_interval_s))
    if state.status is Status.PAUSED or progress.applied_weight != target_weight(plan, state):
        accrued = 0.0
    done = replace(
        progress,
        last_analysis=now,
        last_verdict="pass",
        inconclusive_runs=0,
        baked_s=progress.baked_s + max(0.0, accrued),
    )
    if state.status is Status.PAUSED and progress.paused_for_no_data:
        # Stored still paused for no data: should the move not happen, decide() takes it later.
        return done, Move(Action.RESUME, DATA_IS_BACK)
    return done, None


def dry_run_breaches(progress: Progress, results: Sequence[TriggerResult]) -> tuple[Progress, list[TriggerResult]]:
    """The dry-run triggers that failed in ``results`` for the first time at this step, and the
    progress that remembers them.

    "Would have rolled back": a failure after ``consecutive``, exactly what rolls back an armed
    trigger. Reported once per trigger and step (Verify counts as one): a new step starts the list
    afresh (``weight_confirmed``, ``entered``), so a breach that goes on at more traffic is said
    again, while one that keeps failing or flaps within a step is said once.
    """
    new = [r for r in results if r.dry_run and r.verdict == "fail" and r.trigger not in progress.dry_run_breached]
    if not new:
        return progress, []
    return replace(progress, dry_run_breached=[*progress.dry_run_breached, *(r.trigger for r in new)]), new


def progress_to_json(progress: Progress) -> dict[str, Any]:
    """``progress`` as JSON-ready data (the store keeps it so)."""
    out: dict[str, Any] = {}
    for f in fields(progress):
        value = getattr(progress, f.name)
        out[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def progress_from_json(data: dict[str, Any]) -> Progress:
    """The inverse of ``progress_to_json``; unknown keys are ignored, missing ones default."""
    known = {f.name for f in fields(Progress)}
    values = {k: v for k, v in data.items() if k in known}
    for key in ("step_started", "last_analysis", "bake_from"):
        if values.get(key):
            values[key] = datetime.fromisoformat(values[key])
    return Progress(**values)
