"""Rollout decisions on a simulated clock: a 30-hour release in milliseconds, and every boundary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shiprail.domain.contract import Sample, Streaks, TriggerResult, judge
from shiprail.domain.engine import GateResult, ReleaseState, transition
from shiprail.domain.rollout import (
    Analyse,
    Move,
    Progress,
    RolloutPlan,
    SetWeight,
    Wait,
    analysed,
    decide,
    dry_run_breaches,
    entered,
    pause_refusal,
    paused_by_person,
    progress_from_json,
    progress_to_json,
    resumed,
    weight_confirmed,
)
from shiprail.domain.states import Action, Gate, Status
from shiprail.schema.plan import Trigger

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PLAN = RolloutPlan(
    weights=(1, 10, 50, 100),
    bakes_s=(30 * 60, 2 * 3600, 4 * 3600, 0),
    analysis_interval_s=60,
    verify_window_s=24 * 3600,
)
PASS = [TriggerResult("errors", "pass", "0.001 within the limit 0.01")]
FAIL = [TriggerResult("errors", "fail", "0.2 above the limit 0.01")]
UNSURE = [TriggerResult("errors", "inconclusive", "canary: no data")]
ALL_PASS = {g: GateResult(g, True, "ok") for g in Gate}

Judge = Callable[[datetime], list[TriggerResult]]


def simulate(
    judge: Judge, plan: RolloutPlan = PLAN, limit: int = 100_000, said: list[str] | None = None
) -> tuple[ReleaseState, list[str]]:
    """Run the decisions against a world where the router always confirms, until the release ends.

    ``said`` collects the dry-run breaches the controller would record, as ``seconds trigger at place``.
    """
    state = ReleaseState(Status.ROLLING_OUT, step=0)
    progress = Progress()
    now = T0
    log: list[str] = []
    for _ in range(limit):
        d = decide(plan, state, progress, now)
        if isinstance(d, SetWeight):
            progress = weight_confirmed(progress, d.weight, now)
            log.append(f"{(now - T0).total_seconds():.0f} weight {d.weight:g}")
            continue
        if isinstance(d, Analyse):
            results = judge(now)
            progress, move = analysed(plan, state, progress, results, now)
            progress, breaches = dry_run_breaches(progress, results)
            if said is not None:
                said.extend(f"{(now - T0).total_seconds():.0f} {b.trigger} at {state.describe()}" for b in breaches)
            if move is None:
                continue
            d = move
        if isinstance(d, Move):
            outcome = transition(state, d.action, steps=len(plan.weights), results=ALL_PASS)
            state = outcome.state
            log.append(f"{(now - T0).total_seconds():.0f} {d.action.value} -> {state.describe()}")
            if d.action in (Action.PROMOTE,):
                progress = entered(progress, now)
            if d.action is Action.RESUME:  # as Releases records it
                progress = resumed(progress, now)
            if state.status in (Status.COMPLETE, Status.ROLLED_BACK):
                return state, log
            continue
        assert isinstance(d, Wait)
        if d.until is None:
            return state, log
        now = d.until
    raise AssertionError("the release never ended")


def test_a_healthy_release_runs_thirty_hours_in_milliseconds() -> None:
    started = time.perf_counter()
    state, log = simulate(lambda now: PASS)
    elapsed = time.perf_counter() - started
    assert state.status is Status.COMPLETE
    assert log == [
        "0 weight 1",
        "1800 promote -> rolling_out (step 2)",
        "1800 weight 10",
        "9000 promote -> rolling_out (step 3)",
        "9000 weight 50",
        "23400 promote -> rolling_out (step 4)",
        "23400 weight 100",
        "23460 promote -> verifying",
        "109860 complete -> complete",
    ]
    assert elapsed < 2.0


def test_one_failure_rolls_back_at_the_next_analysis_and_reverts() -> None:
    fail_at = T0 + timedelta(minutes=45)  # during the 10% step
    state, log = simulate(lambda now: FAIL if now >= fail_at else PASS)
    assert state.status is Status.ROLLED_BACK
    assert log[-4:] == [
        "1800 weight 10",
        "2700 rollback -> rolling_back",
        "2700 weight 0",
        "2700 finish_rollback -> rolled_back",
    ]


def test_inconclusive_never_promotes_and_does_not_bake() -> None:
    plan = RolloutPlan(
        weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=60, verify_window_s=600, no_data_limit=1000
    )
    gap = (T0 + timedelta(minutes=3), T0 + timedelta(minutes=8))  # five minutes without data
    state, log = simulate(lambda now: UNSURE if gap[0] < now <= gap[1] else PASS, plan)
    assert state.status is Status.COMPLETE
    # 10 minutes of bake needs 10 passing minutes: the 5 blind minutes push promotion to minute 15.
    assert log[1] == "900 promote -> rolling_out (step 2)"


def test_no_data_pauses_after_the_limit_and_resumes_when_data_returns() -> None:
    plan = RolloutPlan(weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=60, verify_window_s=600)
    gap = (T0 + timedelta(minutes=3), T0 + timedelta(minutes=8))
    state, log = simulate(lambda now: UNSURE if gap[0] < now <= gap[1] else PASS, plan)
    assert state.status is Status.COMPLETE
    assert log[1:3] == [
        "360 pause -> paused (from rolling_out)",  # third inconclusive analysis in a row
        "540 resume -> rolling_out (step 1)",  # first analysis with data again
    ]
    # 3 passing minutes before the gap; the resuming analysis was made while paused and does not
    # bake; 7 more passing minutes after it.
    assert log[3] == "960 promote -> rolling_out (step 2)"


def test_no_data_rolls_back_when_the_contract_says_so() -> None:
    plan = RolloutPlan(
        weights=(1, 100),
        bakes_s=(600, 0),
        analysis_interval_s=60,
        verify_window_s=600,
        on_no_data="rollback",
        no_data_limit=2,
    )
    state, log = simulate(lambda now: UNSURE, plan)
    assert state.status is Status.ROLLED_BACK
    assert log[1] == "120 rollback -> rolling_back"


def test_failures_held_by_consecutive_are_not_no_data_and_the_nth_rolls_back_as_the_trigger() -> None:
    """consecutive: 6 with the no-data limit at 3: held failures are data, not a gap in it."""
    plan = RolloutPlan(
        weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=60, verify_window_s=600, on_no_data="rollback"
    )
    trig, streaks = Trigger(name="errors", metric="error_rate", above=0.01, consecutive=6), Streaks()
    state, progress = ReleaseState(Status.ROLLING_OUT, step=0), Progress(applied_weight=1, step_started=T0)
    moves = []
    for minute in range(1, 7):
        result = streaks.apply(trig, judge(trig, Sample(0.2, 1000)))
        progress, move = analysed(plan, state, progress, [result], T0 + timedelta(minutes=minute))
        moves.append(None if move is None else move.reason)
    assert moves[:5] == [None] * 5
    assert moves[5] == "trigger errors fired: 0.2 above the limit 0.01"
    assert progress.baked_s == 0 and progress.inconclusive_runs == 0


def test_the_validation_window_is_watched_time_not_hours_that_merely_passed() -> None:
    """A controller down for the whole window, then one passing analysis: Verify is not complete."""
    plan = RolloutPlan(weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=60, verify_window_s=86_400)
    state = ReleaseState(Status.VERIFYING, step=None)
    progress = Progress(applied_weight=100, step_started=T0, last_analysis=T0)
    late = T0 + timedelta(seconds=86_401)
    progress, move = analysed(plan, state, progress, PASS, late)
    assert move is None and progress.baked_s == 60
    assert decide(plan, state, progress, late) == Wait(late + timedelta(seconds=60))
    # Watched, interval after interval, it completes once a window's worth of passing time is judged.
    at = late
    while not isinstance(decide(plan, state, progress, at), Move):
        at += timedelta(seconds=60)
        progress, _ = analysed(plan, state, progress, PASS, at)
    assert progress.baked_s == 86_400
    assert decide(plan, state, progress, at) == Move(
        Action.COMPLETE, "the validation window passed with every trigger passing"
    )


def test_bake_boundary_promotes_exactly_when_the_bake_is_done() -> None:
    progress = Progress(
        applied_weight=1, step_started=T0, last_analysis=T0 + timedelta(seconds=1740), baked_s=1740, last_verdict="pass"
    )
    state = ReleaseState(Status.ROLLING_OUT, step=0)
    at = T0 + timedelta(seconds=1799)
    assert decide(PLAN, state, progress, at) == Wait(T0 + timedelta(seconds=1800))
    progress, move = analysed(PLAN, state, progress, PASS, T0 + timedelta(seconds=1800))
    assert move is None and progress.baked_s == 1800
    # The reason speaks as the records do (30m, not 1800s): it is the note of the retrospective's timeline.
    assert decide(PLAN, state, progress, T0 + timedelta(seconds=1800)) == Move(
        Action.PROMOTE, "baked 30m at 1% with every trigger passing"
    )


def test_a_step_without_a_bake_is_not_said_to_have_baked_0s() -> None:
    # The webhook of entering Verify read "baked 0s at 100% with every trigger passing".
    state = ReleaseState(Status.ROLLING_OUT, step=3)
    progress = Progress(applied_weight=100, step_started=T0, last_analysis=T0, last_verdict="pass")
    assert decide(PLAN, state, progress, T0) == Move(
        Action.PROMOTE, "reached 100% with every trigger passing (the step has no bake)"
    )


def test_time_nobody_watched_does_not_bake() -> None:
    state = ReleaseState(Status.ROLLING_OUT, step=0)
    progress = Progress(applied_weight=1, step_started=T0, last_analysis=T0, last_verdict="pass")
    progress, _ = analysed(PLAN, state, progress, PASS, T0 + timedelta(hours=5))
    assert progress.baked_s == 60


def test_a_manual_pause_keeps_the_contract_armed_but_never_bakes_or_resumes() -> None:
    state = ReleaseState(Status.PAUSED, step=1, paused_from=Status.ROLLING_OUT)
    progress = Progress(applied_weight=10, step_started=T0, last_analysis=T0, baked_s=120, last_verdict="pass")
    assert decide(PLAN, state, progress, T0 + timedelta(seconds=59)) == Wait(T0 + timedelta(seconds=60))
    assert decide(PLAN, state, progress, T0 + timedelta(seconds=60)) == Analyse()
    after, move = analysed(PLAN, state, progress, PASS, T0 + timedelta(seconds=60))
    assert (after.baked_s, move) == (120, None)
    after, move = analysed(PLAN, state, progress, FAIL, T0 + timedelta(seconds=60))
    assert move is not None and move.action is Action.ROLLBACK


def test_paused_time_never_bakes_not_even_the_part_before_a_resume() -> None:
    plan = RolloutPlan(weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=5, verify_window_s=600)
    paused = ReleaseState(Status.PAUSED, step=0, paused_from=Status.ROLLING_OUT)
    progress = Progress(applied_weight=1, step_started=T0, last_analysis=T0, baked_s=5, last_verdict="pass")
    progress = paused_by_person(progress)
    # Analyses go on while paused (the canary still takes traffic); none bakes.
    progress, _ = analysed(plan, paused, progress, PASS, T0 + timedelta(seconds=5))
    assert progress.baked_s == 5
    # Resumed 4.6 s after that analysis; the next one, 0.4 s later, bakes 0.4 s, not 5.
    resume_at = T0 + timedelta(seconds=9.6)
    progress = resumed(progress, resume_at)
    running = ReleaseState(Status.ROLLING_OUT, step=0)
    assert decide(plan, running, progress, resume_at) == Wait(T0 + timedelta(seconds=10))
    progress, _ = analysed(plan, running, progress, PASS, T0 + timedelta(seconds=10))
    assert progress.baked_s == 5.4
    # The analysis still reads from the last one (its window), and the mark survives the store.
    assert progress.last_analysis == T0 + timedelta(seconds=10)
    assert progress_from_json(progress_to_json(progress)) == progress
    progress, _ = analysed(plan, running, progress, PASS, T0 + timedelta(seconds=15))
    assert progress.baked_s == 10.4


def test_a_resume_decided_but_not_taken_is_taken_after_a_restart() -> None:
    # No data paused the release; the analysis that saw data again was stored, then the
    # controller died before the resume. The stored progress must still say so.
    plan = RolloutPlan(weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=60, verify_window_s=600)
    paused = ReleaseState(Status.PAUSED, step=0, paused_from=Status.ROLLING_OUT)
    progress = Progress(
        applied_weight=1, step_started=T0, last_analysis=T0, paused_for_no_data=True, inconclusive_runs=3
    )
    stored, move = analysed(plan, paused, progress, PASS, T0 + timedelta(seconds=60))
    assert move == Move(Action.RESUME, "data is back and every trigger passes")
    restarted = progress_from_json(progress_to_json(stored))
    assert decide(plan, paused, restarted, T0 + timedelta(seconds=61)) == move
    # A person's pause is not resumed by data: only by a person.
    by_person = paused_by_person(restarted)
    assert decide(plan, paused, by_person, T0 + timedelta(seconds=61)) == Wait(T0 + timedelta(seconds=120))


def test_a_paused_release_that_never_held_a_weight_waits() -> None:
    state = ReleaseState(Status.PAUSED, step=0, paused_from=Status.ROLLING_OUT)
    assert decide(PLAN, state, Progress(), T0) == Wait(None)


def test_a_rollback_is_not_done_until_weight_zero_is_confirmed() -> None:
    state = ReleaseState(Status.ROLLING_BACK)
    assert decide(PLAN, state, Progress(applied_weight=10), T0) == SetWeight(0.0)
    assert decide(PLAN, state, Progress(applied_weight=None), T0) == SetWeight(0.0)
    done = decide(PLAN, state, Progress(applied_weight=0), T0)
    assert isinstance(done, Move) and done.action is Action.FINISH_ROLLBACK


def test_failure_during_verify_rolls_back() -> None:
    state = ReleaseState(Status.VERIFYING)
    progress = Progress(applied_weight=100, step_started=T0, last_analysis=T0, last_verdict="pass")
    _, move = analysed(PLAN, state, progress, FAIL, T0 + timedelta(hours=20))
    assert move == Move(Action.ROLLBACK, "trigger errors fired: 0.2 above the limit 0.01")


def test_a_forty_hour_release_with_an_outage_bakes_only_what_was_watched() -> None:
    plan = RolloutPlan(
        weights=(1, 10, 50, 100), bakes_s=(3600, 4 * 3600, 10 * 3600, 0), analysis_interval_s=60, verify_window_s=86400
    )
    # Two hours without data in the 50% step (it starts at 5:00): paused after 3 blind minutes.
    gap = (T0 + timedelta(hours=6), T0 + timedelta(hours=8))
    state, log = simulate(lambda now: UNSURE if gap[0] < now <= gap[1] else PASS, plan)
    assert state.status is Status.COMPLETE
    assert log == [
        "0 weight 1",
        "3600 promote -> rolling_out (step 2)",
        "3600 weight 10",
        "18000 promote -> rolling_out (step 3)",
        "18000 weight 50",
        "21780 pause -> paused (from rolling_out)",
        "28860 resume -> rolling_out (step 3)",
        # 1 h watched before the gap, none while paused, 9 h after the resuming look.
        "61260 promote -> rolling_out (step 4)",
        "61260 weight 100",
        "61320 promote -> verifying",
        "147720 complete -> complete",
    ]
    assert int(log[-1].split()[0]) / 3600 > 40


def test_who_may_pause_or_resume_a_paused_release() -> None:
    no_data, held = Progress(paused_for_no_data=True), Progress(paused_for_no_data=False)
    cases = {
        (Status.PAUSED, "no data", Action.PAUSE, True): None,  # a person takes the pause over
        (Status.PAUSED, "no data", Action.PAUSE, False): "it is already paused for missing data",
        (Status.PAUSED, "no data", Action.RESUME, False): None,  # data is back
        (Status.PAUSED, "no data", Action.RESUME, True): None,
        (Status.PAUSED, "held", Action.PAUSE, True): (
            "it is already paused by a person; `shiprail release resume` carries on"
        ),
        (Status.PAUSED, "held", Action.RESUME, False): "a person paused it, and only a person resumes it",
        (Status.PAUSED, "held", Action.RESUME, True): None,
        (Status.PAUSED, "held", Action.ROLLBACK, False): None,
        (Status.ROLLING_OUT, "held", Action.PAUSE, True): None,
    }
    for (status, kind, action, by_person), want in cases.items():
        progress = no_data if kind == "no data" else held
        assert pause_refusal(status, progress, action, by_person=by_person) == want, (status, kind, action)


# A dry-run trigger's verdicts: judged like the others, acted on never.
DRY_FAIL = TriggerResult("error-regression", "fail", "p = 0.001 ≤ α 0.01", 0.001, 0.01, dry_run=True)
DRY_PASS = TriggerResult("error-regression", "pass", "p = 0.4 > α 0.01", 0.4, 0.01, dry_run=True)
DRY_UNSURE = TriggerResult("error-regression", "inconclusive", "canary: no data", dry_run=True)
HEALTHY_LOG = simulate(lambda now: PASS)[1]


def test_a_breaching_dry_run_never_rolls_back_and_is_reported_once_a_step() -> None:
    """From minute 10 on the dry run fails at every analysis: the release still runs to 100 % and
    completes at the very times of a healthy one; the breach is reported at its first failing
    analysis at each step and in Verify, not at each of the ~1,800 analyses that failed."""
    said: list[str] = []
    breach_from = T0 + timedelta(minutes=10)
    state, log = simulate(lambda now: PASS + ([DRY_FAIL] if now >= breach_from else [DRY_PASS]), said=said)
    assert state.status is Status.COMPLETE
    assert log == HEALTHY_LOG
    assert said == [
        "600 error-regression at rolling_out (step 1)",
        "1860 error-regression at rolling_out (step 2)",
        "9060 error-regression at rolling_out (step 3)",
        "23460 error-regression at rolling_out (step 4)",
        "23520 error-regression at verifying",
    ]


def test_a_dry_run_flapping_within_a_step_is_reported_once() -> None:
    def flaps(now: datetime) -> list[TriggerResult]:
        # Fails every other minute of the first step only.
        return [*PASS, DRY_FAIL if now < T0 + timedelta(minutes=30) and now.minute % 2 else DRY_PASS]

    said: list[str] = []
    state, log = simulate(flaps, said=said)
    assert (state.status, log) == (Status.COMPLETE, HEALTHY_LOG)
    assert said == ["60 error-regression at rolling_out (step 1)"]


def test_a_dry_run_without_data_never_pauses_nor_holds_the_bake() -> None:
    """on_no_data does not apply to a dry run: with no data ever, the release is healthy's to the second."""
    plan = replace(PLAN, on_no_data="rollback", no_data_limit=1)
    state, log = simulate(lambda now: [*PASS, DRY_UNSURE], plan)
    assert (state.status, log) == (Status.COMPLETE, HEALTHY_LOG)


def test_a_dry_runs_verdict_is_kept_and_an_armed_failure_still_rolls_back_beside_it() -> None:
    plan = RolloutPlan(weights=(1, 100), bakes_s=(600, 0), analysis_interval_s=60, verify_window_s=600)
    state, progress = ReleaseState(Status.ROLLING_OUT, step=0), Progress(applied_weight=1, step_started=T0)
    progress, move = analysed(plan, state, progress, [*PASS, DRY_FAIL], T0 + timedelta(minutes=1))
    assert (move, progress.last_verdict, progress.baked_s) == (None, "pass", 60.0)
    progress, said = dry_run_breaches(progress, [*PASS, DRY_FAIL])
    assert (said, progress.dry_run_breached) == ([DRY_FAIL], ["error-regression"])
    # Stored and read back, it is still known to have been said.
    assert progress_from_json(progress_to_json(progress)).dry_run_breached == ["error-regression"]
    assert dry_run_breaches(progress, [*PASS, DRY_FAIL]) == (progress, [])
    _, move = analysed(plan, state, progress, [*FAIL, DRY_FAIL], T0 + timedelta(minutes=2))
    assert move == Move(Action.ROLLBACK, "trigger errors fired: 0.2 above the limit 0.01")
    # A new step starts the list afresh.
    assert weight_confirmed(progress, 100, T0).dry_run_breached == []
    assert entered(progress, T0).dry_run_breached == []


def test_a_pause_for_a_failing_provider_names_it_before_a_trigger_with_no_data() -> None:
    """Both are analyses without a verdict, but a provider error is what to fix: the pause's reason
    says the provider failed and quotes its error, and the progress remembers why it paused."""
    state, progress = ReleaseState(Status.ROLLING_OUT, step=0), Progress(applied_weight=1, step_started=T0)
    failing = TriggerResult(
        "slow", "inconclusive", "canary: provider error: web: the JSON endpoint … answered HTTP 500"
    )
    move = None
    for minute in range(1, 4):
        progress, move = analysed(PLAN, state, progress, [*UNSURE, failing], T0 + timedelta(minutes=minute))
    assert move == Move(
        Action.PAUSE,
        "3 analyses in a row without a verdict, the metrics provider failing (slow: canary: provider error: web: "
        "the JSON endpoint … answered HTTP 500)",
    )
    assert (progress.paused_for_no_data, progress.provider_failing) == (True, True)
    assert progress_from_json(progress_to_json(progress)).provider_failing
    assert not resumed(progress, T0).provider_failing
    assert not paused_by_person(progress).provider_failing
