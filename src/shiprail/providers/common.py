"""What the providers share: query templates, histogram quantiles and why an HTTP call failed."""

from __future__ import annotations

import math
import re
import time

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


def one_line(text: str, limit: int = 200) -> str:
    """``text`` squeezed onto one line and cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# The most a provider reads of one answer: a metrics endpoint or a query result above it is a
# mistake (or an attack), and would otherwise be held in memory whole, several times over.
MAX_BODY_BYTES = 32 * 1024 * 1024


class BodyTooLarge(httpx.RequestError):
    """An answer longer than ``MAX_BODY_BYTES``."""


def fetch_text(
    client: httpx.Client,
    url: str,
    *,
    timeout_s: float,
    params: dict[str, str] | None = None,
    limit: int = MAX_BODY_BYTES,
) -> tuple[int, str]:
    """GET ``url``: (status code, body), the whole answer within ``timeout_s`` and ``limit`` bytes.

    httpx's timeout bounds each read, not the answer: a server sending a line a second never
    times out. Past the deadline this raises ``httpx.ReadTimeout``, past ``limit`` ``BodyTooLarge``.
    The deadline is a network timeout, as httpx's own, so it reads the monotonic clock.
    """
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", url, params=params, timeout=timeout_s) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the answer is longer than {limit / 2**20:g} MiB", request=response.request)
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"the answer took longer than {timeout_s:g}s", request=response.request)
            chunks.append(chunk)
        encoding = response.charset_encoding or "utf-8"
        try:
            text = b"".join(chunks).decode(encoding, errors="replace")
        except LookupError:  # an unknown charset
            text = b"".join(chunks).decode("utf-8", errors="replace")
        return response.status_code, text


def http_problem(exc: httpx.HTTPError, what: str, timeout_s: float) -> str:
    """One sentence saying why a request to ``what`` (e.g. "Prometheus at http://…") failed."""
    if isinstance(exc, BodyTooLarge):
        return f"{what}: {exc}"
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
