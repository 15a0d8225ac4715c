"""``releases/<name>.yaml``: one change to one service, reviewed like code.

Every section is optional *to the parser* so that one broken section does not hide the problems
of the others; the guardrails (``shiprail.schema.guardrails``) say what is required.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from shiprail import defaults
from shiprail.durations import MAX_DURATION_SECONDS
from shiprail.judges.base import MAX_COUNT
from shiprail.schema.base import Duration, Flag, Number, StrictModel, Whole, finite, without_default

Risk = Literal["low", "medium", "high"]
Signal = Literal["customer_complaint", "alert"]
Event = Literal[
    "awaiting_approval",
    "approved",
    "staging",
    "started",
    "step",
    "paused",
    "rolled_back",
    "override",
    "verifying",
    "completed",
    "revert_stuck",
    "revert_recovered",
    "held",
    "handover",
    "dry_run",
]
COMPARISONS: tuple[str, ...] = ("above", "below", "above_baseline", "regression")

# The most samples a trigger may wait for: MAX_COUNT is beyond any stage's traffic (10⁵ requests a
# second for 300 years), and the regression judges refuse a count above it as a wrong query. No
# window holds more real samples, so a min_samples above it can never be met.
MAX_MIN_SAMPLES = MAX_COUNT
# The longest run of breaches a trigger may wait for, in time: analyses in a row, one every
# analysis interval, that take longer than the longest duration shiprail takes (366d) outlast any
# step and any validation window, so the trigger never fires while the release runs.
MAX_CONSECUTIVE_SECONDS = MAX_DURATION_SECONDS
# The highest count a signal trigger may wait for. Complaints and alerts come from people and
# pagers: no release gathers a million in one window, and long before that every other trigger
# has fired. A count above it is a typo (1e30), a trigger that can never fire.
MAX_SIGNAL_ABOVE = 1_000_000
# The most users a load test may simulate. Locust keeps each simulated user in memory (a
# greenlet, tens of kilobytes): a million is tens of gigabytes, beyond any run a gate waits for.
MAX_LOAD_USERS = 1_000_000


class Scope(StrictModel):
    """What changes and who notices."""

    summary: str | None = Field(None, description="One line saying what changes. Required.")
    user_facing: Flag | None = Field(
        None, description="Whether users notice the change (true) or it is backend-only (false)."
    )
    changes: list[str] = Field(default_factory=list, description="The changes, one per item.")
    tags: list[str] = Field(
        default_factory=list,
        description=(
            "Tags that set the risk (see `risk` in shiprail.yaml): any high-risk tag makes the release high risk."
        ),
    )


# What a regression's alpha and min_ratio must be (Regression.out_of_range words its errors from these).
ALPHA_RULE = "must be more than 0 and at most 0.5 (a false-rollback rate, e.g. 0.01)"
MIN_RATIO_RULE = (
    f"must be at least {defaults.MIN_RATIO_RANGE[0]:g} and at most {defaults.MIN_RATIO_RANGE[1]:g} "
    "(1: any increase, 1.2: more than 20 % worse)"
)


class Regression(StrictModel):
    """A statistical test of canary against baseline (see the sequential judge)."""

    alpha: Number = Field(
        0.01,
        description=(
            "The false-rollback rate accepted by the test, however often it is looked at; more than 0 and at most 0.5."
        ),
        # The range is checked by the guardrails (out_of_range), which word the error; the schema states it.
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 0.5},
    )
    min_ratio: Number = Field(
        1.0,
        description=(
            "How many times the baseline's rate the canary's may be before it is a regression: 1 rolls back any "
            "increase the data can show, 1.2 only one above 20 % (for latency: the share of requests slower than a "
            "bucket bound)."
        ),
        json_schema_extra={"minimum": defaults.MIN_RATIO_RANGE[0], "maximum": defaults.MIN_RATIO_RANGE[1]},
    )
    bursts: Literal["independent", "tolerate"] = Field(
        "independent",
        description=(
            "How errors arrive. `independent` (the default): the fastest test, whose false-rollback rate holds when "
            "errors are independent; bursts of errors (retry storms) make it roll back healthy canaries more often, "
            "and its verdicts say so. `tolerate`: no single analysis can add more than a set amount of evidence, so "
            "a burst cannot roll back on its own; it detects real regressions later. Error-rate and ratio metrics "
            "only."
        ),
    )

    def out_of_range(self) -> list[tuple[str, str]]:
        """``(field, rule)`` for each of ``alpha`` and ``min_ratio`` outside the range the test takes.

        The one statement of the range: the plan's guardrails and ``shiprail judge``'s flags both
        word their errors from it.
        """
        problems = []
        if not 0 < self.alpha <= 0.5:
            problems.append(("alpha", ALPHA_RULE))
        low, high = defaults.MIN_RATIO_RANGE
        if not low <= self.min_ratio <= high:
            problems.append(("min_ratio", MIN_RATIO_RULE))
        return problems


# How a trigger with ``dry_run: true`` is marked where triggers are listed.
DRY_RUN_SHOWN = " (dry run)"


class Trigger(StrictModel):
    """One condition that rolls the release back.

    Exactly one comparison: ``above``/``below`` an absolute number, ``above_baseline`` a ratio of
    the baseline version's value, or a ``regression`` test. A ``dry_run`` trigger is judged the
    same way but only reported: it never rolls back nor pauses (see docs/rollout.md).
    """

    name: str | None = Field(
        None,
        description=(
            "Names the trigger in messages and the audit trail; unique within the contract. Defaults to the metric or "
            "signal name."
        ),
    )
    metric: str | None = Field(
        None,
        description="A metric the service defines (`metrics` in services/<service>.yaml). Give a metric or a signal.",
    )
    signal: Signal | None = Field(
        None,
        description=(
            "A signal counted over the window instead of a metric; compare it with `above`, a count below "
            f"{MAX_SIGNAL_ABOVE:,}."
        ),
    )
    above: Number | None = Field(
        None,
        description=(
            "Fires when the value is above this number. For error_rate and ratio metrics, a fraction below 1 (0.01 is "
            "1%)."
        ),
    )
    below: Number | None = Field(None, description="Fires when the value is below this number.")
    above_baseline: Number | None = Field(
        None,
        description=(
            "Fires when the canary's value is above this multiple of the baseline's; more than 1 (2 means twice the "
            "baseline)."
        ),
    )
    regression: Regression | None = Field(
        None, description="Fires when a statistical test of canary against baseline finds the canary worse."
    )
    window: Duration | None = Field(
        None, description="How far back each evaluation looks. Required for a metric trigger."
    )
    min_samples: Whole | None = Field(
        None,
        description=(
            f"The fewest samples the window must hold before the trigger judges; 0 or more, at most {MAX_COUNT:.0e}. "
            "For a regression trigger: the fewest canary requests since the rollout began."
        ),
        json_schema_extra={"minimum": 0, "maximum": MAX_MIN_SAMPLES},
    )
    consecutive: Whole | None = Field(
        None,
        description=(
            "How many evaluations in a row must breach before the trigger fires; 1 or more, and no more than fit in "
            f"{MAX_CONSECUTIVE_SECONDS // 86400}d at the analysis interval."
        ),
        json_schema_extra={"minimum": 1},
    )
    dry_run: Flag = Field(
        False,
        description=(
            "`true`: the trigger is measured and judged at every analysis like the others, and its verdicts and its"
            " first breach at each step are recorded and shown, but it never rolls the release back or pauses it (as"
            " Argo Rollouts' dryRun metrics). It does not count towards `contract.must_cover`, nor as the contract's"
            " one required trigger."
        ),
    )

    @model_serializer(mode="wrap")
    def _omit_armed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A trigger that rolls back serialises as it did before `dry_run` existed: the contract and
        # resolved hashes (what approvals approve, what Stage freezes) stay the same for plans that
        # never use it.
        return without_default(handler(self), "dry_run", False)

    @property
    def shown_dry_run(self) -> str:
        """What a list of triggers adds after this one's name: ``DRY_RUN_SHOWN`` for a dry-run trigger."""
        return DRY_RUN_SHOWN if self.dry_run else ""

    def comparisons(self) -> list[str]:
        """Names of the comparisons this trigger sets."""
        return [c for c in COMPARISONS if getattr(self, c) is not None]


class Revert(StrictModel):
    """How fast a rollback must take traffic back to the baseline."""

    max_duration: Duration | None = Field(
        None, description="The longest a rollback may take to put all traffic back on the baseline."
    )


class RollbackContract(StrictModel):
    """The triggers that roll a release back, frozen when Stage starts."""

    triggers: list[Trigger] = Field(
        default_factory=list,
        description=(
            "The conditions that roll the release back; at least one that is not a dry run, and together those must "
            "cover everything `contract.must_cover` in shiprail.yaml lists."
        ),
    )
    on_no_data: Literal["pause", "rollback"] = Field(
        "pause", description="What to do when a trigger has no data to judge: `pause` the release, or `rollback`."
    )
    revert: Revert = Field(default_factory=Revert, description="How fast the rollback must complete.")

    def armed(self) -> list[Trigger]:
        """The triggers that act on the release: every one but the dry runs."""
        return [t for t in self.triggers if not t.dry_run]

    def dry_runs(self) -> list[Trigger]:
        """The triggers only reported (``dry_run: true``)."""
        return [t for t in self.triggers if t.dry_run]


class Communication(StrictModel):
    """Who hears about which events, through which policy channels."""

    audience: str = Field(description="Who this entry informs (a label, such as engineering or support).")
    notify: list[str] = Field(
        default_factory=list,
        description="Channels to notify, by their name in `channels` of shiprail.yaml; at least one.",
    )
    on: list[Event] = Field(
        default_factory=list, description="The release events this audience hears about; at least one."
    )


class TestCommand(StrictModel):
    """A test command run in Stage; ``junit`` names the JUnit XML report it writes."""

    name: str = Field(description="Names the test in gate evidence; unique within the plan.")
    command: str = Field(description="The shell command to run; not empty.")
    cwd: str | None = Field(None, description="Directory to run it in.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the command.")
    timeout: Duration = Field(defaults.TEST_TIMEOUT_SECONDS, description="The longest the command may run.")
    junit: str | None = Field(None, description="The path of the JUnit XML report the command writes.")


class LoadThresholds(StrictModel):
    """Limits a load test must stay within."""

    p95_ms: Number | None = Field(
        None, description="The highest acceptable 95th percentile response time, in milliseconds."
    )
    error_rate: Number | None = Field(
        None, description="The highest acceptable share of failed requests, a fraction in [0, 1)."
    )
    min_rps: Number | None = Field(None, description="The lowest acceptable throughput, in requests per second.")


class LoadTest(StrictModel):
    """A headless Locust run (or a command writing Locust-style CSV stats) and its limits."""

    locustfile: str | None = Field(None, description="A Locust file to run headless. Give this or `command`, not both.")
    command: str | None = Field(
        None, description="A command that runs the load test itself and writes Locust-style CSV stats."
    )
    stats_csv: str | None = Field(None, description="The stats CSV `command` writes. Required with `command`.")
    host: str | None = Field(
        None, description="The host Locust sends load to, an http:// or https:// URL. Required with `locustfile`."
    )
    users: Whole = Field(10, description=f"How many simulated users; at least 1, at most {MAX_LOAD_USERS:,}.")
    spawn_rate: Number = Field(10, description="Users started per second.")
    duration: Duration = Field(defaults.LOAD_TEST_DURATION_SECONDS, description="How long the load runs.")
    thresholds: LoadThresholds = Field(
        default_factory=LoadThresholds, description="The limits the run must stay within; at least one."
    )


class Stage(StrictModel):
    """The checks that must pass before any traffic moves."""

    tests: list[TestCommand] = Field(
        default_factory=list, description="Test commands that must run and pass before the rollout starts."
    )
    qa_checklist: list[str] = Field(
        default_factory=list,
        description="Items a person with the qa role signs off before the rollout starts; each given once, not empty.",
    )
    load_test: LoadTest | None = Field(None, description="A load test that must pass before the rollout starts.")
    approvals: Whole | None = Field(
        None,
        description=(
            "Approvals needed to enter Stage; may raise the number shiprail.yaml requires for the release's risk, "
            "never lower it."
        ),
    )


# How a step with ``promote: manual`` is marked where a plan's steps are listed on one line.
MANUAL_SHOWN = ", promoted by hand"


class Step(StrictModel):
    """One rollout step: the canary's share of traffic, how long it bakes there, and who promotes it."""

    weight: Number = Field(description="The canary's share of traffic, a percentage in (0, 100].")
    bake: Duration | None = Field(
        None,
        description=(
            "How long the step runs before it may be promoted; at least the minimum shiprail.yaml sets for this weight"
            " and risk, which is used when left out."
        ),
    )
    promote: Literal["auto", "manual"] = Field(
        "auto",
        description=(
            "`auto`: the controller promotes the step once it has baked with every trigger passing. `manual`: then it"
            " waits for a person to promote it (`shiprail release promote`), its rollback contract still armed, as"
            " Spinnaker's Manual Judgment and Argo Rollouts' indefinite pause do."
        ),
    )

    @model_serializer(mode="wrap")
    def _omit_auto(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A step the controller promotes serialises as it did before `promote` existed: stored
        # releases, and the hash their approvals approved, stay the same for plans that never use it.
        return without_default(handler(self), "promote", "auto")

    @property
    def shown_promote(self) -> str:
        """What a list of steps adds after this one: ``MANUAL_SHOWN`` for a step a person promotes."""
        return MANUAL_SHOWN if self.promote == "manual" else ""


class Rollout(StrictModel):
    """The staged traffic shift."""

    steps: list[Step] = Field(
        default_factory=list,
        description=(
            "The steps, by increasing weight; they must include every weight of `rollout.weights` in shiprail.yaml and"
            " end at 100."
        ),
    )
    analysis_interval: Duration | None = Field(
        None,
        description="How often the contract is evaluated; `rollout.analysis_interval` of shiprail.yaml when left out.",
    )


class JsonExpectation(StrictModel):
    """A value expected at a dotted path of a JSON response."""

    path: str = Field(description="A dotted path into the JSON response.")
    equals: Annotated[str | float | int | bool | None, AfterValidator(finite)] = Field(
        None,
        description=(
            "The value expected at that path; `true` and `false` match only a JSON boolean, not 1 or 0. Unquoted, a"
            " number is a number (`1e5` is 100000, `010` is 10) and one no float holds is refused; quote text"
            ' (`"1e5"`).'
        ),
    )


class Probe(StrictModel):
    """An HTTP check of a key user flow, run every interval during Verify."""

    name: str = Field(description="Names the probe; unique within the plan.")
    url: str = Field(description="An http:// or https:// URL.")
    method: str = Field("GET", description="The HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    expect_status: Whole = Field(
        200,
        description=(
            "The HTTP status the response must have; redirects are not followed (expect 301 or 302 to check one)."
        ),
    )
    expect_json: JsonExpectation | None = Field(None, description="A value the JSON response must hold.")
    max_latency: Number | None = Field(None, description="The slowest acceptable response, in seconds.")
    interval: Duration = Field(defaults.PROBE_INTERVAL_SECONDS, description="How often the probe runs.")

    @property
    def result_name(self) -> str:
        """The name this probe's result carries among an analysis's trigger results."""
        return f"probe {self.name}"


class Verify(StrictModel):
    """The validation window after 100%."""

    window: Duration | None = Field(
        None,
        description=(
            "How long the release is watched after 100%; at least `verify.window` of shiprail.yaml, which is used when"
            " left out."
        ),
    )
    on_call: str | None = Field(
        None,
        description=(
            "The person (in `people` of shiprail.yaml, with the role `oncall`) on call during the window. Required."
        ),
    )
    probes: list[Probe] = Field(
        default_factory=list,
        description="HTTP checks of key user flows; the service's `defaults.verify.probes` when none are given.",
    )


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

    service: str | None = Field(None, description="The service released; services/<service>.yaml must exist.")
    version: str | None = Field(None, description="The version being released; must differ from `baseline`.")
    baseline: str | None = Field(
        None, description="The version running now: what the canary is compared with and rolled back to."
    )
    owner: str | None = Field(
        None,
        description=(
            "The person (in `people` of shiprail.yaml) who owns the release. The owner may not approve, sign off QA "
            "for, or override the gates of their own release."
        ),
    )
    scope: Scope | None = Field(None, description="What changes and who notices.")
    risk: Risk | None = Field(None, description="Raises the risk the tags imply; a plan may not lower it.")
    rollback_contract: RollbackContract | None = Field(
        None, description="The triggers that roll the release back; frozen when Stage starts."
    )
    communication: list[Communication] | None = Field(
        None, description="Who hears about which events, through which channels; at least one entry."
    )
    stage: Stage | None = Field(
        None, description="The checks before traffic moves; the service's `defaults.stage` when left out."
    )
    rollout: Rollout | None = Field(
        None,
        description=(
            "The staged traffic shift; the service's `defaults.rollout` when left out, else every weight of "
            "shiprail.yaml at its minimum bake."
        ),
    )
    verify: Verify | None = Field(None, description="The validation window after 100% and who is on call.")
