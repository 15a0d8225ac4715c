"""``shiprail.yaml``: the organisation's rules every release plan is checked against.

A plan may tighten any of these (more approvals, longer bakes, a longer verify window), never
loosen them.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter
from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from shiprail import defaults
from shiprail.domain.freezes import FreezeWindow
from shiprail.notifiers import ChannelConfig
from shiprail.schema.base import Duration, Flag, StrictModel, Whole
from shiprail.schema.validation import did_you_mean

Risk = Literal["low", "medium", "high"]
Role = Literal["releaser", "approver", "qa", "executive", "oncall"]
# The role a plan's `verify.on_call` person must hold: the one who may pause and roll back.
ON_CALL_ROLE: Role = "oncall"
APPROVE_ROLES: tuple[Role, ...] = ("approver", "executive")
"""The roles whose holders may approve a release (never its owner)."""
QA_ROLE: Role = "qa"
"""The role whose holders sign off QA checklist items (never the owner's)."""
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
        description=(
            "The shortest override reason (and post-mortem summary) accepted, in characters; "
            f"at most {defaults.OVERRIDE_REASON_MIN_CHARS_MAX}."
        ),
    )


class AuditPolicy(StrictModel):
    """Where checkpoints of the audit chain are kept outside the database, and how often they are taken."""

    anchors: str | None = Field(
        None,
        description=(
            "The anchor log: a file, relative to the project directory (or absolute), to which the controller "
            "and `shiprail audit anchor` append signed checkpoints of the audit chain's head, one JSON line each. "
            "Keep it outside the database's reach: another host, an append-only or WORM mount. Left out, the "
            "controller takes no anchors."
        ),
        examples=["/mnt/worm/shiprail-anchors.jsonl"],
    )
    anchor_every: Duration = Field(
        defaults.ANCHOR_EVERY_SECONDS,
        description="How often the controller appends an anchor at most; only when events were added since the last.",
    )


# ------------------------------------------------------------------------------ freezes

# A date picked for checking that a cron expression ever fires (croniter gives up after some years).
_CRON_PROBE_FROM = datetime(2000, 1, 1)
CRON_FIELDS = 5


def _zone_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a time zone name like Europe/Berlin or UTC is required")
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
        ZoneInfo(value)
        return value
    hint = did_you_mean(value, sorted(available_timezones()))
    raise ValueError(f"{value!r} is not a time zone name like Europe/Berlin or UTC{hint}")


def _cron(value: Any) -> str:
    wanted = "a cron expression of 5 fields (minute hour day-of-month month day-of-week), like '0 17 * * FRI',"
    if not isinstance(value, str) or len(value.split()) != CRON_FIELDS or not croniter.is_valid(value):
        raise ValueError(f"{wanted} is required, got {value!r}")
    try:
        croniter(value, _CRON_PROBE_FROM).get_next(datetime)
    except CroniterError:
        raise ValueError(f"{value!r} never fires (no such date); give a cron expression that does") from None
    return value


def _local_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):  # YAML reads 2026-12-18 as a date: its midnight
        when = datetime(value.year, value.month, value.day)
    else:
        parsed: datetime | None = None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                parsed = datetime.fromisoformat(value.strip())
        if parsed is None:
            raise ValueError(f"a date and time like 2026-12-18T17:00 is required, got {value!r}")
        when = parsed
    if when.tzinfo is not None:
        raise ValueError(
            f"{value!s} has a UTC offset; write the wall-clock time without one and name its zone with timezone"
        )
    return when


def _show_local(when: datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M}" + (f":{when:%S}" if when.second else "")


ZoneName = Annotated[
    str, BeforeValidator(_zone_name), WithJsonSchema({"type": "string", "examples": ["Europe/Berlin", "UTC"]})
]
"""An IANA time zone name (``Europe/Berlin``, ``America/New_York``, ``UTC``)."""

Cron = Annotated[
    str, BeforeValidator(_cron), WithJsonSchema({"type": "string", "examples": ["0 17 * * FRI", "0 8 * * MON"]})
]
"""A 5-field cron expression: minute, hour, day of month, month, day of week."""

LocalTime = Annotated[
    datetime,
    BeforeValidator(_local_time),
    PlainSerializer(_show_local, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["2026-12-18T17:00"]}),
]
"""A wall-clock date and time without a UTC offset, read in the window's zone."""


class Freeze(StrictModel):
    """A deployment freeze: a window in which no rollout starts and none takes more traffic."""

    name: str = Field(description="What the freeze is called in gate reasons (`freeze 'holidays' until ...`).")
    start: LocalTime | None = Field(
        None, description="A one-off window's first moment, a wall-clock time in `timezone` (2026-12-18T17:00)."
    )
    end: LocalTime | None = Field(None, description="A one-off window's end (not included), after `start`.")
    cron_start: Cron | None = Field(
        None, description="When a recurring window begins: a 5-field cron expression in `timezone` (0 17 * * FRI)."
    )
    cron_end: Cron | None = Field(
        None, description="When a recurring window ends: a 5-field cron expression in `timezone` (0 8 * * MON)."
    )
    timezone: ZoneName = Field(
        defaults.FREEZE_TIMEZONE, description="The IANA time zone the window's times are read in (Europe/Berlin)."
    )
    services: list[str] = Field(
        default_factory=list, description="The services the freeze holds; left out or empty, every service."
    )

    def window(self) -> FreezeWindow:
        """The window as the domain reads it."""
        return FreezeWindow(
            name=self.name,
            timezone=self.timezone,
            start=self.start,
            end=self.end,
            cron_start=self.cron_start,
            cron_end=self.cron_end,
            services=tuple(self.services),
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
    freezes: list[Freeze] = Field(
        default_factory=list,
        description=(
            "Deployment freezes: windows (one-off with start/end, or recurring with cron_start/cron_end) in which "
            "no rollout starts and none is promoted to more traffic, unless an executive overrides the freeze gate."
        ),
    )

    audit: AuditPolicy = Field(
        default_factory=AuditPolicy,
        description="Anchors of the audit chain: checkpoints of its head the controller keeps outside the database.",
    )

    def gates_for(self, risk: str) -> GateRequirements:
        """The gate requirements for ``risk``, falling back to the built-in defaults."""
        level = cast(Risk, risk)
        return self.gates.get(level) or _default_gates()[level]

    def min_bake_for(self, risk: str) -> dict[int, int]:
        """Least bake in seconds per weight for ``risk``."""
        level = cast(Risk, risk)
        return self.rollout.min_bake.get(level) or _default_min_bake()[level]

    def freeze_windows(self) -> tuple[FreezeWindow, ...]:
        """The deployment freezes as the domain reads them."""
        return tuple(f.window() for f in self.freezes)

    def roles_of(self, name: str) -> set[str]:
        """The roles ``name`` holds; empty when the person is unknown."""
        person = self.people.get(name)
        return set(person.roles) if person else set()

    def holding(self, role: str) -> list[str]:
        """Who holds ``role``, by name."""
        return sorted(name for name, person in self.people.items() if role in person.roles)
