"""What a release's record says happened: places, steps as run, timeline, gates, exposure, outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from shiprail.export import history as h
from shiprail.export import markdown as md
from shiprail.export.record import ReleaseRecord
from tests.unit.export.conftest import CTRL, Chain, at, moved


def test_every_event_is_placed_where_the_release_stood(rolled_back: ReleaseRecord) -> None:
    places = {(w.event.kind, w.event.at): w.place.label(rolled_back) for w in h.walk(rolled_back)}
    assert places[("release.approved", at(0))] == "planned"
    assert places[("router.applied", at(5))] == "step 1 (1%)"
    assert places[("analysis.completed", at(55))] == "paused at step 2 (10%)"
    # A transition is placed where it started from.
    assert places[("release.transitioned", at(65))] == "step 2 (10%)"
    assert places[("router.applied", at(66))] == "rolling back"


def test_the_rollout_as_run_next_to_the_plan(rolled_back: ReleaseRecord) -> None:
    one, two, three, four, verify = h.rollout_as_run(rolled_back)
    assert (one.weight, one.planned_bake_s, one.entered_at, one.applied_at, one.left_at) == (
        1.0,
        1800.0,
        at(4),
        at(5),
        at(35),
    )
    assert (one.baked_s, one.result(), dict(one.verdicts)) == (1800.0, "promoted", {"pass": 3})
    # The pause and the analysis made while paused count for the step they held.
    assert (two.pauses, two.result(), dict(two.verdicts)) == (
        1,
        "rolled back",
        {"pass": 1, "inconclusive": 1, "fail": 1},
    )
    assert two.seconds == 30 * 60
    assert [three.result(), four.result(), verify.result()] == ["not reached"] * 3
    assert verify.planned_bake_s == rolled_back.resolved.verify_window


def test_phases_say_how_each_state_ended(rolled_back: ReleaseRecord) -> None:
    labels = [(p.label, p.left_by) for p in h.phases(rolled_back)]
    assert labels == [
        ("planned", "stage"),
        ("staging", "start"),
        ("step 1 (1%)", "promote"),
        ("step 2 (10%)", "pause"),
        ("paused at step 2 (10%)", "resume"),
        ("step 2 (10%)", "rollback"),
        ("rolling back", "finish_rollback"),
        ("rolled back", None),
    ]


def test_the_timeline_folds_runs_of_analyses_and_one_attempts_gates(rolled_back: ReleaseRecord) -> None:
    lines = [(h.when(e.at)[11:16], e.what, e.note) for e in h.timeline(rolled_back)]
    assert ("09:15", "3 analyses: pass", "09:15:00 to 09:35:00; baked 30m") in lines
    assert ("09:35", "gates of promote: bake pass, analysis pass", "") in lines
    assert ("09:01", "gates of stage: approvals fail", "approvals: 1 of 2 required approvals given") in lines
    assert ("10:05", "analysis: fail", "errors: errors fail") in lines
    assert ("09:35", "router set 10%", "after 3 attempts") in lines
    assert ("10:06", "revert confirmed", "1m after detection (limit 5m: met)") in lines
    # The router's intents are left out: the confirmation says it.
    assert not [line for line in lines if "intent" in line[1]]
    assert h.timeline(rolled_back)[0].who == "alice"
    assert h.timeline(rolled_back)[-1].who == "controller (shiprail)"


def test_a_run_of_analyses_across_midnight_names_the_date_it_ended(rolled_back: ReleaseRecord) -> None:
    # From the analysis of 09:25 on, everything happened a day later: the run of three passing
    # analyses at step 1 went on from 09:15 on the first day to 09:35 on the next.
    later = [replace(e, at=e.at + timedelta(days=1)) if e.at >= at(25) else e for e in rolled_back.events]
    lines = [(h.when(e.at), e.what, e.note) for e in h.timeline(replace(rolled_back, events=later))]
    assert ("2026-03-01 09:15:00", "3 analyses: pass", "09:15:00 to 2026-03-02 09:35:00; baked 30m") in lines


def test_gates_are_summarised_per_action_place_and_gate(rolled_back: ReleaseRecord) -> None:
    [approvals, *_] = h.gate_summaries(rolled_back)
    assert (approvals.action, approvals.gate, approvals.place, approvals.attempts) == (
        "stage",
        "approvals",
        "planned",
        2,
    )
    assert (approvals.final, approvals.first_failure()) == ("pass", "1 of 2 required approvals given")
    assert h.gate_places(rolled_back) == ["planned", "planned", "staging", "step 1 (1%)", "step 1 (1%)", "rolling back"]


def test_override_notes_are_cut_from_gate_reasons() -> None:
    assert h.bare_reason("the load test has not run; overridden: dana: reasons") == "the load test has not run"


def test_exposure_counts_each_weight_until_the_revert(rolled_back: ReleaseRecord) -> None:
    e = h.exposure(rolled_back)
    assert e.per_weight == [(1.0, 30 * 60), (10.0, 31 * 60)]
    assert e.full_traffic_s == 0.01 * 1800 + 0.1 * 1860
    assert h.exposure_text(e) == "1% for 30m, 10% for 31m; as much traffic as 100% for 3m24s"


def test_the_outcome_of_a_rollback_says_where_why_and_how_fast(rolled_back: ReleaseRecord) -> None:
    out = h.outcome(rolled_back)
    assert out.headline == "rolled back at step 2 (10%)"
    assert out.detail == (
        "Trigger `errors` fired: 0.08 above the limit 0.01, detected at 2026-03-01 10:05:00 UTC; shiprail rolled the "
        "release back on its own, and all traffic was back on 2.3.1 at 2026-03-01 10:06:00 UTC (1m after detection)."
    )
    assert h.rollback_places(rolled_back) == ["step 2 (10%)"]


def test_the_outcome_of_a_manual_rollback_and_of_a_release_in_flight(rolled_back: ReleaseRecord) -> None:
    from dataclasses import replace

    manual = replace(
        rolled_back,
        rollbacks=[
            rolled_back.rollbacks[0] | {"initiated_by": "bob", "cause": "manual", "reason": "pager: 5xx on checkout"}
        ],
    )
    assert h.outcome(manual).detail == (
        "bob rolled the release back by hand at 2026-03-01 10:05:00 UTC (“pager: 5xx on checkout”), and all "
        "traffic was back on 2.3.1 at 2026-03-01 10:06:00 UTC (1m after the decision)."
    )
    staging = replace(manual, rollbacks=[manual.rollbacks[0] | {"weight_before": None}])
    assert h.outcome(staging).headline == "rolled back at step 2 (10%)"
    assert h.outcome(staging).detail.endswith("(“pager: 5xx on checkout”); no traffic had moved to 2.4.0.")
    # Rolled back while paused: the place, then that it was paused (not "from paused at step 2 (10%) (10%)").
    resumed = [e for e in rolled_back.events if e.kind == "release.transitioned" and '"resume"' in e.payload]
    paused = replace(rolled_back, events=[e for e in rolled_back.events if e not in resumed])
    assert len(resumed) == 1
    assert h.rollback_places(paused) == ["paused at step 2 (10%)"]
    assert h.outcome(paused).headline == "rolled back at step 2 (10%) while paused"
    running = replace(rolled_back, status="rolling_out", step=1, rollbacks=[])
    assert (h.outcome(running).headline, h.outcome(running).ended_at) == ("in progress: rolling_out (step 2)", None)


def test_metrics_per_step_take_the_last_analysis_of_each_step(rolled_back: ReleaseRecord) -> None:
    steps = h.metrics_per_step(rolled_back)
    assert [(m.run.number, m.count, m.last_verdict) for m in steps] == [("1", 1, "pass"), ("2", 1, "fail")]
    assert steps[1].triggers[0]["value"] == 0.08


def test_verify_not_reached(rolled_back: ReleaseRecord) -> None:
    v = h.verify_report(rolled_back)
    assert (v.reached, v.on_call, v.opened_at) == (False, "bob", None)


def test_the_verify_window_opens_when_the_release_enters_verify(rolled_back: ReleaseRecord) -> None:
    c = Chain()
    c.add(0, "alice", "release.created", service="checkout", version="2.4.0", baseline="2.3.1")
    moved(c, 0, "alice", "start", "staging", "rolling_out (step 4)", 100.0)
    c.add(1, CTRL, "router.applied", weight=100.0, intent_id=1, attempts=1, seconds=0.1, found_applied=False)
    moved(c, 10, CTRL, "promote", "rolling_out (step 4)", "verifying", None)
    c.add(10, CTRL, "verify.started", on_call="bob", window_s=86400, ends_at=at(1450).isoformat(), probes=[])
    # The router found at 60% in Verify, and set to 100% again: the window it watches goes on.
    c.add(30, CTRL, "router.applied", weight=100.0, intent_id=2, attempts=1, seconds=0.1, found_applied=False)
    record = replace(rolled_back, status="verifying", step=None, events=c.rows, rollbacks=[], analyses=[])
    v = h.verify_report(record)
    assert (v.reached, v.opened_at, v.ends_at) == (True, at(10), at(1450).isoformat())
    assert "| Window opened | 2026-03-01 09:10:00 (when the release entered Verify) |" in md.verify_section(record)


def test_formatting() -> None:
    assert [h.span(x) for x in (None, 0.42, 45, 90, 5400, 86400)] == ["–", "0.42s", "45s", "1m30s", "1h30m", "1d"]
    assert [h.number(x) for x in (None, 0.000123456, 3, True)] == ["–", "0.0001235", "3", "true"]
    assert h.when("2026-03-01T09:00:00+00:00") == "2026-03-01 09:00:00"


def test_a_regression_trigger_in_words_says_whether_it_tolerates_bursts() -> None:
    from shiprail.schema.plan import Regression, Trigger

    plain = Trigger(name="errors", metric="error_rate", regression=Regression(alpha=0.01))
    tolerant = Trigger(name="errors", metric="error_rate", regression=Regression(alpha=0.05, bursts="tolerate"))
    assert h.trigger_text(plain) == (
        "errors: error_rate worse than the baseline by a regression test (alpha 0.01, min ratio 1)"
    )
    assert h.trigger_text(tolerant) == (
        "errors: error_rate worse than the baseline by a regression test (alpha 0.05, min ratio 1, bursts tolerated)"
    )


def test_verify_is_named_where_the_release_stood_in_it(rolled_back: ReleaseRecord) -> None:
    # The status is stored "verifying"; its place is "verify" (it used to be blank, so a rollback
    # in Verify read "rolled back from its rollout").
    assert h.Place("verifying").label(rolled_back) == "verify"
    assert h.Place("paused", paused_from="verifying").label(rolled_back) == "paused at verify"
    assert h.Place("rolling_back").label(rolled_back) == "rolling back"


def test_on_call_handovers_show_in_the_timeline_and_verify_md_and_json(rolled_back: ReleaseRecord) -> None:
    from shiprail.export.package import verify_json

    c = Chain()
    c.add(0, "alice", "release.created", service="checkout", version="2.4.0", baseline="2.3.1")
    moved(c, 0, "alice", "start", "staging", "rolling_out (step 4)", 100.0)
    c.add(5, "bob", "on_call.handed_over", **{"from": "bob"}, to="erin", reason=None)
    moved(c, 10, CTRL, "promote", "rolling_out (step 4)", "verifying", None)
    c.add(10, CTRL, "verify.started", on_call="erin", window_s=86400, ends_at=at(1450).isoformat(), probes=[])
    c.add(490, "dana", "on_call.handed_over", **{"from": "erin"}, to="bob", reason="night shift")
    record = replace(rolled_back, status="verifying", step=None, events=c.rows, rollbacks=[], analyses=[])
    v = h.verify_report(record)
    assert v.on_call == "bob"
    assert v.handovers == [
        {"at": at(5), "by": "bob", "from": "bob", "to": "erin", "reason": None},
        {"at": at(490), "by": "dana", "from": "erin", "to": "bob", "reason": "night shift"},
    ]
    lines = [(h.when(e.at)[11:16], e.what, e.note, e.who) for e in h.timeline(record)]
    assert ("09:05", "on call handed over: bob → erin", "", "bob") in lines
    assert ("09:10", "validation window opened", "on call erin, ends 2026-03-02 09:10:00", "controller (shiprail)") in (
        lines
    )
    assert ("17:10", "on call handed over: erin → bob", "night shift", "dana") in lines
    section = md.verify_section(record)
    assert "| On call | bob |" in section
    assert (
        "| handed over | from | to | by | reason |\n| --- | --- | --- | --- | --- |\n"
        "| 2026-03-01 09:05:00 | bob | erin | bob |  |\n"
        "| 2026-03-01 17:10:00 | erin | bob | dana | night shift |"
    ) in section
    out = verify_json(record)
    assert (out["on_call"], out["handovers"]) == (
        "bob",
        [
            {"at": at(5).isoformat(), "by": "bob", "from": "bob", "to": "erin", "reason": None},
            {"at": at(490).isoformat(), "by": "dana", "from": "erin", "to": "bob", "reason": "night shift"},
        ],
    )


def test_the_timeline_names_the_release_hash_an_approval_approved(rolled_back: ReleaseRecord) -> None:
    # bob's approval predates the resolved hash in the audit event: only the plan hash is named.
    approved = [(e.who, e.note) for e in h.timeline(rolled_back) if e.what == "approved"]
    assert approved == [("bob", "plan abababababab"), ("carol", "plan abababababab, release efefefefefef")]


def test_a_hold_the_controller_announced_shows_in_the_timeline(rolled_back: ReleaseRecord) -> None:
    c = Chain()
    c.add(0, "alice", "release.created", service="checkout", version="2.4.0", baseline="2.3.1")
    moved(c, 0, "alice", "start", "staging", "rolling_out (step 1)", 1.0)
    reason = "freeze 'holidays' until 2027-01-04 09:00 Europe/Berlin"
    c.add(30, CTRL, "release.held", action="promote", gate="freeze", reason=reason, freeze="holidays", weight=1.0)
    record = replace(rolled_back, status="rolling_out", step=0, events=c.rows, rollbacks=[], analyses=[])
    lines = [(h.when(e.at)[11:16], e.what, e.note) for e in h.timeline(record)]
    assert ("09:30", "promotion held (freeze, announced)", reason) in lines


def test_what_refused_a_gate_an_override_passed_reads_as_words() -> None:
    assert h.refusal_text("freeze", [{"name": "maintenance", "until": "2026-12-01T06:00:00+01:00"}]) == (
        "freeze: maintenance until 2026-12-01 05:00:00 UTC"
    )
    assert h.refusal_text("on_call", ["erin"]) == "on_call: erin"
    assert h.refusal_text("qa", ["1", "3"]) == "qa: 1, 3"
    assert h.refusal_text("analysis", []) == "analysis: none"  # failed with no trigger failing


def test_whether_an_approval_counts_is_read_from_the_latest_evaluation_at_stage_not_the_last_listed(
    rolled_back: ReleaseRecord,
) -> None:
    """gates.json's evaluations listed out of order (each still matching its event by id) made the
    package derive whether an approval counts from an older evaluation: the newest one decides."""
    first, passed = (g for g in rolled_back.gates if g["action"] == "stage")
    gates = [
        passed | {"evidence": {"approvers": ["bob", "carol"], "required": 2}},
        first | {"evidence": {"approvers": ["bob"], "required": 2}},
    ]
    record = replace(rolled_back, gates=gates)
    approval = {"by": "carol", "current": True}
    assert h.approval_counts(record, approval) is True


def test_an_author_the_approvals_gate_counted_at_stage_is_shown_counting(rolled_back: ReleaseRecord) -> None:
    """carol created the release and approved it, and Stage counted her (a shiprail before the author
    rule judged it): the package said "no (carol created this release)", rewriting what the gate
    decided. After Stage its evaluation decides, for authors as for lapsed approvers."""
    c = Chain()
    c.add(0, "carol", "release.created", service="checkout", version="2.4.0", baseline="2.3.1", owner="alice")
    passed = next(g for g in rolled_back.gates if g["action"] == "stage" and g["verdict"] == "pass")
    counted = passed | {"evidence": {"approvers": ["bob", "carol"], "required": 2}}
    record = replace(rolled_back, events=c.rows, gates=[counted])
    assert h.approval_counts(record, {"by": "carol", "current": True}) is True
    planned = replace(record, status="planned", gates=[])
    assert h.approval_counts(planned, {"by": "carol", "current": True}) is False
