"""``shiprail.yaml``: the organisation's rules every release plan is checked against.

A plan may tighten any of these (more approvals, longer bakes, a longer verify window), never
loosen them.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field

from shiprail import defaults
from shiprail.notifiers import ChannelConfig
from shiprail.schema.base import Duration, Flag, StrictModel, Whole

Risk = Literal["low", "medium", "high"]
Role = Literal["releaser", "approver", "qa", "executive", "oncall"]
# The role a plan's `verify.on_call` person must hold: the one who may pause and roll back.
ON_CALL_ROLE: Role = "oncall"
APPROVE_ROLES: tuple[Role, ...] = ("approver", "executive")
"""The roles whose holders may approve a release (never its owner)."""
RISK_ORDER: dict[str, int] = {level: i for i, level in enumerate(defaults.RISK_LEVELS)}


class RiskPolicy(StrictModel):
    """How risk is computed from a plan's scope tags."""

    default: Risk = Field(defaults.DEFAULT_RISK, description="The risk of a release no tag makes high or low.")
    high_tags: list[str] = Field(
        default_factory=lambda: list(defaults.HIGH_RISK_TAGS),
        description="Any of these tags makes a release high risk.",
    )
    low_tags: list[str] = Field(
        default_factory=lambda: list(defaults.LOW_RISK_TAGS),
        description="A release whose tags are all in this list (at least one tag) is low risk.",
    )


class GateRequirements(StrictModel):
    """What one risk level needs before traffic moves."""

    approvals: Whole = Field(
        1, description="Approvals from distinct people, the owner not counted, needed to enter Stage."
    )
    qa_checklist: Flag = Field(
        False, description="Whether the plan must have a QA checklist, signed off before the rollout starts."
    )
    load_test: Flag = Field(
        False, description="Whether the plan must have a load test, passed before the rollout starts."
    )


def _default_gates() -> dict[Risk, GateRequirements]:
    return {
        "low": GateRequirements(
            approvals=defaults.APPROVALS_BY_RISK["low"],
            qa_checklist=defaults.QA_CHECKLIST_BY_RISK["low"],
            load_test=defaults.LOAD_TEST_BY_RISK["low"],
        ),
        "medium": GateRequirements(
            approvals=defaults.APPROVALS_BY_RISK["medium"],
            qa_checklist=defaults.QA_CHECKLIST_BY_RISK["medium"],
            load_test=defaults.LOAD_TEST_BY_RISK["medium"],
        ),
        "high": GateRequirements(
            approvals=defaults.APPROVALS_BY_RISK["high"],
            qa_checklist=defaults.QA_CHECKLIST_BY_RISK["high"],
            load_test=defaults.LOAD_TEST_BY_RISK["high"],
        ),
    }


def _default_min_bake() -> dict[Risk, dict[int, int]]:
    return {
        "low": dict(defaults.MIN_BAKE_SECONDS["low"]),
        "medium": dict(defaults.MIN_BAKE_SECONDS["medium"]),
        "high": dict(defaults.MIN_BAKE_SECONDS["high"]),
    }


class RolloutPolicy(StrictModel):
    """The weights every rollout passes through, and the least each may bake per risk."""

    weights: list[Whole] = Field(
        default_factory=lambda: list(defaults.ROLLOUT_WEIGHTS),
        description="The canary weights (percent) every rollout passes through, increasing, the last 100.",
    )
    min_bake: dict[Risk, dict[int, Duration]] = Field(
        default_factory=_default_min_bake,
        description="Per risk level, the least bake per weight (a mapping of weight to duration).",
    )
    analysis_interval: Duration = Field(
        defaults.ANALYSIS_INTERVAL_SECONDS,
        description="How often the contract is evaluated, unless a plan or service sets it.",
    )


class ContractPolicy(StrictModel):
    """What every rollback contract must cover: metric kinds or signal names."""

    must_cover: list[str] = Field(
        default_factory=lambda: list(defaults.CONTRACT_MUST_COVER),
        description=(
            "What every rollback contract must have a trigger on: metric kinds (error_rate, latency, rate, count, "
            "ratio, gauge) or signals (customer_complaint, alert)."
        ),
    )


class VerifyPolicy(StrictModel):
    """The post-release validation window."""

    window: Duration = Field(
        defaults.VERIFY_WINDOW_SECONDS,
        description="The validation window after 100%; a plan may make it longer, never shorter.",
    )


class Person(StrictModel):
    """Someone who acts on releases, and what they may do."""

    roles: list[Role] = Field(
        default_factory=list, description="What the person may do: releaser, approver, qa, executive, oncall."
    )
    email: str | None = Field(None, description="The person's email address.")


def _override_roles() -> list[Role]:
    return list(defaults.OVERRIDE_ROLES)


class OverridePolicy(StrictModel):
    """Who may pass a failed gate, and how much they must write."""

    roles: list[Role] = Field(
        default_factory=_override_roles, description="The roles allowed to pass a failed gate; at least one."
    )
    reason_min_chars: Whole = Field(
        defaults.OVERRIDE_REASON_MIN_CHARS,
        ge=0,
        description="The shortest override reason (and post-mortem summary) accepted, in characters.",
    )


class Policy(StrictModel):
    """The whole of ``shiprail.yaml``."""

    version: Literal[1] = Field(1, description="The file format version; 1.")
    risk: RiskPolicy = Field(
        default_factory=RiskPolicy, description="How a plan's risk is computed from its scope tags."
    )
    gates: dict[Risk, GateRequirements] = Field(
        default_factory=_default_gates,
        description="What each risk level needs before traffic moves; a level left out gets the built-in defaults.",
    )
    rollout: RolloutPolicy = Field(
        default_factory=RolloutPolicy,
        description="The weights every rollout passes through and how long each must bake.",
    )
    contract: ContractPolicy = Field(
        default_factory=ContractPolicy, description="What every rollback contract must cover."
    )
    verify: VerifyPolicy = Field(default_factory=VerifyPolicy, description="The validation window after 100%.")
    channels: dict[str, ChannelConfig] = Field(
        default_factory=dict, description="Notification channels by name, used by the communication plans of releases."
    )
    people: dict[str, Person] = Field(
        default_factory=dict,
        description="Everyone who acts on releases, by the name they act as (`--as`, SHIPRAIL_USER).",
    )
    overrides: OverridePolicy = Field(
        default_factory=OverridePolicy, description="Who may pass a failed gate, and how long their reason must be."
    )

    def gates_for(self, risk: str) -> GateRequirements:
        """The gate requirements for ``risk``, falling back to the built-in defaults."""
        level = cast(Risk, risk)
        return self.gates.get(level) or _default_gates()[level]

    def min_bake_for(self, risk: str) -> dict[int, int]:
        """Least bake in seconds per weight for ``risk``."""
        level = cast(Risk, risk)
        return self.rollout.min_bake.get(level) or _default_min_bake()[level]

    def roles_of(self, name: str) -> set[str]:
        """The roles ``name`` holds; empty when the person is unknown."""
        person = self.people.get(name)
        return set(person.roles) if person else set()
