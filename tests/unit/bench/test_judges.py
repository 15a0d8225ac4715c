"""bench/judges.py's notes: their numbers come from the run and its α, none typed in."""

from __future__ import annotations

import pytest
from bench import judges
from bench.judges import evidence_needed


def test_the_evidence_a_lower_rate_needs_is_computed_from_alpha_and_that_rate() -> None:
    assert evidence_needed(0.05, [0.0, 0.004, 0.018]) == " (at 0.4 %, from 3.0 to 5.5)"
    assert evidence_needed(0.01, [0.002]) == " (at 0.2 %, from 4.6 to 6.2)"


def test_no_parenthesis_without_a_rate_between_zero_and_alpha() -> None:
    assert evidence_needed(0.05, [0.0, 0.05]) == ""
    assert evidence_needed(0.05, []) == ""


def test_only_matching_no_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        judges.parse_args(["--only", "zzz"])
    assert exc.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("python -m bench.judges: error: --only 'zzz' matches no scenario (give --full")


def test_only_leaves_the_page_alone() -> None:
    args = judges.parse_args(["--only", "latency: 10/s"])
    assert args.no_write is True
    assert judges.parse_args([]).no_write is False
