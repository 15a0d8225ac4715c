"""The OpenFeature provider: variants as string/boolean flags, reasons, defaults, type mismatches."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from shiprail.sdk import Client
from shiprail.sdk.openfeature import ShiprailProvider


def config(weight: float = 50, revision: int = 3) -> dict[str, Any]:
    return {
        "service": "checkout",
        "revision": revision,
        "release": "rel-42",
        "stable": "1.4.0",
        "canary": "1.5.0",
        "weight": weight,
        "salt": "rel-42",
    }


def unready_client() -> Client:
    # Never polled: no config, and the transport is never called.
    return Client("http://shiprail.test", "checkout", "key", start=False, transport=httpx.MockTransport(_no_calls))


def _no_calls(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request {request.method} {request.url}")


@pytest.fixture(autouse=True)
def clean_api() -> Iterator[None]:
    yield
    api.shutdown()
    api.clear_providers()


def ctx(key: str | None) -> EvaluationContext:
    return EvaluationContext(targeting_key=key)


def test_metadata() -> None:
    assert ShiprailProvider(Client.from_config(config())).get_metadata().name == "shiprail"


def test_keyed_string_and_boolean() -> None:
    client = Client.from_config(config())
    provider = ShiprailProvider(client)
    answers = set()
    for i in range(200):
        key = f"user-{i}"
        variant = client.variant(key)
        answers.add(variant)
        details = provider.resolve_string_details("checkout", "stable", ctx(key))
        assert details.value == variant and details.variant == variant
        assert details.reason == Reason.TARGETING_MATCH and details.error_code is None
        assert details.flag_metadata == {"service": "checkout", "revision": 3, "version": client.version(key)}
        flag = provider.resolve_boolean_details("checkout", False, ctx(key))
        assert flag.value is (variant == "canary") and flag.variant == variant
        assert flag.reason == Reason.TARGETING_MATCH
    assert answers == {"stable", "canary"}


def test_keyless_reasons() -> None:
    split = ShiprailProvider(Client.from_config(config(weight=50)))
    assert split.resolve_string_details("checkout", "x", ctx(None)).reason == Reason.SPLIT
    assert split.resolve_string_details("checkout", "x", None).reason == Reason.SPLIT
    everyone = ShiprailProvider(Client.from_config(config(weight=100)))
    details = everyone.resolve_boolean_details("checkout", False, None)
    assert details.value is True and details.reason == Reason.STATIC
    nobody = ShiprailProvider(Client.from_config(config(weight=0)))
    answer = nobody.resolve_string_details("checkout", "x", None)
    assert answer.value == "stable" and answer.reason == Reason.STATIC
    assert answer.flag_metadata["version"] == "1.4.0"


def test_no_config_yet_gives_the_default() -> None:
    provider = ShiprailProvider(unready_client(), init_timeout=0)
    details = provider.resolve_string_details("checkout", "fallback", ctx("user-1"))
    assert details.value == "fallback" and details.reason == Reason.DEFAULT
    assert details.variant is None and details.error_code is None
    flag = provider.resolve_boolean_details("checkout", True, ctx("user-1"))
    assert (flag.value, flag.reason) == (True, Reason.DEFAULT)


@pytest.mark.parametrize(
    ("method", "default"),
    [("resolve_integer_details", 7), ("resolve_float_details", 0.5), ("resolve_object_details", {"a": 1})],
)
def test_other_types_mismatch(method: str, default: Any) -> None:
    provider = ShiprailProvider(Client.from_config(config()))
    details = getattr(provider, method)("checkout", default, ctx("user-1"))
    assert details.value == default
    assert details.error_code == ErrorCode.TYPE_MISMATCH
    assert details.reason == Reason.ERROR
    assert details.error_message


def test_through_the_openfeature_api() -> None:
    client = Client.from_config(config())
    api.set_provider_and_wait(ShiprailProvider(client))
    flags = api.get_client()
    for i in range(50):
        key = f"user-{i}"
        assert flags.get_string_value("checkout", "stable", ctx(key)) == client.variant(key)
        details = flags.get_boolean_details("checkout", False, ctx(key))
        assert details.value is (client.variant(key) == "canary")
        assert details.variant == client.variant(key)
        assert details.flag_metadata["revision"] == 3
    assert flags.get_integer_details("checkout", 3, ctx("user-1")).error_code == ErrorCode.TYPE_MISMATCH


def test_initialize_waits_for_the_first_config(caplog: pytest.LogCaptureFixture) -> None:
    provider = ShiprailProvider(unready_client(), init_timeout=0.01)
    with caplog.at_level(logging.WARNING, "shiprail.sdk"):
        provider.initialize(EvaluationContext())  # late config: a warning, not an error
    assert "no shiprail config for checkout" in caplog.text
    ShiprailProvider(Client.from_config(config())).initialize(EvaluationContext())  # ready: returns at once


def test_shutdown_closes_the_client_unless_told_not_to() -> None:
    posts: list[httpx.Request] = []

    def serve(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request)
            return httpx.Response(202, json={"stored": 1})
        return httpx.Response(200, json=config())

    client = Client("http://shiprail.test", "checkout", "key", start=False, transport=httpx.MockTransport(serve))
    client.poll_once()
    client.record("canary", True, 0.01)
    ShiprailProvider(client, close_client=False).shutdown()
    assert posts == []
    ShiprailProvider(client).shutdown()
    assert len(posts) == 1  # close() posted the pending outcome
