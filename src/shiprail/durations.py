"""Durations as people write them in files: ``30s``, ``5m``, ``2h``, ``1d``, or ``1h30m``."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"^(?:\d+[smhd])+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

DURATION_PATTERN = r"^(?:\d+[smhd])+$"
# No phase, bake, window or timeout of a release lasts longer; beyond it, times overflow.
MAX_DURATION_SECONDS = 366 * 86400


def parse_duration(text: str) -> int:
    """Return the number of seconds ``text`` stands for; raise ``ValueError`` with a usable hint."""
    cleaned = text.strip()
    # ASCII digits only: \d also matches other scripts' digits (Arabic-Indic five), which int() reads.
    if not cleaned.isascii() or not _WHOLE.match(cleaned):
        raise ValueError(f"a duration like 30s, 5m, 2h or 1d is required, got {text!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the file syntax (``5400`` -> ``1h30m``)."""
    remaining = int(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
