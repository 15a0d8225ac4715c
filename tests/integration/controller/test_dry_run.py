"""A dry-run trigger through the controller, on a real store and a simulated clock.

As Argo Rollouts' dryRun metrics: the sequential judge trialled live (``dry_run: true``) finds the
canary worse, which would roll it back; the release carries on to 100 % and completes at the very
time a healthy one does, and the breach is recorded once a step (``dry_run.breached``), stored with
every analysis and shown by release show, its JSON, the status page, the release package and the
retrospective, and /metrics.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console

from shiprail import describe
from shiprail.cli.watch import rollout_lines
from shiprail.clock import SimulatedClock
from shiprail.controller.health import VERDICTS, ControllerHealth
from shiprail.export.package import build
from shiprail.export.record import load_record
from shiprail.project import check_plan_file, open_project
from shiprail.releases import Releases, _analysis_gate
from shiprail.retro import render_retrospective
from shiprail.serve.pages import release_page
from shiprail.store import audit
from shiprail.store.db import Store
from shiprail.store.rollouts import DRY_RUN_EVENT, latest_analysis
from tests.integration.controller.test_controller import (
    FULL,
    INTERVAL,
    PLAN,
    REASON,
    REGRESSION_TRIGGER,
    FakeRouter,
    controller,
    kinds,
    transitions,
    tripled,
)
from tests.support.overrides import override
from tests.support.plans import without_regression_triggers

WOULD = (
    "dry run: trigger error-regression would have rolled back rolling_out (step {step}) at {weight}%: canary worse "
    "than baseline: canary 0.300% vs"
)


@pytest.fixture
def trial(project: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> tuple[Releases, str]:
    """The example release with the sequential judge on trial (dry_run: true), at its first step;
    its engineering audience hears of the dry run's breaches (``dry_run``)."""
    monkeypatch.chdir(project)
    text = PLAN.read_text()
    heard = "on: [approved, started, step, paused, rolled_back, override, completed, held]"
    assert heard in text
    text = text.replace(heard, heard[:-1] + ", dry_run]")
    text = text[: text.index("  probes:")].replace("rollout:\n", f"rollout:\n  analysis_interval: {INTERVAL}m\n")
    trigger = REGRESSION_TRIGGER + "      dry_run: true\n"
    text = without_regression_triggers(text)  # the example's armed regression triggers would judge too
    PLAN.write_text(text.replace("    - name: complaints\n", trigger + "    - name: complaints\n"))
    svc = Releases(store, SimulatedClock(), open_project(project).policy)
    rid = svc.create(check_plan_file(PLAN), "alice").id
    for reason in ("Holiday rota needs two approvers.", "Load tests now run in the pipeline."):
        override(svc, rid, "dana", REASON)
        svc.close_postmortem(rid, "dana", reason)
    return svc, rid


def breaches(svc: Releases, rid: str) -> list[dict[str, object]]:
    with svc.store.transaction() as s:
        return [json.loads(r.payload) for r in audit.rows(s) if r.release_id == rid and r.kind == DRY_RUN_EVENT]


def test_a_breaching_dry_run_never_rolls_back_is_recorded_once_a_step_shown_everywhere_and_told(
    trial: tuple[Releases, str],
) -> None:
    # One simulated 31-hour release serves the three parts (each ran its own before, the same run).
    from tests.integration.controller.test_hold_notices import Outbox, notifier

    svc, rid = trial
    router = FakeRouter()
    t0 = svc.clock.now()
    # The canary has three times the baseline's errors: the same judge armed rolls it back
    # (test_the_sequential_judge_rolls_back_three_times_the_errors_a_threshold_rule_lets_through).
    controller(svc, router, tripled).run(until_done=True)
    view = svc.get(rid)
    assert (view.status, view.rollbacks, router.calls) == ("complete", [], [1, 10, 50, 100])
    assert svc.clock.now() - t0 == FULL  # not a second of bake lost to the dry run's failures
    assert transitions(svc, rid)[-2:] == ["promote -> verifying", "complete -> complete"]
    # Once at each step where the test has found the canary worse (three analyses at 1 % are not enough
    # evidence) and the baseline takes traffic to compare with (at 100 % it is skipped), however many
    # analyses failed there.
    said = breaches(svc, rid)
    assert [(b["step"], b["weight"], b["status"]) for b in said] == [
        (1, 10.0, "rolling_out"),
        (2, 50.0, "rolling_out"),
    ]
    for b, (step, weight) in zip(said, [(2, 10), (3, 50)], strict=True):
        assert str(b["would"]).startswith(WOULD.format(step=step, weight=weight)), b["would"]
        assert b["trigger"] == "error-regression" and b["threshold"] == 0.01 and b["paused_from"] is None
        assert b["p_value"] == b["value"] and float(str(b["value"])) <= 0.01
    assert kinds(svc, rid).count("analysis.completed") == FULL // timedelta(minutes=INTERVAL)
    # Every analysis stored the dry run's verdict, marked, and passed on the armed triggers alone.
    with svc.store.transaction() as s:
        analyses = [json.loads(r.payload) for r in audit.rows(s) if r.kind == "analysis.completed"]
    assert {a["verdict"] for a in analyses} == {"pass"}
    verdicts = [next(t for t in a["triggers"] if t["trigger"] == "error-regression") for a in analyses]
    assert all(t["dry_run"] is True for t in verdicts)
    assert [t["verdict"] for t in verdicts].count("fail") >= 3
    assert not any("dry_run" in t for a in analyses for t in a["triggers"] if t["trigger"] != "error-regression")
    # The views say what it would have done, and where.
    assert [b["trigger"] for b in view.to_json()["dry_runs"]] == ["error-regression"] * 2
    lines = describe.dry_runs(view)
    assert [line.split(", ")[1].split(":")[0] for line in lines] == ["step 2 (10%)", "step 3 (50%)"]
    first = describe.utc(view.dry_runs[0]["at"])
    assert lines[0].startswith(f"dry run: trigger error-regression would have rolled back at {first}, step 2 (10%): ")

    # release show (and release start --wait on a terminal), the status page, the package and the
    # retrospective show the dry runs.
    with svc.store.transaction() as s:
        record = load_record(s, rid)
    # release show (and release start --wait on a terminal): a line each, after where the rollout stands.
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, force_terminal=False)
    for line in rollout_lines(view):
        console.print(line)
    shown = [line for line in buffer.getvalue().splitlines() if "dry run" in line]
    assert shown[:2] == [f"  {line}" for line in describe.dry_runs(view)]
    # Its last analysis marks the dry run's row (skipped at 100 %, where Verify's analyses ran).
    assert [(r.trigger, r.verdict) for r in describe.analysis_rows(view)][2] == (
        "error-regression (dry run)",
        "skipped",
    )
    page = release_page(view, record, None, svc.clock.now(), "/")
    assert f'<p class="dry-run">{html.escape(describe.dry_runs(view)[0], quote=True)}</p>' in page
    files = build(record, None, None, svc.clock.now())
    rollout_md = files["rollout.md"].decode()
    said = "## Dry runs\n\nDry-run triggers (`error-regression`) are judged and reported but never roll back."
    assert said in rollout_md
    assert rollout_md.count("| error-regression | step ") == 2
    rollout = json.loads(files["rollout.json"])
    assert [d["where"] for d in rollout["dry_runs"]] == ["step 2 (10%)", "step 3 (50%)"]
    plan_md = files["plan.md"].decode()
    listed = (
        "error-regression: error_rate worse than the baseline by a regression test (alpha 0.01, min ratio 1); "
        "dry run: judged and reported, never rolls back"
    )
    assert listed in plan_md
    retro = render_retrospective(record, svc.clock.now())
    assert "### Dry runs\n\nDry-run triggers (`error-regression`)" in retro
    assert "- Dry run: error-regression would have rolled back at " in retro

    # Each breach is news for the audiences that hear dry_run.
    outbox = Outbox()
    notifier(svc, outbox).tick()
    assert [
        (audience, channel, line.split(": canary worse")[0]) for audience, channel, line in outbox.told("dry_run")
    ] == [
        (
            "engineering",
            "releases-slack",
            f"[shiprail] checkout 2.4.0: dry-run trigger error-regression would have rolled it back at step {step}",
        )
        for step in ("2 (10%)", "3 (50%)")
    ]


def test_a_breach_in_verify_is_said_to_be_in_verify_not_at_the_last_step(trial: tuple[Releases, str]) -> None:
    svc, rid = trial
    view = svc.get(rid)
    last = len(view.resolved.steps) - 1
    at = "2026-01-01T00:40:00+00:00"
    stored = [
        {"at": at, "trigger": "errors", "reason": "r", "status": "rolling_out", "paused_from": None, "step": last},
        {"at": at, "trigger": "errors", "reason": "r", "status": "verifying", "paused_from": None, "step": last},
        {"at": at, "trigger": "errors", "reason": "r", "status": "paused", "paused_from": "verifying", "step": last},
        {"at": at, "trigger": "errors", "reason": "r", "status": "paused", "paused_from": "rolling_out", "step": 1},
    ]
    lines = describe.dry_runs(replace(view, dry_runs=stored))
    assert [line.split(", ")[1].split(":")[0] for line in lines] == [
        "step 4 (100%)",
        "in Verify",
        "in Verify",
        "step 2 (10%)",
    ]


def test_metrics_label_a_dry_runs_verdict(trial: tuple[Releases, str]) -> None:
    svc, rid = trial
    ctl = controller(svc, FakeRouter(), tripled)
    ctl.health = ControllerHealth(svc.clock, ctl.holder, stale_after_s=15)
    value = ctl.health.registry.get_sample_value
    key = {"release": rid, "service": "checkout"}
    ctl.tick()
    svc.clock.advance(INTERVAL * 60)
    ctl.tick()
    armed = key | {"trigger": "errors", "dry_run": "false"}
    trial_key = key | {"trigger": "error-regression", "dry_run": "true"}
    assert [value("shiprail_release_trigger_verdict", armed | {"verdict": v}) for v in VERDICTS] == [1, 0, 0, 0]
    assert sum(value("shiprail_release_trigger_verdict", trial_key | {"verdict": v}) or 0 for v in VERDICTS) == 1


def test_a_dry_runs_failure_is_not_what_refuses_the_analysis_gate(trial: tuple[Releases, str]) -> None:
    svc, rid = trial
    ctl = controller(svc, FakeRouter(), tripled)
    while not breaches(svc, rid):
        ctl.tick()
        svc.clock.advance(timedelta(minutes=INTERVAL))
    with svc.store.transaction() as s:
        # The armed threshold trigger had too few samples at the analysis the dry run failed in.
        row = latest_analysis(s, rid)
        assert row is not None
        results = json.loads(row.results)
        for r in results:
            if r["trigger"] == "errors":
                r |= {"verdict": "inconclusive", "reason": "30 samples, fewer than min_samples 200"}
            if r["trigger"] == "slow":  # a comparison with the baseline not judged (at 100 %): no refusal either
                r |= {"verdict": "skipped", "reason": "the baseline serves no traffic to compare with"}
        row.results, row.verdict = json.dumps(results), "inconclusive"
    with svc.store.transaction() as s:
        release = svc._load(s, rid)
        assert row.weight is not None
        gate = _analysis_gate(s, release, row.weight)
    dry = next(r for r in results if r["trigger"] == "error-regression")
    assert (dry["verdict"], dry["dry_run"]) == ("fail", True)
    # What refuses the gate (and the override's --gate reference) is the armed trigger alone: the dry
    # run failing, or passing again, changes nothing about the release.
    assert (gate.passed, gate.evidence["failing"]) == (False, ["errors"])
