"""The cohort hash: the reference definition, the fast evaluator, stickiness, monotonic cohorts, shares."""

from __future__ import annotations

import hashlib
import json

import pytest

from shiprail.defaults import FLAG_BUCKETS
from shiprail.sdk import Client, Evaluator, bucket
from shiprail.sdk.hashing import threshold

KEYS = [f"user-{i}" for i in range(100_000)]


def config(weight: float, salt: str = "rel-42") -> dict[str, object]:
    return {
        "service": "checkout",
        "revision": 7,
        "release": "rel-42",
        "stable": "1.4.0",
        "canary": "1.5.0",
        "weight": weight,
        "salt": salt,
    }


def test_bucket_is_the_documented_formula() -> None:
    for salt, key in [("rel-42", "user-1"), ("a:b", "c"), ("", ""), ("s", "ü→"), ("x" * 300, "y" * 300)]:
        digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
        assert bucket(salt, key) == int.from_bytes(digest, "big") % 10_000


def test_bucket_pinned_vectors() -> None:
    # Fixed answers, so an SDK in another language (or a refactor) can check it hashes the same way.
    assert bucket("rel-42", "user-1") == 5502
    assert bucket("checkout", "alice") == 8030
    assert bucket("", "") == 8957
    assert bucket("s", "ü") == 328


@pytest.mark.parametrize("salt", ["rel-42", "", "salt:with:colons", "ünïcode"])
def test_evaluator_buckets_equal_reference(salt: str) -> None:
    evaluator = Evaluator(salt, 50)
    for key in [*KEYS[:5_000], "", "ü", "a:b"]:
        assert evaluator.bucket(key) == bucket(salt, key)


@pytest.mark.parametrize(
    ("weight", "expected"),
    [(0, 0), (-3, 0), (0.001, 1), (0.01, 1), (1, 100), (12.345, 1235), (50, 5000), (99.99, 9999), (100, FLAG_BUCKETS)],
)
def test_threshold(weight: float, expected: int) -> None:
    assert threshold(weight) == expected


@pytest.mark.parametrize("weight", [0.07, 0.01, 12.345, 33.33, 50, 99.995])
def test_decisions_match_the_spec_comparison(weight: float) -> None:
    # canary iff bucket < weight × 100, compared exactly as the spec writes it.
    evaluator = Evaluator("rel-42", weight)
    client = Client.from_config(config(weight))
    for key in KEYS[:5_000]:
        expected = "canary" if bucket("rel-42", key) < weight * 100 else "stable"
        assert evaluator.variant(key) == expected
        assert client.variant(key) == expected


def test_sticky_across_calls_and_clients() -> None:
    first, second = Client.from_config(config(30)), Client.from_config(config(30))
    answers = [first.variant(key) for key in KEYS[:10_000]]
    assert answers == [first.variant(key) for key in KEYS[:10_000]]
    assert answers == [second.variant(key) for key in KEYS[:10_000]]


def test_another_salt_draws_another_cohort() -> None:
    one, other = Client.from_config(config(50, "rel-1")), Client.from_config(config(50, "rel-2"))
    same = sum(one.variant(key) == other.variant(key) for key in KEYS[:10_000])
    assert 4_500 < same < 5_500  # independent cohorts agree about half the time


def test_cohorts_are_monotonic() -> None:
    cohorts = {}
    for weight in (1, 10, 50):
        client = Client.from_config(config(weight))
        cohorts[weight] = {key for key in KEYS if client.variant(key) == "canary"}
    assert cohorts[1]
    assert cohorts[1] <= cohorts[10] <= cohorts[50]


@pytest.mark.parametrize("weight", [1, 10, 50])
def test_observed_share_is_within_one_point(weight: float) -> None:
    client = Client.from_config(config(weight))
    share = sum(client.variant(key) == "canary" for key in KEYS) / len(KEYS) * 100
    assert abs(share - weight) <= 1


@pytest.mark.parametrize("weight", [10, 50])
def test_keyless_decisions_follow_the_weight(weight: float) -> None:
    client = Client.from_config(config(weight))
    evaluator = Evaluator("rel-42", weight)
    # 100 000 draws: one point is about ten standard deviations, so this never flakes.
    share = sum(client.variant() == "canary" for _ in range(100_000)) / 1_000
    assert abs(share - weight) <= 1
    share = sum(evaluator.variant(None) == "canary" for _ in range(100_000)) / 1_000
    assert abs(share - weight) <= 1


@pytest.mark.parametrize(("weight", "expected"), [(0, "stable"), (100, "canary")])
def test_weight_0_and_100_are_absolute(weight: float, expected: str) -> None:
    client = Client.from_config(config(weight))
    evaluator = Evaluator("rel-42", weight)
    assert {client.variant(key) for key in KEYS[:10_000]} == {expected}
    assert {client.variant() for _ in range(10_000)} == {expected}
    assert {evaluator.variant(key) for key in KEYS[:10_000]} == {expected}
    assert {evaluator.variant() for _ in range(10_000)} == {expected}


def test_a_key_with_a_lone_surrogate_gets_a_bucket_instead_of_raising() -> None:
    """json.loads('"\\ud800"') yields such a key from a request; variant() must not raise on it."""
    client = Client.from_config(
        {"service": "s", "revision": 1, "release": "r", "stable": "1", "canary": "2", "weight": 50, "salt": "r"}
    )
    key = json.loads('"user-\\ud800"')
    assert client.variant(key) == client.variant(key) in ("stable", "canary")
    assert client.evaluate(key).variant == client.variant(key)
    assert 0 <= bucket("r", key) < 10_000
    # Valid text hashes exactly as before (plain UTF-8), the blake2b of the spec's bytes.
    digest = hashlib.blake2b("r:ünï-🙂".encode(), digest_size=8).digest()
    assert bucket("r", "ünï-🙂") == int.from_bytes(digest, "big") % 10_000


def test_a_salt_that_is_no_valid_text_still_hashes() -> None:
    """serve may send any JSON string as the salt, a lone surrogate included: applying it must not raise."""
    salt = json.loads('"\\ud800"')
    client = Client.from_config(
        {"service": "s", "revision": 1, "release": "r", "stable": "1", "canary": "2", "weight": 50, "salt": salt}
    )
    assert client.variant("user-1") in ("stable", "canary")
    assert client.evaluate("user-1").variant == ("canary" if bucket(salt, "user-1") < 5000 else "stable")
