"""What the providers share: query templates, histogram quantiles, one-line messages.

The HTTP helpers are in ``shiprail.providers.http``: this module stays free of httpx, so the
commands that only format messages do not pay for importing it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
"""A ``{{name}}`` of a template (spaces inside the braces allowed)."""


def prom_duration(window_s: int) -> str:
    """A window in seconds as a Prometheus duration: ``300`` → ``300s``."""
    return f"{int(window_s)}s"


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{{name}}`` replaced; an unknown name is a ``ValueError``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join(f"{{{{{key}}}}}" for key in values)
            raise ValueError(f"unknown template variable {{{{{name}}}}} (known: {known})")
        return values[name]

    return PLACEHOLDER.sub(one, template)


def finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (no usable data)."""
    return value if math.isfinite(value) else None


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as ``histogram_quantile``.

    None when it cannot be told: no ``+Inf`` bucket, fewer than two buckets, no observations.
    """
    if not buckets:
        return None
    buckets = sorted(buckets)
    if not math.isinf(buckets[-1][0]):
        return None
    # Make the counts monotonic (increases computed series by series can wobble).
    fixed: list[tuple[float, float]] = []
    highest = 0.0
    for bound, count in buckets:
        highest = max(highest, count)
        fixed.append((bound, highest))
    if len(fixed) < 2:
        return None
    observations = fixed[-1][1]
    if observations <= 0:
        return None
    rank = q * observations
    b = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if b == len(fixed) - 1:
        return fixed[-2][0]  # in the +Inf bucket: the highest finite bound
    if b == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, end, count = 0.0, fixed[b][0], fixed[b][1]
    if b > 0:
        start = fixed[b - 1][0]
        count -= fixed[b - 1][1]
        rank -= fixed[b - 1][1]
    if count <= 0:
        return end
    return start + (end - start) * (rank / count)


# A JSONPath subscript the dotted path has a plain form of: [0], ['key'], ["key"].
_SUBSCRIPT = re.compile(r"""\[\s*(?:(-?\d+)|'([^']*)'|"([^"]*)")\s*\]""")


def dotted_path_problem(path: str) -> str | None:
    """Why the web provider's dotted ``path`` can never name a value, or None.

    Argo Rollouts' web provider reads JSONPath (``{$.data.ok}``); written here, it named no key, so
    every query was no data and the release paused at its first step. Said with the dotted path
    that means the same, when there is one.
    """
    if path.startswith(("$", "{")) or "[" in path or "]" in path:
        plain = path.strip()
        if plain.startswith("{") and plain.endswith("}"):
            plain = plain[1:-1].strip()
        plain = plain.removeprefix("$").removeprefix(".")
        keys = [next(g for g in m.groups() if g is not None) for m in _SUBSCRIPT.finditer(plain)]
        # A quoted key holding a dot ('errors.rate') has no dotted form: it would name two keys.
        dotted_key = any("." in key for key in keys)
        plain = _SUBSCRIPT.sub(lambda _: "." + keys.pop(0), plain)
        if (
            plain
            and not dotted_key
            and not any(mark in plain for mark in ("[", "]", "*", "$", "..", "?", "@"))
            and not plain.startswith(".")
        ):
            return f"{path!r} is JSONPath, which the web provider does not read; write the dotted path {plain}"
        return (
            f"{path!r} is JSONPath, which the web provider does not read; write a dotted path, a number indexing "
            "a list (data.errors.rate, items.0.p99)"
        )
    if "" in path.split("."):
        return f"{path!r} has an empty segment (a dot at its start, its end or twice); write e.g. data.errors.rate"
    return None


def load_json(text: str) -> Any:
    """``text`` as JSON; ``ValueError`` for anything that is not, an answer nested too deeply included.

    Python's reader raises ``RecursionError`` on an array or object nested some thousand levels deep
    (``[[[[…``): out of a provider, that was a traceback's message where a failed sample belongs.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def one_line(text: str, limit: int = 200) -> str:
    """``text`` squeezed onto one line and cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
