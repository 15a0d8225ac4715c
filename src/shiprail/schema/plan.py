"""``releases/<name>.yaml``: one change to one service, reviewed like code.

Every section is optional *to the parser* so that one broken section does not hide the problems
of the others; the guardrails (``shiprail.schema.guardrails``) say what is required.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from shiprail.schema.base import Duration, Number, StrictModel, Whole

Risk = Literal["low", "medium", "high"]
Signal = Literal["customer_complaint", "alert"]
Event = Literal[
    "approved",
    "staging",
    "started",
    "step",
    "paused",
    "rolled_back",
    "override",
    "verifying",
    "completed",
]
COMPARISONS: tuple[str, ...] = ("above", "below", "above_baseline", "regression")


class Scope(StrictModel):
    """What changes and who notices."""

    summary: str | None = None
    user_facing: bool | None = None
    changes: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class Regression(StrictModel):
    """A statistical test of canary against baseline (see the sequential judge)."""

    alpha: Number = 0.01


class Trigger(StrictModel):
    """One condition that rolls the release back.

    Exactly one comparison: ``above``/``below`` an absolute number, ``above_baseline`` a ratio of
    the baseline version's value, or a ``regression`` test.
    """

    name: str | None = None
    metric: str | None = None
    signal: Signal | None = None
    above: Number | None = None
    below: Number | None = None
    above_baseline: Number | None = None
    regression: Regression | None = None
    window: Duration | None = None
    min_samples: Whole | None = None
    consecutive: Whole | None = None

    def comparisons(self) -> list[str]:
        """Names of the comparisons this trigger sets."""
        return [c for c in COMPARISONS if getattr(self, c) is not None]


class Revert(StrictModel):
    """How fast a rollback must take traffic back to the baseline."""

    max_duration: Duration | None = None


class RollbackContract(StrictModel):
    """The triggers that roll a release back, frozen when Stage starts."""

    triggers: list[Trigger] = Field(default_factory=list)
    on_no_data: Literal["pause", "rollback"] = "pause"
    revert: Revert = Field(default_factory=Revert)


class Communication(StrictModel):
    """Who hears about which events, through which policy channels."""

    audience: str
    notify: list[str] = Field(default_factory=list)
    on: list[Event] = Field(default_factory=list)


class TestCommand(StrictModel):
    """A test command run in Stage; ``junit`` names the JUnit XML report it writes."""

    name: str
    command: str
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 600
    junit: str | None = None


class LoadThresholds(StrictModel):
    """Limits a load test must stay within."""

    p95_ms: Number | None = None
    error_rate: Number | None = None
    min_rps: Number | None = None


class LoadTest(StrictModel):
    """A headless Locust run (or a command writing Locust-style CSV stats) and its limits."""

    locustfile: str | None = None
    command: str | None = None
    stats_csv: str | None = None
    host: str | None = None
    users: Whole = 10
    spawn_rate: Number = 10
    duration: Duration = 60
    thresholds: LoadThresholds = Field(default_factory=LoadThresholds)


class Stage(StrictModel):
    """The checks that must pass before any traffic moves."""

    tests: list[TestCommand] = Field(default_factory=list)
    qa_checklist: list[str] = Field(default_factory=list)
    load_test: LoadTest | None = None
    approvals: Whole | None = None


class Step(StrictModel):
    """One rollout step: the canary's share of traffic and how long it bakes there."""

    weight: Number
    bake: Duration | None = None


class Rollout(StrictModel):
    """The staged traffic shift."""

    steps: list[Step] = Field(default_factory=list)
    analysis_interval: Duration | None = None


class JsonExpectation(StrictModel):
    """A value expected at a dotted path of a JSON response."""

    path: str
    equals: str | float | bool | None = None


class Probe(StrictModel):
    """An HTTP check of a key user flow, run every interval during Verify."""

    name: str
    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: Whole = 200
    expect_json: JsonExpectation | None = None
    max_latency: Number | None = None
    interval: Duration = 60


class Verify(StrictModel):
    """The validation window after 100%."""

    window: Duration | None = None
    on_call: str | None = None
    probes: list[Probe] = Field(default_factory=list)


class ReleasePlan(StrictModel):
    """The whole of a release plan file."""

    model_config = ConfigDict(
        json_schema_extra={
            "required": [
                "service",
                "version",
                "baseline",
                "owner",
                "scope",
                "rollback_contract",
                "communication",
                "verify",
            ]
        }
    )

    service: str | None = None
    version: str | None = None
    baseline: str | None = None
    owner: str | None = None
    scope: Scope | None = None
    risk: Risk | None = None
    rollback_contract: RollbackContract | None = None
    communication: list[Communication] | None = None
    stage: Stage | None = None
    rollout: Rollout | None = None
    verify: Verify | None = None
