"""bench/tail_frontier.py's section: its numbers follow the run's flags, none typed in."""

from __future__ import annotations

from pathlib import Path

from bench import tail_frontier


def test_the_section_states_one_over_the_alpha_it_ran_with(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    assert tail_frontier.main(["--runs", "10", "--alpha", "0.01", "--jobs", "1", "--docs", str(page)]) == 0
    text = " ".join(page.read_text(encoding="utf-8").split())
    assert "α = 0.01," in text
    assert "against `1/α` (100), so" in text
