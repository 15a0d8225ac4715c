"""Retry-After on a refused delivery: seconds or an HTTP date, honoured only on 429 and 503."""

from __future__ import annotations

import httpx
import pytest

from shiprail.notifiers.channels import retry_after

DATE = "Thu, 26 Nov 2026 20:00:00 GMT"


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"Retry-After": "30"}, 30.0),
        (503, {"Retry-After": " 120 "}, 120.0),
        (429, {"Retry-After": "Thu, 26 Nov 2026 20:01:30 GMT", "Date": DATE}, 90.0),
        (429, {"Retry-After": "Thu, 26 Nov 2026 19:59:00 GMT", "Date": DATE}, 0.0),  # already past
        (429, {"Retry-After": "Thu, 26 Nov 2026 20:01:30 GMT"}, None),  # a date, but no Date to count from
        (429, {"Retry-After": "soon"}, None),
        (429, {}, None),
        (500, {"Retry-After": "30"}, None),  # only 429 and 503 ask the client to wait
    ],
)
def test_retry_after(status: int, headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(httpx.Response(status, headers=headers)) == expected


def test_a_retry_after_in_a_digit_float_cannot_read_is_ignored() -> None:
    # The byte 0xb2 reads as "²" (latin-1): a digit to str.isdigit(), not to float(), which raised.
    assert retry_after(httpx.Response(429, headers=[(b"Retry-After", b"\xb2")])) is None
