"""The webhook signature: HMAC-SHA256 over ``<timestamp>.<raw body>``, and what a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

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
