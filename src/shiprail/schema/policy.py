"""``shiprail.yaml``: the organisation's rules every release plan is checked against.

A plan may tighten any of these (more approvals, longer bakes, a longer verify window), never
loosen them.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import Field

from shiprail import defaults
from shiprail.notifiers import ChannelConfig
from shiprail.schema.base import Duration, StrictModel, Whole

Risk = Literal["low", "medium", "high"]
Role = Literal["releaser", "approver", "qa", "executive", "oncall"]
RISK_ORDER: dict[str, int] = {level: i for i, level in enumerate(defaults.RISK_LEVELS)}


class RiskPolicy(StrictModel):
    """How risk is computed from a plan's scope tags."""

    default: Risk = defaults.DEFAULT_RISK
    high_tags: list[str] = Field(default_factory=lambda: list(defaults.HIGH_RISK_TAGS))
    low_tags: list[str] = Field(default_factory=lambda: list(defaults.LOW_RISK_TAGS))


class GateRequirements(StrictModel):
    """What one risk level needs before traffic moves."""

    approvals: Whole = 1
    qa_checklist: bool = False
    load_test: bool = False


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

    weights: list[Whole] = Field(default_factory=lambda: list(defaults.ROLLOUT_WEIGHTS))
    min_bake: dict[Risk, dict[int, Duration]] = Field(default_factory=_default_min_bake)
    analysis_interval: Duration = defaults.ANALYSIS_INTERVAL_SECONDS


class ContractPolicy(StrictModel):
    """What every rollback contract must cover: metric kinds or signal names."""

    must_cover: list[str] = Field(default_factory=lambda: list(defaults.CONTRACT_MUST_COVER))


class VerifyPolicy(StrictModel):
    """The post-release validation window."""

    window: Duration = defaults.VERIFY_WINDOW_SECONDS


class Person(StrictModel):
    """Someone who acts on releases, and what they may do."""

    roles: list[Role] = Field(default_factory=list)
    email: str | None = None


def _override_roles() -> list[Role]:
    return list(defaults.OVERRIDE_ROLES)


class OverridePolicy(StrictModel):
    """Who may pass a failed gate, and how much they must write."""

    roles: list[Role] = Field(default_factory=_override_roles)
    reason_min_chars: Whole = defaults.OVERRIDE_REASON_MIN_CHARS


class Policy(StrictModel):
    """The whole of ``shiprail.yaml``."""

    version: Literal[1] = 1
    risk: RiskPolicy = Field(default_factory=RiskPolicy)
    gates: dict[Risk, GateRequirements] = Field(default_factory=_default_gates)
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    contract: ContractPolicy = Field(default_factory=ContractPolicy)
    verify: VerifyPolicy = Field(default_factory=VerifyPolicy)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    people: dict[str, Person] = Field(default_factory=dict)
    overrides: OverridePolicy = Field(default_factory=OverridePolicy)

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
