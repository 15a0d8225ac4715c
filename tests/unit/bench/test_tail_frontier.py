"""bench/tail_frontier.py's section: its numbers follow the run's flags, none typed in."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from bench import tail_frontier


def test_the_section_states_one_over_the_alpha_it_ran_with(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    assert tail_frontier.main(["--runs", "10", "--alpha", "0.01", "--jobs", "1", "--docs", str(page)]) == 0
    text = " ".join(page.read_text(encoding="utf-8").split())
    assert "α = 0.01," in text
    assert "against `1/α` (100), so" in text
    assert "of the 4.6 nats that 1/α needs" in text


def test_matching_loss_finds_the_factor_that_slows_the_oracle_to_a_given_median() -> None:
    # One run gaining 0.1 nat per 10 s update: log(k/α) is reached at update ceil(10·log(k/α)).
    trace = np.cumsum(np.full((1, 400), 0.1), axis=1)
    at_4 = tail_frontier.rollback_seconds(trace, 0.05, 4.0)[0]
    assert at_4 == math.ceil(10 * math.log(4.0 / 0.05)) * 10
    # The updates are whole: every factor from 4·e^-0.1 to 4 rolls back at the same update.
    loss = tail_frontier.matching_loss(trace, 0.05, at_4)
    assert 4.0 * math.exp(-0.1) <= loss <= 4.0
    assert tail_frontier.rollback_seconds(trace, 0.05, loss)[0] == at_4
    assert tail_frontier.rollback_seconds(trace, 0.05, loss / 1.05)[0] < at_4
    assert tail_frontier.matching_loss(trace, 0.05, 0.0) == 1.0
