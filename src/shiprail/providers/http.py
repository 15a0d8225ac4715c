"""The providers' HTTP helpers: a bounded GET, and why a request failed, in one sentence."""

from __future__ import annotations

import re
import time

import httpx

from shiprail.providers.common import one_line

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
