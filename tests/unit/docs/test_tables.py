"""Every table row in README.md and docs/ belongs to a table: Markdown renders a stray one as text."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SEPARATOR = re.compile(r"^\|( *:?-+:? *\|)+$")


def test_every_table_row_follows_a_header_or_a_row() -> None:
    stray = []
    for page in PAGES:
        # Fenced blocks become blank lines, so that the lines keep their numbers.
        text = FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), page.read_text(encoding="utf-8"))
        lines = text.splitlines()
        for n, line in enumerate(lines):
            if not line.startswith("|"):
                continue
            after = lines[n + 1] if n + 1 < len(lines) else ""
            before = lines[n - 1] if n > 0 else ""
            if not (before.startswith("|") or SEPARATOR.match(after)):
                stray.append(f"{page.name}:{n + 1}: {line[:60]}")
    assert stray == []
