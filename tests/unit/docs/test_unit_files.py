"""The systemd units in the docs are meant to be copied as they are."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_no_systemd_setting_in_the_docs_carries_an_inline_comment() -> None:
    # systemd reads `KillSignal=SIGTERM   # comment` as the value "SIGTERM   # comment" (a comment
    # is a whole line starting with # or ;): `systemd-analyze verify` rejects the signal, and a
    # WorkingDirectory= or EnvironmentFile= with one names a path that does not exist.
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```ini\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S):
            found += [f"{doc.name}: {line}" for line in block.splitlines() if re.match(r"^\w+=.*\s#", line)]
    assert found == []
