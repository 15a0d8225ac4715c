"""Durations as written in files: ``30s``, ``5m``, ``2h``, ``1d`` and combinations like ``1h30m``."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shiprail.durations import DURATION_PATTERN, format_duration, parse_duration
from shiprail.schema.base import FROM_FILE
from shiprail.schema.plan import Probe, Verify


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("0s", 0),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("90m", 5400),
        ("2h2h", 14400),
        (" 5m ", 300),
        ("007s", 7),
    ],
)
def test_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["5 minutes", "5", "", "m", "-5m", "1.5h", "5M", "1w", "5m30", "5 m", "h5", "1h 30m", "30sec"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_duration(text)
    assert str(exc.value) == f"a duration like 30s, 5m, 2h or 1d is required, got {text!r}"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (30, "30s"),
        (60, "1m"),
        (300, "5m"),
        (5400, "1h30m"),
        (86400, "1d"),
        (90061, "1d1h1m1s"),
        (14340, "3h59m"),
        (59.9, "59s"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    text = format_duration(seconds)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration(text) == seconds


@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from("smhd")), min_size=1, max_size=4))
def test_parse_then_format_is_the_canonical_spelling(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    seconds = parse_duration(text)
    assert seconds == sum(n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
    canonical = format_duration(seconds)
    assert parse_duration(canonical) == seconds
    # Largest unit first, each unit once, each count below the next unit up.
    match = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", canonical)
    assert match is not None and canonical
    days, hours, minutes, secs = (int(g) if g else None for g in match.groups())
    assert (hours or 0) < 24 and (minutes or 0) < 60 and (secs or 0) < 60
    assert 0 not in (days, hours, minutes, secs) or canonical == "0s"


def test_a_duration_field_reads_text_and_writes_text() -> None:
    verify = Verify.model_validate({"window": "1d12h"}, context={FROM_FILE: True})
    assert verify.window == 129600
    assert verify.model_dump(mode="json")["window"] == "1d12h"


def test_a_bare_number_is_seconds_from_code_but_ambiguous_in_a_file() -> None:
    assert Verify.model_validate({"window": 3600}).window == 3600
    with pytest.raises(ValidationError) as exc:
        Verify.model_validate({"window": 3600}, context={FROM_FILE: True})
    assert [e["msg"] for e in exc.value.errors()] == [
        "Value error, a duration like 30s, 5m, 2h or 1d is required, got 3600"
    ]


@pytest.mark.parametrize(("value", "shown"), [(True, "true"), (1.5, "1.5"), ("5 min", "'5 min'"), ([], "a list")])
def test_a_duration_field_rejects_other_values(value: object, shown: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Verify.model_validate({"window": value})
    assert [e["msg"] for e in exc.value.errors()] == [
        f"Value error, a duration like 30s, 5m, 2h or 1d is required, got {shown}"
    ]


def test_durations_in_other_digits_are_refused() -> None:
    with pytest.raises(ValueError, match="a duration like 30s, 5m, 2h or 1d is required"):
        parse_duration("\u0665m")  # an Arabic-Indic five


def test_a_duration_beyond_a_year_is_refused_in_a_file_but_a_stored_one_still_loads() -> None:
    with pytest.raises(ValidationError, match="a duration of at most 366d is required, got '367d'"):
        Verify.model_validate({"window": "367d"}, context={FROM_FILE: True})
    assert Verify.model_validate({"window": "367d"}).window == 367 * 86400  # a release stored before the cap


def test_a_stored_probe_the_guardrails_would_now_refuse_still_loads() -> None:
    # Bounds added later are guardrails on files; a release stored before them must still load.
    probe = Probe.model_validate({"name": "p", "url": "http://x", "expect_status": 999, "interval": "0s"})
    assert (probe.expect_status, probe.interval) == (999, 0)
