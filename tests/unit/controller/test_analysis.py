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
