"""Building blocks shared by every file model: strict models, numbers, durations."""

from __future__ import annotations

import contextlib
import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, Strict, ValidationInfo, WithJsonSchema

from shiprail.durations import DURATION_PATTERN, MAX_DURATION_SECONDS, format_duration, parse_duration

FROM_FILE = "from_file"
"""Validation-context flag: the data was written by a person, so be strict about its spelling."""


class StrictModel(BaseModel):
    """A file section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"  # as written in YAML, not Python's True/False
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)


def _number(value: Any) -> float:
    # bool is an int in Python; "true" as a threshold is a mistake, not 1.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a number is required, got {_show(value)}")
    number: float | None = None
    if isinstance(value, int | float | str):
        with contextlib.suppress(ValueError, OverflowError):  # "abc"; an int too big for a float
            number = float(value)
    # NaN and infinity (.nan, .inf, "nan") parse as floats but make thresholds that never or always fire.
    if number is None:
        raise ValueError(f"a number is required, got {_show(value)}")
    if not math.isfinite(number):
        raise ValueError(f"a finite number is required, got {_show(value)}")
    return number


def _whole(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a whole number is required, got {_show(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"a whole number is required, got {_show(value)}")


def _duration(value: Any, info: ValidationInfo) -> int:
    if isinstance(value, str):
        seconds = parse_duration(value)
        # Only what a person writes now: a release stored before the cap must still load.
        if seconds > MAX_DURATION_SECONDS and (info.context or {}).get(FROM_FILE):
            raise ValueError(f"a duration of at most {MAX_DURATION_SECONDS // 86400}d is required, got {value!r}")
        return seconds
    # Seconds are fine from code; in a file a bare number is ambiguous (30 what?).
    if isinstance(value, int) and not isinstance(value, bool) and not (info.context or {}).get(FROM_FILE):
        return value
    raise ValueError(f"a duration like 30s, 5m, 2h or 1d is required, got {_show(value)}")


Number = Annotated[
    float,
    BeforeValidator(_number),
    WithJsonSchema({"type": "number"}),
]
"""A real number; anything else (text, true/false) is an error naming what was given."""

Whole = Annotated[int, BeforeValidator(_whole), WithJsonSchema({"type": "integer"})]
"""A whole number (counts, sample sizes)."""

Duration = Annotated[
    int,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m", "2h"]}),
]
"""A duration written ``30s``, ``5m``, ``2h``, ``1d`` (or ``1h30m``), held as whole seconds."""


Flag = Annotated[bool, Strict(), WithJsonSchema({"type": "boolean"})]
"""``true`` or ``false`` only: not ``yes``, ``"off"`` or ``1``, which pydantic would otherwise read as booleans."""
