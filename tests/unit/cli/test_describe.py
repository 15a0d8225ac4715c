"""The last analysis in words, as ``release show``, ``--wait`` and the status pages print it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from shiprail.controller.analysis import Measured
from shiprail.describe import analysis_rows
from shiprail.domain.contract import Sample, judge, trigger_name
from shiprail.project import check_plan_file
from shiprail.releases import ReleaseView


def test_a_trigger_judged_on_no_data_shows_the_limit_its_plan_sets(project: Path) -> None:
    # An inconclusive result stores no threshold (nothing was compared): its limit read "–", and
    # whoever watched a paused release could not see what the trigger would be judged against.
    resolved = check_plan_file(project / "releases" / "checkout-2.4.0.yaml").resolved
    triggers = {trigger_name(t): t for t in resolved.contract.triggers}
    no_data = Sample(None)
    rows = [Measured(judge(t, no_data, no_data), no_data, no_data).to_json() for t in resolved.contract.triggers]
    # The canary measured, the baseline not: the ratio is known, the baseline's value is not.
    canary = Sample(250.0, 400)
    slow = judge(triggers["slow"], canary, no_data)
    assert (slow.verdict, slow.value, slow.threshold) == ("inconclusive", 250.0, None)
    # Judged on data: the limit it was compared with, as stored.
    errors = judge(triggers["errors"], Sample(0.002, 500))
    assert (errors.verdict, errors.threshold) == ("pass", 0.01)
    rows += [Measured(slow, canary, no_data).to_json(), Measured(errors, Sample(0.002, 500), None).to_json()]
    view = SimpleNamespace(resolved=resolved, last_analysis={"at": "2026-11-28T04:47:31+00:00", "results": rows})
    shown = [(r.trigger, r.verdict, r.value, r.limit) for r in analysis_rows(cast(ReleaseView, view))]
    assert shown == [
        ("errors", "inconclusive", "–", "0.01"),
        ("slow", "inconclusive", "–", "2 × baseline"),
        ("complaints", "inconclusive", "–", "3"),
        ("error-regression", "inconclusive", "–", "α 0.01"),
        ("latency-regression", "inconclusive", "–", "α 0.01"),
        ("slow", "inconclusive", "250", "2 × baseline"),
        ("errors", "pass", "0.002", "0.01"),
    ]
