"""One analysis of a contract: a regression trigger whose test cannot be built is inconclusive."""

from __future__ import annotations

from pathlib import Path

from shiprail.cli.init import write_project
from shiprail.controller.analysis import evaluate
from shiprail.domain.contract import Sample, Streaks
from shiprail.judges.base import JudgeInputError
from shiprail.judges.contract import Replay
from shiprail.project import open_project
from shiprail.schema.plan import Regression, RollbackContract, Trigger
from shiprail.schema.service import Metric


class Counts:
    """A provider answering 1 % errors over 1,000 requests for either version."""

    def query(self, name: str, metric: Metric, version: str, window_s: int) -> Sample:
        return Sample(0.01, 1000)


def test_a_test_that_cannot_be_built_leaves_the_trigger_inconclusive_and_stores_the_increment(
    tmp_path: Path,
) -> None:
    write_project(tmp_path)
    service, _, problems = open_project(tmp_path).load_service("checkout")
    assert service is not None and not problems
    trigger = Trigger(name="error-regression", metric="error_rate", regression=Regression(alpha=0.01))

    def refusing(trigger: Trigger, kind: str) -> Replay:
        raise JudgeInputError("alpha must be in (0, 0.5]")

    [measured] = evaluate(
        RollbackContract(triggers=[trigger]),
        service,
        Counts(),  # type: ignore[arg-type]
        lambda name, window: 0.0,
        version="2.4.0",
        baseline="2.3.1",
        interval_s=60,
        streaks=Streaks({}),
        history=refusing,
    )
    assert (measured.result.verdict, measured.result.reason) == (
        "inconclusive",
        "regression: alpha must be in (0, 0.5]",
    )
    assert measured.increment is not None and measured.increment.canary_events == 10


def test_a_dry_run_is_judged_like_its_armed_twin_and_only_its_row_says_so(tmp_path: Path) -> None:
    """Same data, same ``consecutive``: the same verdicts, held failure included; only the mark differs."""
    write_project(tmp_path)
    service, _, _ = open_project(tmp_path).load_service("checkout")
    assert service is not None
    armed = Trigger(name="errors", metric="error_rate", above=0.005, window=300, consecutive=2)
    dry = armed.model_copy(update={"name": "errors-trial", "dry_run": True})
    streaks = Streaks({})
    looks = []
    for _ in range(2):
        measured = evaluate(
            RollbackContract(triggers=[armed, dry]),
            service,
            Counts(),  # type: ignore[arg-type]
            lambda name, window: 0.0,
            version="2.4.0",
            baseline="2.3.1",
            interval_s=60,
            streaks=streaks,
        )
        looks.append([(m.result.verdict, m.result.held, m.result.dry_run) for m in measured])
        rows = [m.to_json() for m in measured]
        assert "dry_run" not in rows[0] and rows[1]["dry_run"] is True
        assert {k: v for k, v in rows[0].items() if k != "trigger"} == {
            k: v for k, v in rows[1].items() if k not in ("trigger", "dry_run")
        }
    assert looks == [
        [("inconclusive", True, False), ("inconclusive", True, True)],  # failure 1 of 2 in a row
        [("fail", False, False), ("fail", False, True)],
    ]
