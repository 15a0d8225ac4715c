"""What the providers share: filling in query templates and saying why an HTTP call failed."""

from __future__ import annotations

import math
import re

import httpx

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


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

    return _PLACEHOLDER.sub(one, template)


def finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (no usable data)."""
    return value if math.isfinite(value) else None


def one_line(text: str, limit: int = 200) -> str:
    """``text`` squeezed onto one line and cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def http_problem(exc: httpx.HTTPError, what: str, timeout_s: float) -> str:
    """One sentence saying why a request to ``what`` (e.g. "Prometheus at http://…") failed."""
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} did not answer within {timeout_s:g}s"
    if isinstance(exc, httpx.ConnectError):
        reason = str(exc) or type(exc).__name__
        # "[Errno 111] Connection refused" → "connection refused"
        reason = re.sub(r"^\[Errno -?\d+\]\s*", "", reason)
        return f"cannot reach {what}: {one_line(reason).lower()}"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"{what}: invalid URL ({one_line(str(exc))})"
    return f"request to {what} failed: {one_line(str(exc) or type(exc).__name__)}"
