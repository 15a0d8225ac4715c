"""Building blocks shared by every file model: strict models, numbers, durations."""

from __future__ import annotations

import contextlib
import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, Strict, ValidationInfo, WithJsonSchema

from shiprail.durations import DURATION_PATTERN, MAX_DURATION_SECONDS, format_duration, parse_duration
from shiprail.text import ascii_float, digits_hint, is_digits, overflowed, percent_hint, underflowed

FROM_FILE = "from_file"
"""Validation-context flag: the data was written by a person, so be strict about its spelling."""


class StrictModel(BaseModel):
    """A file section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def without_default(data: dict[str, Any], key: str, default: object) -> dict[str, Any]:
    """``data``, a model's serialised fields, without ``key`` while it holds ``default``.

    For a field added after releases were stored (a model serializer's ``handler(self)`` result): a
    plan or service that never sets it serialises as it did before the field existed, so the
    resolved and contract hashes that approvals approve stay the same.
    """
    if key in data and data[key] == default:
        del data[key]
    return data


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


# A number written with more characters than this is shown by its length, not in full.
SHOWN_IN_FULL_CHARS = 20


def _shown(text: str) -> str:
    """A number as written, or, when long, by its length (400 digits) or its start: brief."""
    digits = text.lstrip("+-")
    if len(text) <= SHOWN_IN_FULL_CHARS:
        return text
    if is_digits(digits):
        return f"a {len(digits)}-digit number"
    return text[:SHOWN_IN_FULL_CHARS] + "…"


def _too_large(value: int | str) -> str:
    """The error for a number beyond a float (1e400, or 400 digits): brief, not every digit."""
    return f"{_shown(str(value).strip())} is too large; give a smaller number"


def out_of_range(value: Any, number: float) -> str | None:
    """Why ``number`` is not the number ``value`` (text) writes, or None when it is.

    A float holds neither ``1e400`` nor ``1e-400``: the first reads as infinity (a threshold that
    never fires), the second as 0 (one that fires at any error), so both are refused as written.
    """
    if not isinstance(value, str):
        return None
    if overflowed(value, number):
        return _too_large(value)
    if underflowed(value, number):
        return f"{_shown(value.strip())} is too small to hold and would read as 0; write 0 or a larger number"
    return None


def _number(value: Any) -> float:
    # bool is an int in Python; "true" as a threshold is a mistake, not 1.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a number is required, got {_show(value)}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # 400 digits: no float holds it
            raise ValueError(_too_large(value)) from None
    number: float | None = value if isinstance(value, float) else None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # "abc"; other scripts' digits too, which float() reads
            number = ascii_float(value)
    # NaN and infinity (.nan, .inf, "nan") parse as floats but make thresholds that never or always fire.
    if number is None:
        raise ValueError(f"a number is required, got {_show(value)}{digits_hint(value) or percent_hint(value)}")
    problem = out_of_range(value, number)
    if problem is not None:
        raise ValueError(problem)
    if not math.isfinite(number):
        raise ValueError(f"a finite number is required, got {_show(value)}")
    return number


def finite(value: Any) -> Any:
    """``value``, unless it is a float that is no finite number (NaN, infinity), refused as by ``Number``.

    For a field that takes a number among other things (a probe's expected JSON value).
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"a finite number is required, got {_show(value)}")
    return value


def _whole(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a whole number is required, got {_show(value)}")
    if isinstance(value, int):
        return value
    # is_digits, not str.isdigit(): "²" is a digit to the latter, but int() refuses it, and its
    # error ("invalid literal for int() with base 10") would become the user's message.
    if isinstance(value, str) and is_digits(value.strip().lstrip("-")):
        return int(value.strip())
    number: float | None = value if isinstance(value, float) else None
    if isinstance(value, str):
        # YAML 1.1 reads 1e3 (no dot, no exponent sign) as text; it is still the whole number 1000.
        with contextlib.suppress(ValueError):
            number = ascii_float(value)
    problem = None if number is None else out_of_range(value, number)
    if problem is not None:
        raise ValueError(problem)
    if number is not None and math.isfinite(number) and number.is_integer():
        return int(number)
    raise ValueError(f"a whole number is required, got {_show(value)}{digits_hint(value)}")


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
