"""The webhook signature: HMAC-SHA256 over ``<timestamp>.<raw body>``, and what a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shiprail.notifiers.channels import sign, signed_content, verify_signature

SECRET = "whsec-test"
BODY = b'{"event":"rolled_back","release_id":"checkout-2.4.0"}'
NOW = datetime(2026, 3, 2, 14, 5, 9, tzinfo=UTC)
TS = str(int(NOW.timestamp()))


def test_the_signature_covers_timestamp_and_body() -> None:
    assert signed_content(TS, BODY) == TS.encode() + b"." + BODY
    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == f"sha256={expected}"


def test_a_fixed_vector() -> None:
    # Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
    assert sign("key", "1700000000", b"{}") == (
        "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
    )


def test_a_receiver_accepts_the_genuine_request() -> None:
    assert verify_signature(SECRET, TS, BODY, sign(SECRET, TS, BODY), now=NOW)
    assert verify_signature(SECRET, TS, BODY, sign(SECRET, TS, BODY), now=NOW + timedelta(seconds=299))


def test_a_receiver_refuses_tampering_replay_and_missing_headers() -> None:
    good = sign(SECRET, TS, BODY)
    assert not verify_signature(SECRET, TS, BODY + b" ", good, now=NOW)  # body changed
    later = str(int(TS) + 600)
    assert not verify_signature(SECRET, later, BODY, good, now=NOW + timedelta(seconds=600))  # new timestamp, old mac
    assert not verify_signature(SECRET, TS, BODY, good, now=NOW + timedelta(seconds=301))  # replayed too late
    assert not verify_signature("other", TS, BODY, good, now=NOW)  # wrong secret
    assert not verify_signature(SECRET, None, BODY, good, now=NOW)
    assert not verify_signature(SECRET, TS, BODY, None, now=NOW)
    assert not verify_signature(SECRET, "soon", BODY, good, now=NOW)
    assert not verify_signature(SECRET, TS, BODY, good.removeprefix("sha256="), now=NOW)


def test_hostile_headers_are_refused_not_raised() -> None:
    # Both headers come from whoever sent the request. "²" passes str.isdigit() but int() refuses
    # it; compare_digest raises TypeError on a str with a non-ASCII character. A receiver calling
    # verify_signature must get False for both, not an exception (a 500 and a traceback).
    good = sign(SECRET, TS, BODY)
    assert not verify_signature(SECRET, "²", BODY, good, now=NOW)
    assert not verify_signature(SECRET, TS + "²", BODY, good, now=NOW)
    assert not verify_signature(SECRET, TS, BODY, "sha256=é", now=NOW)
    assert not verify_signature(SECRET, TS, BODY, good[:-1] + "é", now=NOW)
    assert verify_signature(SECRET, TS, BODY, good, now=NOW)


def test_the_documented_receiver_refuses_hostile_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    # The receiver in docs/notifications.md is copied by users: its signature_ok must refuse the
    # same headers rather than raise in the request handler.
    text = (Path(__file__).parents[3] / "docs" / "notifications.md").read_text()
    code = text.split("## Verifying a signed webhook", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    code = code.split("\nHTTPServer((", 1)[0]  # everything but serving
    monkeypatch.setenv("SHIPRAIL_WEBHOOK_SECRET", SECRET)
    space: dict[str, object] = {"__name__": "receiver"}
    exec(compile(code, "notifications.md", "exec"), space)
    signature_ok = space["signature_ok"]
    assert callable(signature_ok)
    now = str(int(time.time()))
    assert signature_ok(now, BODY, sign(SECRET, now, BODY))
    assert not signature_ok("²", BODY, sign(SECRET, now, BODY))
    assert not signature_ok(now, BODY, "sha256=é")
